"""P15 — noisy neighbour in the job queue: with one workspace's 10,000-job burst queued,
how long after its enqueue does another workspace's first job start?

The product's Worker (default batch and concurrency) runs jobs that each take 20 ms (about an
ingestion step). Workspace A enqueues 10,000 at once; then, every 0.25 s, a new workspace
enqueues its first job through the product's `enqueue()` and the time from its commit to its
handler starting is recorded. Baseline, same run, same database: the fairness trigger
(migration 0020) disabled, i.e. pgqueuer's plain FIFO order.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from bench.procs import stop_embedded_pg
from bench.report import Row, Section, pct

BURST = 10_000
WORK_SECONDS = 0.02
JOB = "bench.work"


async def _scenario(app_url: str, admin_url: str, fair: bool, probes: int) -> dict[str, float]:
    import asyncpg
    from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
    from pgqueuer.adapters.persistence.queries import Queries

    from parley.kit.db import create_database, request_transaction
    from parley.kit.jobs import JobContext, JobRegistry, Worker, asyncpg_dsn, enqueue

    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    await admin.execute("DELETE FROM pgqueuer")
    state = "ENABLE" if fair else "DISABLE"
    await admin.execute(f"ALTER TABLE pgqueuer {state} TRIGGER parley_job_fair_priority")
    noisy = str(uuid.uuid4())
    conn = await asyncpg.connect(asyncpg_dsn(app_url))
    queries = Queries(AsyncpgDriver(conn))
    payload = json.dumps({"tenant_id": noisy}).encode()
    started = time.perf_counter()
    for start in range(0, BURST, 1000):
        n = min(1000, BURST - start)
        await queries.enqueue([JOB] * n, [payload] * n, [0] * n)
    burst_seconds = time.perf_counter() - started
    await conn.close()

    committed: dict[str, float] = {}
    waits: list[float] = []
    all_probes = asyncio.Event()
    registry = JobRegistry()

    @registry.job(JOB)
    async def work(ctx: JobContext) -> None:
        probe = ctx.payload.get("probe")
        if probe is not None:
            waits.append(time.perf_counter() - committed[probe])
            if len(waits) >= probes:
                all_probes.set()
            return
        await asyncio.sleep(WORK_SECONDS)

    db = create_database(app_url, pool_size=10)
    worker = Worker(db=db, registry=registry)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.0)  # the worker is busy with the burst
        for _ in range(probes):
            probe = str(uuid.uuid4())
            async with request_transaction(db) as session:
                await enqueue(session, JOB, {"tenant_id": str(uuid.uuid4()), "probe": probe})
            committed[probe] = time.perf_counter()
            await asyncio.sleep(0.25)
        await asyncio.wait_for(all_probes.wait(), timeout=BURST * WORK_SECONDS)
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
        await db.dispose()
        await admin.execute("DELETE FROM pgqueuer")
        await admin.execute("ALTER TABLE pgqueuer ENABLE TRIGGER parley_job_fair_priority")
        await admin.close()
    return {
        "p50": pct(waits, 50),
        "p95": pct(waits, 95),
        "max": max(waits),
        "burst_enqueue_s": burst_seconds,
    }


def run(quick: bool = False) -> Section:
    from parley.kit import embedded_pg, migrate

    probes = 12 if quick else 30
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p15-"))
    try:
        db = embedded_pg.start(data_dir)
        migrate.upgrade(db.migration_url, db.app_url)
        fair = asyncio.run(_scenario(db.app_url, db.migration_url, True, probes))
        fifo = asyncio.run(_scenario(db.app_url, db.migration_url, False, probes))
    finally:
        stop_embedded_pg(data_dir)
    ratio = fair["p95"] / fifo["p95"] if fifo["p95"] else float("nan")
    return Section(
        id="P15",
        title="Noisy neighbour in the job queue",
        method=(
            f"One workspace's burst of {BURST:,} jobs (each {WORK_SECONDS * 1000:.0f} ms of "
            "work) is queued; the product's Worker (default batch 10, concurrency 20) runs it "
            f"while {probes} other workspaces each enqueue their first job, 0.25 s apart. "
            "Measured: from that job's commit to its handler starting. Baseline in the same "
            "run: the fairness trigger disabled (pgqueuer's plain priority-then-id order)."
        ),
        command="python -m bench p15",
        rows=[
            Row(
                "another workspace's first job, start delay p95",
                f"{fair['p95'] * 1000:.0f} ms",
                f"{fifo['p95'] * 1000:.0f} ms (FIFO)",
                f"{ratio:.3f}",
                "≤ 1 s",
                fair["p95"] <= 1.0,
            ),
            Row(
                "start delay p50 / max",
                f"{fair['p50'] * 1000:.0f} / {fair['max'] * 1000:.0f} ms",
                f"{fifo['p50'] * 1000:.0f} / {fifo['max'] * 1000:.0f} ms",
            ),
            Row(
                f"enqueueing the {BURST:,}-job burst (the trigger's cost)",
                f"{fair['burst_enqueue_s']:.2f} s",
                f"{fifo['burst_enqueue_s']:.2f} s (no trigger)",
                f"{fair['burst_enqueue_s'] / fifo['burst_enqueue_s']:.2f}",
            ),
        ],
        notes=[
            "The trigger lowers a job's priority by one per 10 jobs its workspace already has "
            "queued (counted up to 100 via a partial index, so at most 10 steps): decision 0023.",
        ],
    )
