"""The job queue: transactional enqueue, retries with backoff, held failures and re-run,
heartbeat re-queue of a dead worker's job, tenant context inside jobs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from parley.kit import jobs
from parley.kit.db import Database, create_database, platform_session, request_transaction
from parley.kit.jobs import JobContext, JobRegistry, Worker, asyncpg_dsn, backoff_delay
from tests.conftest import DatabaseUnderTest


@pytest.fixture
async def db(test_db: DatabaseUnderTest) -> AsyncIterator[Database]:
    database = create_database(test_db.app_url, pool_size=5)
    yield database
    await database.dispose()


async def _status(admin_conn: asyncpg.Connection, job_id: int) -> tuple[str, int] | None:
    row = await admin_conn.fetchrow(
        "SELECT status::text, attempts FROM pgqueuer WHERE id = $1", job_id
    )
    return (row[0], row[1]) if row else None


async def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _name(tag: str) -> str:
    return f"test.{tag}.{uuid.uuid4().hex[:8]}"


async def test_enqueue_is_part_of_the_callers_transaction(
    db: Database, admin_conn: asyncpg.Connection
) -> None:
    name = _name("tx")
    with pytest.raises(RuntimeError):
        async with request_transaction(db) as session:
            await jobs.enqueue(session, name, {"n": 1})
            raise RuntimeError("the request fails after enqueueing")
    assert (
        await admin_conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = $1", name) == 0
    )
    async with request_transaction(db) as session:
        job_id = await jobs.enqueue(session, name, {"n": 2})
    assert await _status(admin_conn, job_id) == ("queued", 0)


async def test_dedupe_key_refuses_a_second_live_job(db: Database) -> None:
    from pgqueuer.errors import DuplicateJobError

    name = _name("dedupe")
    async with request_transaction(db) as session:
        await jobs.enqueue(session, name, {}, dedupe_key=f"t1:{name}")
    with pytest.raises(DuplicateJobError):
        async with request_transaction(db) as session:
            await jobs.enqueue(session, name, {}, dedupe_key=f"t1:{name}")


def test_backoff_grows_and_is_capped() -> None:
    for attempt in range(12):
        d = backoff_delay(attempt, base=1.0, cap=60.0).total_seconds()
        ceiling = min(60.0, 2.0**attempt)
        assert ceiling / 2 <= d <= ceiling


async def _run_worker(worker: Worker) -> asyncio.Task[None]:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)
    return task


async def _stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, timeout=15)


async def test_worker_retries_then_succeeds(db: Database, admin_conn: asyncpg.Connection) -> None:
    registry = JobRegistry()
    name = _name("flaky")
    calls: list[int] = []

    @registry.job(name, max_attempts=5)
    async def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        if len(calls) < 3:
            raise ConnectionError("transient")

    async with request_transaction(db) as session:
        job_id = await jobs.enqueue(session, name, {"x": 1})
    # Short backoff for the test: patch the delay function's base through the worker's wrap.
    worker = Worker(db=db, registry=registry, dequeue_timeout=timedelta(seconds=0.2))
    original = jobs.backoff_delay
    jobs.backoff_delay = lambda attempt, **_: timedelta(milliseconds=50)  # type: ignore[assignment]
    task = await _run_worker(worker)
    try:
        await _wait_for(lambda: _done(admin_conn, job_id))
    finally:
        jobs.backoff_delay = original  # type: ignore[assignment]
        await _stop(worker, task)
    assert calls == [0, 1, 2]


async def _done(admin_conn: asyncpg.Connection, job_id: int) -> bool:
    status = await _status(admin_conn, job_id)
    if status is None:
        return True  # pgqueuer deletes successful jobs from the queue table...
    return status[0] == "successful"


async def test_final_failure_is_held_and_can_be_rerun(
    db: Database, admin_conn: asyncpg.Connection
) -> None:
    registry = JobRegistry()
    name = _name("broken")
    state = {"broken": True, "runs": 0}

    @registry.job(name, max_attempts=2)
    async def broken(ctx: JobContext) -> None:
        state["runs"] += 1
        if state["broken"]:
            raise ValueError("permanent")

    async with request_transaction(db) as session:
        job_id = await jobs.enqueue(session, name, {})
    original = jobs.backoff_delay
    jobs.backoff_delay = lambda attempt, **_: timedelta(milliseconds=50)  # type: ignore[assignment]
    worker = Worker(db=db, registry=registry, dequeue_timeout=timedelta(seconds=0.2))
    task = await _run_worker(worker)
    try:
        await _wait_for(lambda: _is(admin_conn, job_id, "failed"))
        assert state["runs"] == 2
        async with platform_session(db) as session:
            failed = await jobs.list_failed(session)
        mine = [f for f in failed if f["id"] == job_id]
        assert mine
        assert "ValueError" in (mine[0]["error"] or "")
        # Fixed; re-run it.
        state["broken"] = False
        async with request_transaction(db) as session:
            assert await jobs.requeue_failed(session, [job_id]) == 1
        await _wait_for(lambda: _done(admin_conn, job_id))
        assert state["runs"] == 3
    finally:
        jobs.backoff_delay = original  # type: ignore[assignment]
        await _stop(worker, task)


async def _is(admin_conn: asyncpg.Connection, job_id: int, status: str) -> bool:
    got = await _status(admin_conn, job_id)
    return got is not None and got[0] == status


async def test_a_dead_workers_job_is_picked_up_again(
    db: Database, admin_conn: asyncpg.Connection
) -> None:
    """A worker that stops heart-beating (killed) leaves its job `picked`; after the heartbeat
    timeout another worker takes it and runs it to completion."""
    registry = JobRegistry()
    name = _name("orphan")
    ran: list[int] = []

    @registry.job(name)
    async def orphan(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    async with request_transaction(db) as session:
        job_id = await jobs.enqueue(session, name, {})
    # Exactly what a SIGKILLed worker leaves behind: picked, owned by a manager that is gone,
    # with a heartbeat that stopped a while ago.
    await admin_conn.execute(
        "UPDATE pgqueuer SET status = 'picked', queue_manager_id = $2, "
        "heartbeat = now() - interval '10 seconds' WHERE id = $1",
        job_id,
        uuid.uuid4(),
    )
    worker = Worker(
        db=db,
        registry=registry,
        heartbeat_timeout=timedelta(seconds=2),
        dequeue_timeout=timedelta(seconds=0.2),
    )
    task = await _run_worker(worker)
    try:
        await _wait_for(lambda: _done(admin_conn, job_id))
    finally:
        await _stop(worker, task)
    assert ran == [job_id]


async def test_tenant_jobs_run_inside_the_tenant_context(db: Database) -> None:
    registry = JobRegistry()
    name = _name("tenant")
    seen: list[str | None] = []
    tenant = str(uuid.uuid4())

    @registry.job(name)
    async def tenant_job(ctx: JobContext) -> None:
        async with ctx.tenant_session() as session:
            seen.append(await session.scalar(text("SELECT current_setting('app.tenant_id', true)")))

    async with request_transaction(db) as session:
        await jobs.enqueue(session, name, {"tenant_id": tenant})
    worker = Worker(db=db, registry=registry, dequeue_timeout=timedelta(seconds=0.2))
    task = await _run_worker(worker)
    try:

        async def ran() -> bool:
            return bool(seen)

        await _wait_for(ran)
    finally:
        await _stop(worker, task)
    assert seen == [tenant]


async def test_cron_schedules_enqueue_one_job_per_tick(
    db: Database, admin_conn: asyncpg.Connection
) -> None:
    registry = JobRegistry()
    name = _name("cron")
    ran: list[int] = []

    @registry.job(name)
    async def nightly(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    with pytest.raises(RuntimeError):
        registry.every("no.such.job", "* * * * *")
    registry.every(name, "0 3 * * *")
    worker = Worker(db=db, registry=registry, dequeue_timeout=timedelta(seconds=0.2))
    tick = worker._enqueue_on_tick(name)
    await tick(None)
    await tick(None)  # the previous run is still queued: skipped, not doubled
    assert (
        await admin_conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = $1", name) == 1
    )
    task = await _run_worker(worker)
    try:

        async def registered_and_ran() -> bool:
            n = await admin_conn.fetchval(
                "SELECT count(*) FROM pgqueuer_schedules WHERE entrypoint = $1", f"cron:{name}"
            )
            return bool(n) and len(ran) == 1

        await _wait_for(registered_and_ran)
    finally:
        await _stop(worker, task)


async def test_sigkilled_worker_loses_no_job(
    db: Database, admin_conn: asyncpg.Connection, test_db: DatabaseUnderTest, tmp_path: Any
) -> None:
    """A real worker process is SIGKILLed mid-job; another worker finishes the job, once."""
    import signal
    import subprocess
    import sys

    name = _name("crash")
    marker = tmp_path / "started"
    async with request_transaction(db) as session:
        job_id = await jobs.enqueue(session, name, {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kit.crashing_worker", test_db.app_url, name, str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def started() -> bool:
            return marker.exists()

        await _wait_for(started, timeout=30)
        assert await _is(admin_conn, job_id, "picked")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    registry = JobRegistry()
    ran: list[int] = []

    @registry.job(name)
    async def finish(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    worker = Worker(
        db=db,
        registry=registry,
        heartbeat_timeout=timedelta(seconds=2),
        dequeue_timeout=timedelta(seconds=0.2),
    )
    task = await _run_worker(worker)
    try:
        await _wait_for(lambda: _done(admin_conn, job_id), timeout=30)
    finally:
        await _stop(worker, task)
    assert ran == [job_id]


async def test_expired_idempotency_keys_are_purged_per_tenant(
    db: Database, admin_conn: asyncpg.Connection, client: Any
) -> None:
    from parley.conversations.tasks import purge_idempotency_keys
    from tests.conftest import create_widget, register, widget_session

    owner = await register(client, "purge")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    for key in ("old", "fresh"):
        r = await client.post(
            "/v1/widget/messages",
            json={"content": key},
            headers={**s.headers, "Idempotency-Key": key},
        )
        assert r.status_code == 201
    tid = uuid.UUID(owner.tenant_id)
    await admin_conn.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
        "WHERE tenant_id = $1 AND key = 'old'",
        tid,
    )
    await purge_idempotency_keys(JobContext(db=db, job_id=0, entrypoint="x", attempt=0, payload={}))
    keys = await admin_conn.fetch("SELECT key FROM idempotency_keys WHERE tenant_id = $1", tid)
    assert [k["key"] for k in keys] == ["fresh"]


async def test_a_worker_nudge_reaches_the_workers_channel(
    app: Any, test_db: DatabaseUnderTest
) -> None:
    """Enqueues that skip pgqueuer's per-insert NOTIFY (channel ingress) wake the workers with a
    coalesced nudge on pgqueuer's own channel; a nudge that never arrives would leave jobs to
    the workers' slow poll."""
    from pgqueuer.domain.settings import db_settings

    from parley.kit.jobs import WorkerNudge

    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(asyncpg_dsn(test_db.app_url))
    try:
        await conn.add_listener(
            db_settings().channel, lambda *args: received.put_nowait(str(args[-1]))
        )
        nudge = WorkerNudge(app.state.runtime.db)
        nudge.poke()
        nudge.poke()  # coalesced with the first
        payload = await asyncio.wait_for(received.get(), timeout=5)
        await nudge.aclose()
    finally:
        await conn.close()
    assert '"table_changed_event"' in payload.replace(" ", "")
