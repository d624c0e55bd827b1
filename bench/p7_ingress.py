"""P7 — webhook ingress (verify + dedupe + store + enqueue) in events/s over real HTTP, against
a bare Starlette JSON endpoint under the same load in the same run; and no-op jobs/s completed
by the job worker. Both with 0-lost / 0-duplicated totals checked in the database."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.procs import baseline_serve, parley_serve, stop_embedded_pg
from bench.rawhttp import Connection
from bench.report import Row, Section

CONCURRENCY = 16
PROCESSES = (1, 2)  # API processes: one, then one per core (the last is judged on the target)
DUPLICATE_EVERY = 10  # every 10th delivery repeats an earlier webhook-id
NOOP = "bench.noop"


async def _setup(base: str) -> tuple[str, str, str]:
    from bench.setup_tenant import make_widget

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        w = await make_widget(client, {})
        bots = await client.get(f"/v1/tenants/{w.tenant_id}/bots", headers=w.owner_headers)
        bot_id = bots.json()["items"][0]["id"]
        ch = await client.post(
            f"/v1/tenants/{w.tenant_id}/channels",
            json={
                "type": "webhook",
                "bot_id": bot_id,
                "config": {"callback_url": "https://hooks.example.com/bench"},
            },
            headers=w.owner_headers,
        )
        ch.raise_for_status()
        body = ch.json()
        return w.tenant_id, body["inbound_path"], body["webhook_secret"]


async def _load(base: str, seconds: float, request: Any) -> tuple[float, dict[str, int]]:
    """Requests/s over CONCURRENCY keep-alive connections; outcomes counted by label."""
    counts: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    n = 0

    async def worker() -> None:
        nonlocal n
        conn = await Connection.open(base)
        try:
            while time.perf_counter() < deadline:
                i = n
                n += 1
                label = await request(conn, i)
                counts[label] = counts.get(label, 0) + 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return sum(counts.values()) / (time.perf_counter() - started), counts


async def _ingress(
    base: str, path: str, secret: str, seconds: float
) -> tuple[float, dict[str, int]]:
    from parley.channels import signatures

    async def deliver(conn: Connection, i: int) -> str:
        dup = i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1
        msg_id = f"evt_{i - 1 if dup else i}"
        body = json.dumps({"external_user_id": f"u{i % 100}", "text": f"hello {i}"}).encode()
        if dup:  # the same delivery again, as a sender retrying would send it
            body = json.dumps(
                {"external_user_id": f"u{(i - 1) % 100}", "text": f"hello {i - 1}"}
            ).encode()
        headers = {"Content-Type": "application/json", **signatures.headers(secret, msg_id, body)}
        status, answer = await conn.post(path, body, headers)
        if status != 200:
            return f"http_{status}"
        return str(json.loads(answer)["status"])

    return await _load(base, seconds, deliver)


async def _baseline(base: str, seconds: float) -> float:
    async def echo(conn: Connection, i: int) -> str:
        status, _ = await conn.post(
            "/echo",
            b'{"external_user_id":"u","text":"hello"}',
            {"Content-Type": "application/json"},
        )
        return str(status)

    rps, _ = await _load(base, seconds, echo)
    return rps


async def _check_ingress(app_url: str, tenant_id: str) -> tuple[int, int, int]:
    """(events stored, distinct webhook-ids stored, process jobs queued) for the tenant."""
    import asyncpg

    from parley.kit.jobs import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(app_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            events = await conn.fetchval("SELECT count(*) FROM inbound_events")
            distinct = await conn.fetchval("SELECT count(DISTINCT dedupe_key) FROM inbound_events")
        jobs = await conn.fetchval(
            "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'channels.process_inbound' "
            "AND convert_from(payload, 'UTF8')::jsonb->>'tenant_id' = $1",
            tenant_id,
        )
    finally:
        await conn.close()
    return int(events), int(distinct), int(jobs)


async def _jobs(app_url: str, count: int) -> tuple[float, int, int]:
    """No-op jobs/s through the product's Worker: (rate, completed distinct, duplicates)."""
    from datetime import timedelta

    import asyncpg
    from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
    from pgqueuer.adapters.persistence.queries import Queries

    from parley.kit.db import create_database
    from parley.kit.jobs import JobContext, JobRegistry, Worker, asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(app_url))
    try:
        queries = Queries(AsyncpgDriver(conn))
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            await queries.enqueue([NOOP] * n, [b"{}"] * n, [0] * n)
    finally:
        await conn.close()
    done: list[int] = []
    finished = asyncio.Event()
    registry = JobRegistry()

    @registry.job(NOOP)
    async def noop(ctx: JobContext) -> None:
        done.append(ctx.job_id)
        if len(done) >= count:
            finished.set()

    db = create_database(app_url, pool_size=10)
    worker = Worker(
        db=db,
        registry=registry,
        concurrency=20,
        batch_size=50,
        dequeue_timeout=timedelta(seconds=0.5),
    )
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(finished.wait(), timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)
        await db.dispose()
    return len(done) / elapsed, len(set(done)), len(done) - len(set(done))


@dataclass
class IngressRun:
    processes: int
    rps: float
    base_rps: float
    outcomes: dict[str, int]
    events: int
    distinct: int
    queued: int

    @property
    def accepted(self) -> int:
        return self.outcomes.get("accepted", 0)

    @property
    def duplicates(self) -> int:
        return self.outcomes.get("duplicate", 0)

    @property
    def refused(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k not in ("accepted", "duplicate"))

    @property
    def accepted_rps(self) -> float:
        handled = max(1, self.accepted + self.duplicates + self.refused)
        return self.rps * self.accepted / handled

    @property
    def lost(self) -> int:
        return self.accepted - self.events

    @property
    def doubled(self) -> int:
        return self.events - self.distinct + max(0, self.queued - self.events)


