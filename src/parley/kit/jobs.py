"""Background jobs on pgqueuer (PostgreSQL-backed, asyncpg).

- `enqueue()` writes the job on the caller's own connection, inside the caller's transaction:
  a request that rolls back leaves no job, a request that commits never loses its job.
- `Worker` runs registered handlers: batched dequeue, a heartbeat so another worker re-picks
  the jobs of a worker that died, retries with exponential backoff and jitter, and after the
  last attempt the job is held with status `failed` for inspection and re-run (never dropped).
- Handlers get a `JobContext`; a tenant job opens the tenant context from the tenant id our own
  code put in the payload, through the same door as a request.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url

from parley.kit import telemetry
from parley.kit.db import Database, TenantId, driver_statement, request_transaction, tenant_session
from parley.kit.metrics import JOBS_DONE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobContext:
    db: Database
    job_id: int
    entrypoint: str
    attempt: int
    payload: dict[str, Any]
    runtime_: Runtime | None = None
    max_attempts: int = 1

    @property
    def final_attempt(self) -> bool:
        """True when a failure now is held as `failed` instead of retried."""
        return self.attempt + 1 >= self.max_attempts

    @property
    def runtime(self) -> Runtime:
        """The process runtime (settings, keys, outbound clients) for jobs that call out."""
        if self.runtime_ is None:
            raise RuntimeError("this worker was started without a runtime")
        return self.runtime_

    @property
    def tenant_id(self) -> TenantId:
        """The tenant our own code put in the payload when it enqueued the job."""
        return TenantId(UUID(str(self.payload["tenant_id"])))

    @asynccontextmanager
    async def tenant_session(self) -> AsyncIterator[AsyncSession]:
        """The tenant context for a job whose payload carries the `tenant_id` we enqueued."""
        async with tenant_session(self.db, self.tenant_id) as session:
            yield session


Handler = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    handler: Handler
    max_attempts: int | None
    concurrency_limit: int


@dataclass
class JobRegistry:
    specs: dict[str, JobSpec] = field(default_factory=dict)
    schedules: dict[str, str] = field(default_factory=dict)  # job name -> cron expression

    def every(self, name: str, cron: str) -> None:
        """Enqueue job `name` on a cron schedule (one enqueue per tick across all workers;
        the run itself gets the job's retries and failure holding)."""
        if name not in self.specs:
            raise RuntimeError(f"schedule for unknown job {name!r}")
        self.schedules[name] = cron

    def job(
        self, name: str, *, max_attempts: int | None = None, concurrency_limit: int = 0
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self.specs:
                raise RuntimeError(f"job {name!r} is registered twice")
            self.specs[name] = JobSpec(name, handler, max_attempts, concurrency_limit)
            return handler

        return register


REGISTRY = JobRegistry()
"""Jobs of the product; feature packages register theirs in their `tasks.py`."""


def backoff_delay(attempt: int, *, base: float = 2.0, cap: float = 600.0) -> timedelta:
    """Exponential backoff with full jitter (attempt 0 → up to 2 s, 1 → 4 s, …, capped)."""
    ceiling = min(cap, base * (2**attempt))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The same database URL in the form asyncpg itself accepts."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    SQLAlchemy sends BEGIN lazily, on its first statement; if the caller has not run one yet,
    run one, or pgqueuer's insert would autocommit outside the caller's transaction.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    if not driver.is_in_transaction():
        await session.execute(text("SELECT 1"))
    if not driver.is_in_transaction():
        raise RuntimeError("enqueue() needs a session inside a transaction")
    return driver


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    delay: timedelta | None = None,
    priority: int = 0,
) -> int:
    """Enqueue in the session's transaction. Returns the job id.

    `dedupe_key` is unique among queued and running jobs (a second enqueue with the same key
    is refused by pgqueuer); scope it by tenant, e.g. `f"{tenant_id}:reindex:{source_id}"`.
    """
    # lazy: heavy: pgqueuer loads on first queue use, not in every process that imports kit
    from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
    from pgqueuer.adapters.persistence.queries import Queries

    queries = Queries(AsyncpgDriver(await _raw_connection(session)))
    ids = await queries.enqueue(
        entrypoint, json.dumps(payload).encode(), priority, delay, dedupe_key
    )
    return int(ids[0])


_NUDGE = (
    "SELECT pg_notify($1::text, json_build_object('channel', $1::text, 'operation', 'insert', "
    "'sent_at', now(), 'table', $2::text, 'type', 'table_changed_event')::text)"
)


class WorkerNudge:
    """Wakes the job workers after jobs were enqueued without pgqueuer's per-insert NOTIFY
    (a transaction that notifies holds a database-wide lock through its commit's WAL flush, so
    notifying commits run one at a time: decision 0008). Coalesced: the first `poke()` sends a
    notification at once, the pokes that follow within `interval` seconds one more after it.
    A lost one (a crash just after the commit) only delays the job to the workers' next poll
    (`dequeue_timeout`): the job itself is committed."""

    def __init__(self, db: Database, interval: float = 0.02) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def poke(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())
        else:
            self._again = True

    async def _send(self) -> None:
        # lazy: heavy: pgqueuer loads on first queue use, not in every process that imports kit
        from pgqueuer.domain.settings import db_settings

        settings = db_settings()
        while True:
            self._again = False
            try:
                async with driver_statement(self._db) as conn:
                    await conn.execute(_NUDGE, settings.channel, settings.queue_table)
            except Exception as exc:  # the workers' poll finds the jobs anyway
                log.warning("jobs.nudge_failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval)
            if not self._again:
                return

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            with suppress(Exception):
                await asyncio.wait_for(self._task, timeout=2)


def worker_nudge(runtime: Runtime) -> WorkerNudge:
    """The process's nudge (one per runtime)."""
    return runtime.client("worker_nudge", lambda: WorkerNudge(runtime.db))


async def queue_counts(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Jobs by status and entrypoint (queued, picked, failed), for /readyz and /metrics."""
    rows = await session.execute(
        text(
            "SELECT status::text, entrypoint, count(*) FROM pgqueuer "
            "WHERE status IN ('queued', 'picked', 'failed') GROUP BY 1, 2"
        )
    )
    out: dict[str, dict[str, int]] = {"queued": {}, "picked": {}, "failed": {}}
    for status, entrypoint, count in rows:
        out[str(status)][str(entrypoint)] = int(count)
    return out


async def requeue_failed(session: AsyncSession, job_ids: list[int]) -> int:
    """Put held (failed) jobs back in the queue with a fresh attempt budget."""
    result = await session.execute(
        text(
            "UPDATE pgqueuer SET status = 'queued', attempts = 0, execute_after = now(), "
            "updated = now() WHERE id = ANY(:ids) AND status = 'failed' RETURNING id"
        ),
        {"ids": job_ids},
    )
    return len(result.all())


async def list_failed(session: AsyncSession, limit: int = 100) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT j.id, j.entrypoint, j.attempts, j.created, j.updated, "
            "(SELECT l.traceback FROM pgqueuer_log l WHERE l.job_id = j.id "
            " AND l.traceback IS NOT NULL ORDER BY l.created DESC LIMIT 1) AS traceback "
            "FROM pgqueuer j WHERE j.status = 'failed' ORDER BY j.id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    out = []
    for row in rows.mappings():
        tb = row["traceback"]
        if isinstance(tb, str):
            tb = json.loads(tb)
        error = None
        if isinstance(tb, dict):
            error = f"{tb.get('exception_type', '')}: {tb.get('exception_message', '')}".strip()
        out.append(
            {
                "id": int(row["id"]),
                "entrypoint": str(row["entrypoint"]),
                "attempts": int(row["attempts"]),
                "created_at": row["created"],
                "updated_at": row["updated"],
                "error": error,
            }
        )
    return out


@dataclass
class Worker:
    """A job worker: one dedicated connection for LISTEN/dequeue, handlers on the app pool."""

    db: Database
    registry: JobRegistry
    runtime: Runtime | None = None
    max_attempts: int = 5
    concurrency: int = 20
    batch_size: int = 10
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    dequeue_timeout: timedelta = timedelta(seconds=5)
    _shutdown: asyncio.Event = field(default_factory=asyncio.Event)

    def _wrap(self, spec: JobSpec) -> Callable[[Any], Awaitable[None]]:
        # lazy: heavy: pgqueuer loads on first queue use, not in every process that imports kit
        from pgqueuer.errors import RetryRequested

        limit = spec.max_attempts or self.max_attempts

        async def run(job: Any) -> None:
            payload = json.loads(job.payload) if job.payload else {}
            ctx = JobContext(
                db=self.db,
                job_id=int(job.id),
                entrypoint=spec.name,
                attempt=int(job.attempts),
                payload=payload,
                runtime_=self.runtime,
                max_attempts=limit,
            )
            started = time.perf_counter()
            try:
                attrs = {"job.entrypoint": spec.name, "job.attempt": ctx.attempt}
                with telemetry.span(f"job {spec.name}", attrs):
                    await spec.handler(ctx)
            except Exception as exc:
                final = job.attempts + 1 >= limit
                log.warning(
                    "job.failed",
                    job_id=ctx.job_id,
                    entrypoint=spec.name,
                    attempt=ctx.attempt,
                    final=final,
                    error=type(exc).__name__,
                )
                JOBS_DONE.labels(spec.name, "failed" if final else "retry").inc()
                if final:
                    telemetry.report_exception(exc)
                    raise  # held with status 'failed' (on_failure="hold")
                raise RetryRequested(
                    delay=backoff_delay(ctx.attempt), reason=type(exc).__name__
                ) from exc
            JOBS_DONE.labels(spec.name, "succeeded").inc()
            log.debug(
                "job.succeeded",
                job_id=ctx.job_id,
                entrypoint=spec.name,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )

        return run

    async def run(self) -> None:
        # lazy: heavy: pgqueuer loads on first queue use, not in every process that imports kit
        from pgqueuer.adapters.drivers.asyncpg import AsyncpgDriver
        from pgqueuer.core.applications import PgQueuer

        while not self._shutdown.is_set():
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.db.url))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("worker.connect_failed", error=type(exc).__name__)
                await self._sleep(2.0)
                continue
            try:
                pgq = PgQueuer(AsyncpgDriver(conn))
                for spec in self.registry.specs.values():
                    pgq.entrypoint(
                        spec.name, concurrency_limit=spec.concurrency_limit, on_failure="hold"
                    )(self._wrap(spec))
                for name, cron in self.registry.schedules.items():
                    pgq.schedule(f"cron:{name}", cron)(self._enqueue_on_tick(name))
                stopper = asyncio.create_task(self._propagate_shutdown(pgq.shutdown))
                # The count at info (a person reads it before the banner); the names at debug.
                log.info(
                    "worker.started",
                    entrypoints=len(self.registry.specs),
                    concurrency=self.concurrency,
                )
                log.debug("worker.entrypoints", names=sorted(self.registry.specs))
                try:
                    await pgq.run(
                        dequeue_timeout=self.dequeue_timeout,
                        batch_size=self.batch_size,
                        max_concurrent_tasks=max(self.concurrency, 2 * self.batch_size),
                        heartbeat_timeout=self.heartbeat_timeout,
                        shutdown_on_listener_failure=True,
                    )
                finally:
                    stopper.cancel()
            except Exception as exc:
                # After a server restart the queue's connection fails in several ways (asyncpg's
                # InterfaceError "connection is closed", InternalClientError "cannot switch to
                # state", PostgresError, OSError): this loop is the worker's supervisor, so it
                # reconnects rather than ending the process (found by `bench.chaos`).
                log.warning("worker.connection_lost", error=type(exc).__name__)
                await self._sleep(1.0)
            finally:
                if not conn.is_closed():
                    await conn.close()
        log.info("worker.stopped")

    def _enqueue_on_tick(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def tick(schedule: Any) -> None:
            # lazy: heavy: pgqueuer loads on first queue use, not in every process that imports kit
            from pgqueuer.errors import DuplicateJobError

            try:
                async with request_transaction(self.db) as session:
                    await enqueue(session, name, {}, dedupe_key=f"cron:{name}")
            except DuplicateJobError:
                log.info("worker.cron_skipped", job=name, reason="previous run still queued")

        return tick

    async def _propagate_shutdown(self, target: asyncio.Event) -> None:
        await self._shutdown.wait()
        target.set()

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._shutdown.wait(), timeout=seconds)

    def stop(self) -> None:
        self._shutdown.set()
