"""P3 — the message write path and a tenant-scoped JSON read, in requests per second, against a
bare Starlette JSON endpoint under the same load in the same run; and the database round trips
one chat send makes."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.procs import baseline_serve, parley_serve, stop_embedded_pg
from bench.report import Row, Section
from bench.setup_tenant import make_widget, visitor

CONCURRENCY = 16


async def _load(client: httpx.AsyncClient, seconds: float, one: object) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(i)  # type: ignore[operator]
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _parley(base: str, seconds: float) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        w = await make_widget(client, {})  # extractive provider: no network
        visitors = [await visitor(client, w.widget_key) for _ in range(CONCURRENCY)]

        async def send(i: int) -> None:
            h = {
                **visitors[i][0],
                "Idempotency-Key": uuid.uuid4().hex,
                "Prefer": "respond-async",
            }
            r = await client.post("/v1/widget/messages", json={"content": "hello there"}, headers=h)
            assert r.status_code == 202, r.text

        async def read(i: int) -> None:
            headers, conv = visitors[i]
            r = await client.get(
                f"/v1/widget/conversations/{conv}/messages?limit=20", headers=headers
            )
            assert r.status_code == 200

        write_rps = await _load(client, seconds, send)
        read_rps = await _load(client, seconds, read)
        return write_rps, read_rps


async def _baseline(base: str, seconds: float) -> float:
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY * 2)
    ) as client:

        async def echo(i: int) -> None:
            r = await client.post("/echo", json={"content": "hello there"})
            assert r.status_code == 201

        return await _load(client, seconds, echo)


def run(quick: bool = False) -> Section:
    seconds = 3.0 if quick else 10.0
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p3-"))
    try:
        with parley_serve(data_dir, extra_env={"PARLEY_RATE_LIMITS": "off"}) as served:
            write_rps, read_rps = asyncio.run(_parley(served.base, seconds))
        with baseline_serve() as b:
            base_rps = asyncio.run(_baseline(b.base, seconds))
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    return Section(
        "P3",
        "Write path and tenant-scoped read throughput",
        f"{CONCURRENCY} concurrent clients for {seconds:.0f} s each against one `parley serve` "
        "process (embedded PostgreSQL, rate limits off) and against a bare Starlette JSON "
        "endpoint under uvicorn; the load generator runs on the same 2-core machine. The write "
        "path is a JSON widget send with the extractive provider, so it includes the assistant "
        "turn (store user message, turn ledger, reply, idempotency record), not only the enqueue.",
        ".venv/bin/python -m bench p3",
        [
            Row(
                "widget send (write path), req/s",
                f"{write_rps:.0f}",
                f"{base_rps:.0f}",
                f"{write_rps / base_rps:.2f}",
                "≥ 0.50",
                write_rps / base_rps >= 0.5,
            ),
            Row(
                "history read (tenant-scoped JSON), req/s",
                f"{read_rps:.0f}",
                f"{base_rps:.0f}",
                f"{read_rps / base_rps:.2f}",
                "≥ 0.50",
                read_rps / base_rps >= 0.5,
            ),
        ],
    )