def _ingress_run(processes: int, seconds: float, data_dir: Path) -> IngressRun:
    """`parley serve --workers N` on its own embedded database, then the bare baseline with
    the same number of processes; the stored totals are counted once the server stopped."""
    from parley.kit import embedded_pg

    env = {"PARLEY_RATE_LIMITS": "off", "PARLEY_WORKER_IN_PROCESS": "false"}
    with parley_serve(data_dir, extra_env=env, args=["--workers", str(processes)]) as served:
        tenant_id, path, secret = asyncio.run(_setup(served.base))
        rps, outcomes = asyncio.run(_ingress(served.base, path, secret, seconds))
    with baseline_serve(workers=processes) as b:
        base_rps = asyncio.run(_baseline(b.base, seconds))
    db = embedded_pg.start(data_dir)
    events, distinct, queued = asyncio.run(_check_ingress(db.app_url, tenant_id))
    return IngressRun(processes, rps, base_rps, outcomes, events, distinct, queued)


def run(quick: bool = False) -> Section:
    import os

    load_before = os.getloadavg()[0]
    seconds = 3.0 if quick else 10.0
    job_count = 3_000 if quick else 20_000
    runs: list[IngressRun] = []
    for processes in PROCESSES:
        data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-p7-"))
        try:
            runs.append(_ingress_run(processes, seconds, data_dir))
            if processes == PROCESSES[-1]:
                from parley.kit import embedded_pg

                db = embedded_pg.start(data_dir)
                job_rate, job_done, job_dups = asyncio.run(_jobs(db.app_url, job_count))
        finally:
            stop_embedded_pg(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    rows: list[Row] = []
    for r in runs:
        label = f"{r.processes} API process" + ("es" if r.processes > 1 else "")
        target = r.processes == PROCESSES[-1]
        rows += [
            Row(
                f"deliveries handled, req/s (incl. redeliveries), {label}",
                f"{r.rps:.0f}",
                f"{r.base_rps:.0f}",
                f"{r.rps / r.base_rps:.2f}",
                "—",
                None,
            ),
            Row(
                f"new events accepted, events/s, {label}",
                f"{r.accepted_rps:.0f}",
                f"{r.base_rps:.0f}",
                f"{r.accepted_rps / r.base_rps:.2f}",
                "≥ 1,000" if target else "—",
                r.accepted_rps >= 1000 if target else None,
            ),
            Row(
                f"ingress: lost / duplicated (events, jobs), {label}",
                f"{r.lost} / {r.doubled}",
                f"{r.accepted} accepted, {r.duplicates} redeliveries",
                "—",
                "0 / 0",
                r.lost == 0 and r.doubled == 0 and r.refused == 0,
            ),
        ]
    rows += [
        Row(
            "no-op jobs completed, jobs/s",
            f"{job_rate:.0f}",
            "—",
            "—",
            "≥ 1,000",
            job_rate >= 1000,
        ),
        Row(
            "jobs: lost / duplicated",
            f"{job_count - job_done} / {job_dups}",
            f"{job_count} enqueued",
            "—",
            "0 / 0",
            job_done == job_count and job_dups == 0,
        ),
    ]
    return Section(
        "P7",
        "Webhook ingress and background jobs",
        f"{CONCURRENCY} keep-alive connections for {seconds:.0f} s each (a minimal asyncio HTTP "
        "client, so the client is not the bottleneck) against `parley serve` (embedded "
        "PostgreSQL, rate limits off, no in-process worker), first as one API process, then "
        f"as {PROCESSES[-1]} (`--workers {PROCESSES[-1]}`, one per core: how it is deployed "
        "on this machine, docs/operations.md), each on a fresh database, POSTing Standard "
        f"Webhooks-signed deliveries to a webhook channel, every {DUPLICATE_EVERY}th a "
        "redelivery of the previous webhook-id; and against a bare Starlette JSON endpoint "
        "under uvicorn with the same number of processes in the same run. Each accepted "
        "delivery is verified (timestamp window, HMAC), deduplicated, stored and its "
        "processing job enqueued in one transaction (one statement), answered ahead of the FastAPI "
        "stack (decision 0010). Then "
        f"{job_count} no-op jobs are enqueued and drained by the product's `Worker` "
        "(batch 50, concurrency 20) in the same process. Lost/duplicated are counted in the "
        "database afterwards.",
        ".venv/bin/python -m bench p7",
        rows,
        notes=[
            f"machine load average (1 min) when the run started: {load_before:.1f} on "
            f"{os.cpu_count()} cores (other processes share the machine, and PostgreSQL runs on "
            "it too; an accepted delivery to a channel the process has seen is 1 database round "
            "trip — `parley_inbound_receive`: secret check, insert, enqueue, durable commit — "
            "plus a coalesced worker wake-up at most every 20 ms; decision 0008)",
            *(
                f"ingress outcomes, {r.processes} process(es): "
                f"{json.dumps(r.outcomes, sort_keys=True)}; stored {r.events} events "
                f"({r.distinct} distinct webhook-ids), {r.queued} processing jobs queued"
                for r in runs
            ),
        ],
    )


if __name__ == "__main__":
    print(run(quick=True).markdown())
