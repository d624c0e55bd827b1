"""Sending one delivery: claim → POST → record, each state change a short transaction.

Guarantee: at least once, with a stable `webhook-id` (the delivery id) receivers dedupe on.
- A delivery is claimed (`pending` → `sending`, lease until the POST's timeout has surely
  passed) before the POST, and the outcome is written after it, before the job is
  acknowledged. Only a job carrying the row's current `seq` may act, so a duplicated or stale
  job is a no-op.
- A delivery marked `delivered` is never sent again: no path leads out of that state.
- Writing the outcome is retried while the lease lasts, so a database restart between the
  POST and the record does not cause a second POST (found by `bench.chaos`, R1).
- If the worker dies between the POST and the record, the job is re-picked (pgqueuer
  heartbeat); it waits for the lease to lapse, then sends again with the same `webhook-id` —
  the one case a receiver sees a delivery twice, logged as an attempt with no outcome.
- Retries are new jobs with a delay (exponential ceilings from the settings, full jitter), so a
  waiting delivery holds no worker. The circuit breaker and the per-endpoint in-flight limit
  defer a delivery without counting an attempt; one slow or failing endpoint therefore holds at
  most `PARLEY_WEBHOOK_MAX_IN_FLIGHT` workers, and only until its circuit opens.
- A delivery over the in-flight limit waits in the queue, not in a loop: it is scheduled with
  a growing, jittered delay, and each finished attempt hands its slot to the endpoint's oldest
  waiting delivery at once. A backlog drains at the endpoint's pace, with one claim per
  delivery and slot instead of one every second (the busy loop R1 found).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.errors import ParleyError, is_unavailable
from parley.kit.http import REDIRECT_CODES, fetch
from parley.kit.ids import new_id
from parley.kit.jobs import JobContext
from parley.kit.metrics import WEBHOOK_DELIVERIES, WEBHOOK_FAILURES
from parley.kit.runtime import Runtime
from parley.kit.ssrf import UnsafeUrl
from parley.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from parley.webhooks import repository as repo
from parley.webhooks.service import enqueue_delivery
from parley.webhooks.signing import signature_header

log = structlog.get_logger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Claim:
    url: str
    secrets: list[str]
    body: bytes
    attempt: int
    lease_until: datetime


@dataclass(frozen=True)
class Result:
    status_code: int | None
    latency_ms: int
    error: str | None
    kind: str | None  # failure kind for the metric; None on success

    @property
    def ok(self) -> bool:
        return self.kind is None


def retry_delay(schedule: list[float], failures: int) -> timedelta:
    """Full jitter under the schedule's ceiling for the n-th failure (1-based)."""
    ceiling = schedule[min(failures, len(schedule)) - 1] if schedule else 0.0
    return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311


def lease(timeout: float) -> timedelta:
    """How long a claim holds: the POST's whole time budget, then as long again (at least 2 s)
    for recording its outcome. Past it, the claim counts as abandoned."""
    return timedelta(seconds=timeout + max(2.0, timeout))


def _allowed(runtime: Runtime, delivery: WebhookDelivery) -> int:
    if delivery.max_attempts is not None:
        return delivery.max_attempts
    return len(runtime.settings.parley_webhook_retry_schedule) + 1


async def _defer(
    session: AsyncSession,
    tenant_id: TenantId,
    delivery: WebhookDelivery,
    until: datetime,
    now: datetime,
) -> None:
    """Not an attempt: move the delivery to `until` under a new job generation."""
    delivery.seq += 1
    delivery.status = "pending"
    delivery.next_attempt_at = until
    delivery.updated_at = now
    await session.flush()
    await enqueue_delivery(session, tenant_id, delivery.id, delivery.seq, max(until - now, _ZERO))
    WEBHOOK_DELIVERIES.labels("deferred").inc()


_ZERO = timedelta(0)


def slot_wait(seq: int) -> timedelta:
    """How long a delivery over the in-flight limit waits before it looks again by itself:
    2–4 s the first time, doubling per deferral up to 30–60 s, jittered so a backlog does not
    wake at once. A slot freed earlier is handed over by `_hand_over`, so this is only the
    fallback (an attempt that never finished, a worker lost)."""
    ceiling = min(60.0, 4.0 * 2 ** min(seq, 4))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


async def _hand_over(
    session: AsyncSession, tenant_id: TenantId, endpoint_id: uuid.UUID, now: datetime
) -> None:
    """A slot just freed: the endpoint's oldest waiting delivery gets a job now (under a new
    `seq`, so the job it had becomes a no-op)."""
    waiting = await repo.next_waiting(session, tenant_id, endpoint_id, now)
    if waiting is None:
        return
    waiting.seq += 1
    waiting.next_attempt_at = now
    waiting.updated_at = now
    await session.flush()
    await enqueue_delivery(session, tenant_id, waiting.id, waiting.seq)
    WEBHOOK_DELIVERIES.labels("handed_over").inc()


def _dead(delivery: WebhookDelivery, now: datetime, error: str | None) -> None:
    delivery.status = "dead"
    delivery.dead_at = now
    delivery.lease_until = None
    delivery.updated_at = now
    if error is not None:
        delivery.last_error = error
    WEBHOOK_DELIVERIES.labels("dead").inc()


