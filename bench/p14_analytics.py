"""P14 — the analytics roll-ups on 10 workspaces × 1,000,000 messages over 90 days: equal to a
direct recount after late and duplicate events, and the metrics read against a bare page read.

A real Parley database (embedded PostgreSQL, migrations, app role under RLS). Per workspace one
bot on two channels and 10,000 conversations of 10 messages (user and assistant in turn; a
turn per reply, some fallback or failed, two models; feedback on a fifth of the replies;
handoffs and resolutions) made by set-based SQL as the owner, so the product's triggers mark
the days. The roll-up job's own code (`analytics.service.roll_up`, in the tenant context)
then recomputes every marked day. Late and duplicate events follow (messages and turns dated
in past days, feedback flipped and re-delivered, handoffs of old conversations, marks
repeated), the roll-up runs again, and every workspace's roll-ups are compared with a direct
recount from the source rows (must be equal). The metrics read is the endpoint's service
(`analytics.service.metrics`, 90 days by day, through the tenant door); the baseline is the
same door and one ORM page of 50 conversations by primary key.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select

from bench.analytics_data import differences, late_sql, load_sql
from bench.kb import BenchDb, bench_database
from bench.report import Row, Section, pct
from parley.analytics import service
from parley.kit.db import TenantId, tenant_session
from parley.models import Conversation

TENANTS = 10
CONVERSATIONS = 10_000  # per workspace; × 10 messages × 10 workspaces = 1,000,000 messages
MESSAGES_PER = 10
DAYS = 90
LATE = 500  # conversations per workspace that get late events


async def _roll_up(db: Any, ids: list[TenantId]) -> int:
    days = 0
    for tid in ids:
        while True:
            async with tenant_session(db, tid) as session:
                n = await service.roll_up(session, tid)
            if n == 0:
                break
            days += n
    return days


async def _time(calls: int, one: Callable[[int], Awaitable[Any]]) -> list[float]:
    for i in range(5):
        await one(i)
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        await one(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _measure(quick: bool) -> dict[str, Any]:
    conversations = int(os.environ.get("PARLEY_BENCH_P14_CONVERSATIONS", CONVERSATIONS))
    tenants, conversations = (2, 1_000) if quick else (TENANTS, conversations)
    calls = 60 if quick else 300
    info: dict[str, Any] = {"tenants": tenants, "conversations": conversations}
    async with bench_database(pool_size=4) as bench:
        ids = await _load(bench, tenants, conversations, info)
        db = bench.db
        t0 = time.perf_counter()
        info["days_rolled"] = await _roll_up(db, ids)
        info["rollup_s"] = time.perf_counter() - t0
        conn = await asyncpg.connect(bench.admin_dsn)
        try:
            for tid in ids:
                await conn.execute(late_sql(tid, LATE if not quick else 50))
            t0 = time.perf_counter()
            info["late_days_rolled"] = await _roll_up(db, ids)
            info["late_rollup_s"] = time.perf_counter() - t0
            diffs = {"daily": 0, "models": 0, "latency": 0}
            for tid in ids:
                for k, v in (await differences(conn, tid)).items():
                    diffs[k] += v
            info["differences"] = diffs
            info["messages"] = await conn.fetchval("SELECT count(*) FROM messages")
            t0 = time.perf_counter()
            for tid in ids[:3]:
                await differences(conn, tid)
            info["recount_ms"] = (time.perf_counter() - t0) * 1000 / 3
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        rng = random.Random(14)
        today = datetime.now(UTC).date()

        async def bare(_: int) -> None:
            tid = rng.choice(ids)
            async with tenant_session(db, tid) as session:
                rows = await session.execute(
                    select(Conversation)
                    .where(Conversation.tenant_id == tid)
                    .order_by(Conversation.id.desc())
                    .limit(50)
                )
                assert len(rows.scalars().all()) == 50

        def metrics(**kw: Any) -> Callable[[int], Awaitable[None]]:
            async def one(_: int) -> None:
                tid = rng.choice(ids)
                async with tenant_session(db, tid) as session:
                    report = await service.metrics(
                        session,
                        tid,
                        start=today - timedelta(days=DAYS - 1),
                        end=today,
                        bot_id=None,
                        channel_id=None,
                        **kw,
                    )
                    assert report.total.messages > 0

            return one

        timings = {"bare": await _time(calls, bare)}
        timings["metrics, 90 days by day"] = await _time(calls, metrics(group_by="day"))
        timings["metrics, 90 days by channel"] = await _time(calls, metrics(group_by="channel"))
        timings["bare (again)"] = await _time(calls, bare)
        info["timings"] = timings
    return info


async def _load(
    bench: BenchDb, tenants: int, conversations: int, info: dict[str, Any]
) -> list[TenantId]:
    ids = []
    started = time.perf_counter()
    conn = await asyncpg.connect(bench.admin_dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for i in range(tenants):
            tid = await bench.tenant(f"analytics-{i}")
            ids.append(tid)
            await conn.execute(
                load_sql(uuid.UUID(str(tid)), conversations, days=DAYS, messages_per=MESSAGES_PER)
            )
            print(f"   p14: workspace {i + 1}/{tenants} loaded", flush=True)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    info["load_s"] = time.perf_counter() - started
    return ids


def run(quick: bool = False) -> Section:
    info = asyncio.run(_measure(quick))
    timings = info["timings"]
    base = pct(timings["bare"] + timings["bare (again)"], 95)
    equal = all(v == 0 for v in info["differences"].values())
    rows = [
        Row(
            "roll-ups = direct recount (rows that differ)",
            str(sum(info["differences"].values())),
            "0",
            "—",
            "0",
            equal,
        ),
        Row("bare PK page read (baseline), p95", f"{base:.2f} ms"),
    ]
    for label, values in timings.items():
        if label.startswith("bare"):
            continue
        p95 = pct(values, 95)
        rows.append(
            Row(
                f"{label}, p95",
                f"{p95:.2f} ms",
                f"{base:.2f} ms",
                f"{p95 / base:.2f}×" if base else "—",
                "≤ 50 ms",
                p95 <= 50,
            )
        )
    notes = [
        f"{info['tenants']} workspaces × {info['conversations']:,} conversations × "
        f"{MESSAGES_PER} messages over {DAYS} days = {info['messages']:,} messages (with the "
        f"late ones), loaded in {info['load_s']:.0f} s.",
        f"First roll-up: {info['days_rolled']} workspace-days in {info['rollup_s']:.1f} s; "
        f"after the late and duplicate events: {info['late_days_rolled']} workspace-days in "
        f"{info['late_rollup_s']:.1f} s. A direct recount of one workspace (what a read "
        f"without roll-ups would cost): {info['recount_ms']:.0f} ms.",
        f"Differences by table: {info['differences']}.",
        f"Load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(a machine shared with other engineers' work).",
    ]
    return Section(
        "P14",
        "Analytics roll-ups: equal to a recount, and the metrics read",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip() if __doc__ else "",
        ".venv/bin/python -m bench p14" + (" --quick" if quick else ""),
        rows,
        notes,
    )
