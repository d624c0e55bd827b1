"""P2 — platform overhead on time to first token: the widget's SSE send through Parley (token
check, idempotency, storing the user message, history, relay) against calling the same local
OpenAI-compatible fake server directly, in the same run."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.procs import fake_openai_process, parley_serve, stop_embedded_pg
from bench.report import Row, Section, median, pct
from bench.setup_tenant import make_widget, visitor

PACED = "fake-paced"  # the fake's model that streams 40 tokens, one every 25 ms
THINK = (0.5, 1.5)  # seconds a visitor takes before the next message


async def _first_token_direct(client: httpx.AsyncClient, base: str, text: str) -> float:
    started = time.perf_counter()
    body = {
        "model": "fake-echo",
        "stream": True,
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": text}],
    }
    async with client.stream("POST", base + "/chat/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and '"content"' in line:
                return time.perf_counter() - started
    raise RuntimeError("no token")


async def _paced_direct(client: httpx.AsyncClient, base: str, text: str) -> float:
    """Time to the first token of a paced reply, read to its end (the stream stays open for
    its whole length, as a visitor's does)."""
    started = time.perf_counter()
    body = {
        "model": PACED,
        "stream": True,
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": text}],
    }
    got = None
    async with client.stream("POST", base + "/chat/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if got is None and line.startswith("data: ") and '"content"' in line:
                got = time.perf_counter() - started
    if got is None:
        raise RuntimeError("no token")
    return got


async def _first_token_sdk(client: Any, text: str) -> float:
    """The same call through the official `openai` SDK (what Parley's provider uses): shows
    how much of the overhead is the SDK's own."""
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="fake-echo",
        stream=True,
        messages=[{"role": "system", "content": "x"}, {"role": "user", "content": text}],
    )
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.perf_counter() - started
    finally:
        await stream.close()
    raise RuntimeError("no token")


async def _first_token_parley(
    client: httpx.AsyncClient, headers: dict[str, str], text: str
) -> float:
    started = time.perf_counter()
    h = {**headers, "Accept": "text/event-stream", "Idempotency-Key": uuid.uuid4().hex}
    async with client.stream(
        "POST", "/v1/widget/messages", json={"content": text}, headers=h
    ) as resp:
        got = None
        async for line in resp.aiter_lines():
            if got is None and line == "event: reply.delta":
                got = time.perf_counter() - started
        if got is None:
            raise RuntimeError(f"no token (HTTP {resp.status_code})")
        return got


async def _measure(
    base: str, fake: str, rounds: int, concurrency: int
) -> tuple[list[float], list[float], list[float]]:
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        w = await make_widget(client, {"provider": "openai", "model": "fake-echo"})
        visitors = [await visitor(client, w.widget_key) for _ in range(concurrency)]
        # warm-up
        await _first_token_parley(client, visitors[0][0], "warm up")
        await _first_token_direct(client, fake, "warm up")
        import openai

        sdk_client = openai.AsyncOpenAI(base_url=fake, api_key="sk-bench", max_retries=0)
        await _first_token_sdk(sdk_client, "warm up")
        direct: list[float] = []
        via: list[float] = []
        sdk: list[float] = []

        async def worker(i: int) -> None:
            headers = visitors[i][0]
            for r in range(rounds):
                text = f"question {i}-{r}"
                direct.append(await _first_token_direct(client, fake, text))
                via.append(await _first_token_parley(client, headers, text))
                if concurrency == 1:
                    sdk.append(await _first_token_sdk(sdk_client, text))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        await sdk_client.close()
        return direct, via, sdk


async def _measure_paced(
    base: str, fake: str, rounds: int, concurrency: int
) -> tuple[list[float], list[float]]:
    """`concurrency` conversations at once, each as a visitor chats: send, read the streamed
    reply to its end (40 tokens at 25 ms: about a second), think for 0.5–1.5 s, send again;
    alternating with the same call made to the fake directly, paced the same way."""
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        w = await make_widget(client, {"provider": "openai", "model": PACED})
        visitors = [await visitor(client, w.widget_key) for _ in range(concurrency)]
        # Warm up as a server that has been running is: every conversation has chatted once
        # and the pools have grown to what this load needs. Not measured.
        await asyncio.gather(
            *(_first_token_parley(client, v[0], "warm up") for v in visitors),
            *(_paced_direct(client, fake, "warm up") for _ in visitors),
        )
        direct: list[float] = []
        via: list[float] = []

        async def conversation(i: int) -> None:
            headers = visitors[i][0]
            await asyncio.sleep(rng.uniform(0, THINK[1]))  # visitors do not arrive in step
            for r in range(rounds):
                text = f"question {i}-{r}"
                direct.append(await _paced_direct(client, fake, text))
                await asyncio.sleep(rng.uniform(*THINK))
                via.append(await _first_token_parley(client, headers, text))
                await asyncio.sleep(rng.uniform(*THINK))

        await asyncio.gather(*(conversation(i) for i in range(concurrency)))
        return direct, via


def run(quick: bool = False) -> Section:
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p2-"))
    seq_rounds, conc_rounds, paced_rounds = (20, 2, 2) if quick else (300, 6, 8)
    try:
        with (
            fake_openai_process() as fake,
            parley_serve(
                data_dir,
                extra_env={
                    "OPENAI_BASE_URL": fake,
                    "OPENAI_API_KEY": "sk-bench",
                    "PARLEY_RATE_LIMITS": "off",
                },
            ) as served,
        ):
            d1, v1, s1 = asyncio.run(_measure(served.base, fake, seq_rounds, 1))
            p50d, p50v = asyncio.run(_measure_paced(served.base, fake, paced_rounds, 50))
            d50, v50, _ = asyncio.run(_measure(served.base, fake, conc_rounds, 50))
    finally:
        stop_embedded_pg(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    ms = 1000
    add1 = (median(v1) - median(d1)) * ms
    add50 = (median(p50v) - median(p50d)) * ms
    add99 = (pct(p50v, 99) - pct(p50d, 99)) * ms
    sat50 = (median(v50) - median(d50)) * ms
    sat99 = (pct(v50, 99) - pct(d50, 99)) * ms
    return Section(
        "P2",
        "Platform overhead on time to first token",
        "Time from sending to the first token: through Parley's widget endpoint (SSE) vs the same "
        "local OpenAI-compatible fake server called directly, alternating in the same client; "
        "one conversation at a time, then 50 concurrent conversations chatting at a visitor's "
        "pace. Parley runs as "
        "`parley serve` (embedded PostgreSQL, rate limits off); the fake runs as its own process. "
        "Parley's side is the whole send: token check, idempotency claim, user message, turn "
        "ledger and history in one statement, then the provider call through the `openai` SDK "
        "and the SSE relay.",
        ".venv/bin/python -m bench p2",
        [
            Row(
                "1 conversation: added p50",
                f"{add1:.1f} ms",
                f"direct p50 {median(d1) * ms:.1f} ms",
                f"{median(v1) / median(d1):.1f}×",
                "≤ 3 ms",
                add1 <= 3,
            ),
            Row(
                "50 concurrent conversations: added p50",
                f"{add50:.1f} ms",
                f"direct p50 {median(p50d) * ms:.1f} ms",
                f"{median(p50v) / median(p50d):.1f}×",
                "≤ 10 ms",
                add50 <= 10,
            ),
            Row(
                "50 concurrent conversations: added p99",
                f"{add99:.1f} ms",
                f"direct p99 {pct(p50d, 99) * ms:.1f} ms",
                f"{pct(p50v, 99) / pct(p50d, 99):.1f}×",
                "≤ 40 ms",
                add99 <= 40,
            ),
            Row(
                "50 clients back to back, instant replies (saturation): added p50 / p99",
                f"{sat50:.1f} / {sat99:.1f} ms",
                f"direct p50 {median(d50) * ms:.1f} / p99 {pct(d50, 99) * ms:.1f} ms",
                "—",
                "—",
                None,
            ),
        ],
        [
            f"samples: {len(v1)} sequential, {len(p50v)} in 50 conversations, {len(v50)} "
            "back to back",
            "50 concurrent conversations: each sends, reads the streamed reply to its end "
            f"(`{PACED}`: 40 tokens, one every 25 ms), thinks {THINK[0]}–{THINK[1]} s and sends "
            "again, alternating with the same paced call made directly (decision 0011). The "
            "back-to-back row keeps 50 clients with no pause and instant replies: every "
            "client waits on the one API process and on the one client process, so it measures "
            "saturation (throughput is P3's figure), not the overhead on a reply",
            f"for comparison, 1 conversation through the official `openai` SDK directly: p50 "
            f"{median(s1) * ms:.1f} ms (+{(median(s1) - median(d1)) * ms:.1f} ms over raw httpx)",
        ],
    )