def _secrets(runtime: Runtime, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    live = [runtime.keyring.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted is not None
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        live.append(runtime.keyring.decrypt(endpoint.previous_secret_encrypted))
    return live


async def _lock(
    session: AsyncSession, tenant_id: TenantId, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
    """Row locks in one order everywhere — endpoint, then delivery — as deleting an endpoint
    (which cascades to its deliveries) takes them, so the two never deadlock."""
    found = await repo.delivery(session, tenant_id, delivery_id)
    if found is None:
        return None
    endpoint = await repo.endpoint(session, tenant_id, found.endpoint_id, lock=True)
    if endpoint is None:
        return None
    delivery = await repo.delivery(session, tenant_id, delivery_id, lock=True)
    if delivery is None:
        return None
    return delivery, endpoint


async def claim(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    delivery_id: uuid.UUID,
    seq: int,
) -> Claim | None:
    """Decide what this job does; returns the POST to make, or None (nothing to send now)."""
    s = runtime.settings
    now = datetime.now(UTC)
    locked = await _lock(session, tenant_id, delivery_id)
    if locked is None:
        return None
    delivery, endpoint = locked
    if delivery.seq != seq or delivery.status in ("delivered", "dead"):
        return None  # superseded by a newer job, or finished
    if delivery.status == "sending":
        if delivery.lease_until is not None and delivery.lease_until > now:
            # Another run holds it (or died moments ago): look again when its lease ends.
            await enqueue_delivery(session, tenant_id, delivery.id, seq, delivery.lease_until - now)
            return None
        # The run that claimed it never recorded an outcome (worker lost mid-POST).
        session.add(
            WebhookAttempt(
                tenant_id=tenant_id,
                id=new_id(),
                delivery_id=delivery.id,
                attempt=delivery.attempt_count,
                error="no outcome recorded (worker stopped during the attempt)",
                succeeded=False,
            )
        )
        if delivery.attempt_count >= _allowed(runtime, delivery):
            _dead(delivery, now, "worker_lost")
            await session.flush()
            return None
    elif delivery.next_attempt_at > now + timedelta(seconds=0.5):
        await enqueue_delivery(session, tenant_id, delivery.id, seq, delivery.next_attempt_at - now)
        return None

    if not endpoint.enabled:
        _dead(delivery, now, "endpoint_disabled")
        await session.flush()
        return None
    opened = endpoint.circuit_open_until
    if opened is not None and opened > now:
        jitter = timedelta(seconds=random.uniform(0, min(5.0, s.parley_webhook_timeout_seconds)))  # noqa: S311
        await _defer(session, tenant_id, delivery, opened + jitter, now)
        return None
    probe = opened is not None  # half-open: this delivery is the one trial call
    if probe:
        endpoint.circuit_open_until = now + timedelta(
            seconds=s.parley_webhook_timeout_seconds + 5.0
        )
    elif (
        await repo.in_flight(session, tenant_id, endpoint.id, now, delivery.id)
        >= s.parley_webhook_max_in_flight
    ):
        await _defer(session, tenant_id, delivery, now + slot_wait(delivery.seq), now)
        return None

    delivery.status = "sending"
    delivery.attempt_count += 1
    delivery.lease_until = now + lease(s.parley_webhook_timeout_seconds)
    delivery.updated_at = now
    await session.flush()
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Claim(
        endpoint.url,
        _secrets(runtime, endpoint, now),
        body,
        delivery.attempt_count,
        delivery.lease_until,
    )


async def send(runtime: Runtime, delivery_id: uuid.UUID, c: Claim) -> Result:
    timestamp = int(time.time())
    msg_id = str(delivery_id)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(c.secrets, msg_id, timestamp, c.body),
    }
    started = time.perf_counter()
    budget = runtime.settings.parley_webhook_timeout_seconds
    try:
        async with asyncio.timeout(budget):  # the whole exchange, not each phase
            response = await fetch(
                runtime,
                "POST",
                c.url,
                headers=headers,
                content=c.body,
                max_bytes=MAX_RESPONSE_BYTES,
                max_redirects=0,  # a redirect is a failure, never followed
                http_timeout=budget,
            )
    except TimeoutError:
        return Result(None, int(budget * 1000), "timeout: no answer in time", "network")
    except UnsafeUrl as exc:  # the guard refused the destination: retrying cannot help
        return Result(
            None,
            int((time.perf_counter() - started) * 1000),
            f"{exc.code}: {exc.detail}",
            "refused",
        )
    except ParleyError as exc:  # unreachable, timed out, unsafe address, oversized answer
        return Result(
            None,
            int((time.perf_counter() - started) * 1000),
            f"{exc.code}: {exc.detail}",
            "network",
        )
    latency = int(response.elapsed_ms)
    code = response.status_code
    if 200 <= code < 300:
        return Result(code, latency, None, None)
    if code in REDIRECT_CODES or 300 <= code < 400:
        return Result(code, latency, f"HTTP {code}: redirects are not followed", "redirect")
    return Result(code, latency, f"HTTP {code}", "http_status")


async def record(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    delivery_id: uuid.UUID,
    seq: int,
    c: Claim,
    result: Result,
) -> None:
    s = runtime.settings
    now = datetime.now(UTC)
    locked = await _lock(session, tenant_id, delivery_id)
    if locked is None:
        return  # its endpoint was deleted meanwhile, and the log with it
    delivery, endpoint = locked
    session.add(
        WebhookAttempt(
            tenant_id=tenant_id,
            id=new_id(),
            delivery_id=delivery_id,
            attempt=c.attempt,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            succeeded=result.ok,
        )
    )
    await session.flush()
    if delivery.status != "sending" or delivery.seq != seq or delivery.attempt_count != c.attempt:
        return  # taken over after our lease lapsed; the attempt is logged, the state is theirs
    delivery.last_status_code = result.status_code
    delivery.lease_until = None
    delivery.updated_at = now
    if result.ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.last_error = None
        endpoint.consecutive_failures = 0
        endpoint.circuit_open_until = None
        WEBHOOK_DELIVERIES.labels("delivered").inc()
        await session.flush()
        await _hand_over(session, tenant_id, endpoint.id, now)
        return
    assert result.kind is not None
    WEBHOOK_FAILURES.labels(result.kind).inc()
    delivery.last_error = result.error
    if result.kind != "refused":  # a refused address says nothing about the receiver's health
        endpoint.consecutive_failures += 1
    if endpoint.consecutive_failures >= s.parley_webhook_breaker_failures:
        endpoint.circuit_open_until = now + timedelta(
            seconds=s.parley_webhook_breaker_cooldown_seconds
        )
        deferred = await repo.defer_pending(
            session, tenant_id, endpoint.id, endpoint.circuit_open_until
        )
        log.warning(
            "webhook.circuit_opened",
            tenant_id=str(tenant_id),
            webhook_id=str(endpoint.id),
            failures=endpoint.consecutive_failures,
            deferred=deferred,
        )
    if result.kind == "refused" or delivery.attempt_count >= _allowed(runtime, delivery):
        _dead(delivery, now, None)
        log.warning(
            "webhook.delivery_dead",
            tenant_id=str(tenant_id),
            delivery_id=str(delivery_id),
            attempts=delivery.attempt_count,
        )
        await session.flush()
        if not _circuit_open(endpoint, now):
            await _hand_over(session, tenant_id, endpoint.id, now)
        return
    delay = retry_delay(s.parley_webhook_retry_schedule, delivery.attempt_count)
    delivery.status = "pending"
    delivery.seq += 1
    delivery.next_attempt_at = now + delay
    await session.flush()
    await enqueue_delivery(session, tenant_id, delivery_id, delivery.seq, delay)
    WEBHOOK_DELIVERIES.labels("retry").inc()
    if not _circuit_open(endpoint, now):
        await _hand_over(session, tenant_id, endpoint.id, now)


def _circuit_open(endpoint: WebhookEndpoint, now: datetime) -> bool:
    """While the circuit is open nothing is sent: handing a slot over would only defer again."""
    return endpoint.circuit_open_until is not None and endpoint.circuit_open_until > now


_RECORDING: set[asyncio.Task[None]] = set()
"""Outcome writes in flight, held so a cancelled job's write is not collected mid-way."""


async def _record_durably(
    ctx: JobContext, delivery_id: uuid.UUID, seq: int, c: Claim, result: Result
) -> None:
    """Write the outcome, retrying while the database is unreachable and the claim's lease
    lasts: an outcome not written means the delivery is sent again once the lease lapses."""
    margin = timedelta(seconds=1)
    pause = 0.2
    while True:
        try:
            async with ctx.tenant_session() as session:
                await record(session, ctx.runtime, ctx.tenant_id, delivery_id, seq, c, result)
            return
        except Exception as exc:
            if not is_unavailable(exc) or datetime.now(UTC) + margin >= c.lease_until:
                raise
            log.warning(
                "webhook.record_retry", delivery_id=str(delivery_id), error=type(exc).__name__
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


async def run(ctx: JobContext) -> None:
    runtime = ctx.runtime
    tenant_id = ctx.tenant_id
    delivery_id = uuid.UUID(str(ctx.payload["delivery_id"]))
    seq = int(ctx.payload["seq"])
    async with ctx.tenant_session() as session:
        c = await claim(session, runtime, tenant_id, delivery_id, seq)
    if c is None:
        return
    result = await send(runtime, delivery_id, c)
    # The outcome is written even if the job's task is cancelled meanwhile (the worker's queue
    # connection dropped with the database, and its supervisor reconnects): an outcome not
    # written means the delivery is sent again once the lease lapses.
    recording = asyncio.create_task(_record_durably(ctx, delivery_id, seq, c, result))
    _RECORDING.add(recording)
    recording.add_done_callback(_RECORDING.discard)
    await asyncio.shield(recording)
    log.info(
        "webhook.attempt",
        tenant_id=str(tenant_id),
        delivery_id=str(delivery_id),
        attempt=c.attempt,
        status=result.status_code,
        ok=result.ok,
        ms=result.latency_ms,
    )
