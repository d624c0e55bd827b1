"""P3 — the message write path and a tenant-scoped JSON read, in requests per second, against a
bare Starlette JSON endpoint under the same load in the same run.

Both servers run for the whole measurement and the phases alternate (baseline, write, read,
baseline), so load from other work on a shared machine hits both alike. The write path is an
asynchronous widget send (`Prefer: respond-async`: token check, idempotency claim, user
message stored, turn enqueued — one database round trip), SPEC P3's "no LLM": the API runs
without its in-process worker, as a deployment with dedicated `parley worker` processes does.
A `parley worker` then answers the enqueued turns and the time it takes is reported, so the
turns are accounted for rather than hidden."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bench.procs import baseline_serve, parley_serve, parley_worker, stop_embedded_pg
from bench.report import Row, Section
from bench.setup_tenant import make_widget, visitor

CONCURRENCY = 16


async def _load(seconds: float, one: Callable[[int], Awaitable[None]]) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(i)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _drain(client: httpx.AsyncClient, limit_s: float = 300) -> float:
    """Seconds until the job queue is empty (every enqueued turn answered)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        queue = (await client.get("/readyz")).json()["checks"]["queue"]
        if queue["queued"] == 0 and queue["running"] == 0:
            if queue["failed"]:
                raise RuntimeError(f"{queue['failed']} turn job(s) failed")
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError("the job queue did not drain")


async def _measure(parley: str, bare: str, seconds: float, data_dir: Path) -> dict[str, float]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with (
        httpx.AsyncClient(base_url=parley, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=bare, timeout=60, limits=limits) as base,
    ):
        w = await make_widget(client, {})  # extractive provider: no network in the turn
        visitors = [await visitor(client, w.widget_key) for _ in range(CONCURRENCY)]
        sent = 0

        async def send(i: int) -> None:
            nonlocal sent
            h = {
                **visitors[i][0],
                "Idempotency-Key": uuid.uuid4().hex,
                "Prefer": "respond-async",
            }
            r = await client.post("/v1/widget/messages", json={"content": "hello there"}, headers=h)
            assert r.status_code == 202, r.text
            sent += 1

        async def read(i: int) -> None:
            headers, conv = visitors[i]
            r = await client.get(
                f"/v1/widget/conversations/{conv}/messages?limit=20", headers=headers
            )
            assert r.status_code == 200

        async def echo(i: int) -> None:
            r = await base.post("/echo", json={"content": "hello there"})
            assert r.status_code == 201

        for i in range(CONCURRENCY):  # warm up every connection and code path
            await send(i)
            await read(i)
            await echo(i)
        sent = 0
        base_1 = await _load(seconds, echo)
        write = await _load(seconds, send)
        read_rps = await _load(seconds, read)
        base_2 = await _load(seconds, echo)
        with parley_worker(data_dir):
            drain = await _drain(client)
        return {
            "base": (base_1 + base_2) / 2,
            "base_1": base_1,
            "base_2": base_2,
            "write": write,
            "read": read_rps,
            "drain": drain,
            "turns": (sent + CONCURRENCY) / drain,
        }


def run(quick: bool = False) -> Section:
    seconds = 3.0 if quick else 10.0
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p3-"))
    try:
        with (
            parley_serve(
                data_dir,
                extra_env={"PARLEY_RATE_LIMITS": "off", "PARLEY_WORKER_IN_PROCESS": "false"},
            ) as served,
            baseline_serve() as b,
        ):
            m = asyncio.run(_measure(served.base, b.base, seconds, data_dir))
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    base = m["base"]
    return Section(
        "P3",
        "Write path and tenant-scoped read throughput",
        f"{CONCURRENCY} concurrent clients, {seconds:.0f} s per phase, against one `parley serve` "
        "process (embedded PostgreSQL, rate limits off) and a bare Starlette JSON endpoint "
        "under uvicorn, both running throughout; phases alternate baseline → write → read → "
        "baseline and the baseline is the mean of its two phases. The write path is an "
        "asynchronous widget send (`Prefer: respond-async`: token, idempotency claim, user "
        'message, turn enqueued, in one database round trip — SPEC P3\'s "no LLM"), so the '
        "API runs without its in-process worker, as with dedicated `parley worker` processes; "
        "afterwards a `parley worker` answers every enqueued turn (extractive provider) and "
        "its rate is reported. The load generator runs on the same 2-core machine.",
        ".venv/bin/python -m bench p3",
        [
            Row(
                "widget send (write path), req/s",
                f"{m['write']:.0f}",
                f"{base:.0f}",
                f"{m['write'] / base:.2f}",
                "≥ 0.50",
                m["write"] / base >= 0.5,
            ),
            Row(
                "history read (tenant-scoped JSON), req/s",
                f"{m['read']:.0f}",
                f"{base:.0f}",
                f"{m['read'] / base:.2f}",
                "≥ 0.50",
                m["read"] / base >= 0.5,
            ),
            Row(
                "enqueued turns answered afterwards by one `parley worker`, per s",
                f"{m['turns']:.0f}",
                "",
                "",
                "",
                None,
            ),
        ],
        [
            f"baseline phases: {m['base_1']:.0f} and {m['base_2']:.0f} req/s; the worker "
            f"emptied the queue in {m['drain']:.1f} s (start-up included)",
            "database round trips per send: 1 asynchronous (store + enqueue), 2 with the "
            "turn inline (store + ledger + history; reply + ledger + key) — asserted in "
            "tests/widget/test_send_round_trips.py",
        ],
    )
