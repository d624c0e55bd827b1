"""Tenant webhooks: endpoint CRUD (audited, secrets encrypted at rest), `emit()` for the rest of
the product, and the dead-letter queue's listing and re-run.

`emit()` runs inside the caller's transaction: the delivery rows and their jobs commit with the
conversation or message that caused them, or not at all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.automations import service as automations
from parley.kit import jobs
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.kit.runtime import Runtime
from parley.kit.ssrf import check_url
from parley.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from parley.webhooks import repository as repo
from parley.webhooks.schemas import (
    AttemptOut,
    CircuitOut,
    DeliveryOut,
    RetryOut,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)
from parley.webhooks.signing import new_secret

log = structlog.get_logger(__name__)

DELIVER_JOB = "webhooks.deliver"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "Webhook delivery not found"


class AlreadyDelivered(Conflict):
    code = "webhook_already_delivered"
    title = "This delivery already succeeded; it is never sent twice"


# --- shapes -------------------------------------------------------------------------------


def circuit_of(row: WebhookEndpoint, now: datetime | None = None) -> CircuitOut:
    now = now or datetime.now(UTC)
    if row.circuit_open_until is None:
        state = "closed"
    elif row.circuit_open_until > now:
        state = "open"
    else:
        state = "half_open"
    return CircuitOut(
        state=state,
        consecutive_failures=row.consecutive_failures,
        open_until=row.circuit_open_until,
    )


def _rotation_end(row: WebhookEndpoint) -> datetime | None:
    end = row.previous_secret_expires_at
    if row.previous_secret_encrypted is None or end is None or end <= datetime.now(UTC):
        return None
    return end


def webhook_out(row: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=row.id,
        url=row.url,
        events=list(row.events),
        description=row.description,
        enabled=row.enabled,
        circuit=circuit_of(row),
        rotation_ends_at=_rotation_end(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audit_view(row: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "enabled": row.enabled,
    }


def _attempt_out(a: WebhookAttempt) -> AttemptOut:
    return AttemptOut(
        attempt=a.attempt,
        status_code=a.status_code,
        latency_ms=a.latency_ms,
        error=a.error,
        succeeded=a.succeeded,
        created_at=a.created_at,
    )


def delivery_out(d: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.endpoint_id,
        event_type=d.event_type,
        status=d.status,
        payload=d.payload,
        attempt_count=d.attempt_count,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        delivered_at=d.delivered_at,
        dead_at=d.dead_at,
        created_at=d.created_at,
        attempts=[_attempt_out(a) for a in attempts],
    )


# --- endpoints ----------------------------------------------------------------------------


async def _checked_url(runtime: Runtime, url: str) -> str:
    allow_private = runtime.settings.parley_outbound_allow_private
    return await check_url(
        url,
        allow_private=allow_private,
        schemes=("https", "http") if allow_private else ("https",),
        allowed_networks=runtime.settings.parley_outbound_allowed_networks,
    )


async def _endpoint(
    session: AsyncSession, tenant_id: TenantId, webhook_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    row = await repo.endpoint(session, tenant_id, webhook_id, lock=lock)
    if row is None:
        raise WebhookNotFound()
    return row


async def create(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, body: WebhookCreate, *, actor: str
) -> WebhookCreated:
    url = await _checked_url(runtime, body.url)
    secret = new_secret()
    row = WebhookEndpoint(
        tenant_id=tenant_id,
        id=new_id(),
        url=url,
        events=sorted(set(body.events)),
        description=body.description,
        enabled=True,
        secret_encrypted=runtime.keyring.encrypt(secret),
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="webhook.created",
        target_type="webhook",
        target_id=row.id,
        after=_audit_view(row),
    )
    log.info("webhook.created", tenant_id=str(tenant_id), webhook_id=str(row.id))
    return WebhookCreated(**webhook_out(row).model_dump(), secret=secret)


async def get(session: AsyncSession, tenant_id: TenantId, webhook_id: uuid.UUID) -> WebhookOut:
    return webhook_out(await _endpoint(session, tenant_id, webhook_id))


async def list_webhooks(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[WebhookOut]:
    rows = await repo.list_endpoints(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, webhook_out, lambda w: w.id)


async def update(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    *,
    actor: str,
) -> WebhookOut:
    row = await _endpoint(session, tenant_id, webhook_id, lock=True)
    before = _audit_view(row)
    if body.url is not None:
        row.url = await _checked_url(runtime, body.url)
    if body.events is not None:
        row.events = sorted(set(body.events))
    if body.description is not None:
        row.description = body.description
    if body.enabled is not None:
        if body.enabled and not row.enabled:
            # Re-enabled by a person: start with a closed circuit.
            row.consecutive_failures = 0
            row.circuit_open_until = None
        row.enabled = body.enabled
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="webhook.updated",
        target_type="webhook",
        target_id=row.id,
        before=before,
        after=_audit_view(row),
    )
    return webhook_out(row)


async def delete(
    session: AsyncSession, tenant_id: TenantId, webhook_id: uuid.UUID, *, actor: str
) -> None:
    row = await _endpoint(session, tenant_id, webhook_id, lock=True)
    before = _audit_view(row)
    await session.delete(row)  # its deliveries and attempts go with it (FK cascade)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="webhook.deleted",
        target_type="webhook",
        target_id=webhook_id,
        before=before,
    )


async def rotate_secret(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    webhook_id: uuid.UUID,
    *,
    actor: str,
) -> SecretRotated:
    """A new secret now; the current one keeps signing alongside it for the rotation window,
    so receivers can switch without dropping a delivery."""
    row = await _endpoint(session, tenant_id, webhook_id, lock=True)
    window = runtime.settings.parley_webhook_rotation_window_seconds
    secret = new_secret()
    now = datetime.now(UTC)
    if window > 0:
        row.previous_secret_encrypted = row.secret_encrypted
        row.previous_secret_expires_at = now + timedelta(seconds=window)
    else:
        row.previous_secret_encrypted = None
        row.previous_secret_expires_at = None
    row.secret_encrypted = runtime.keyring.encrypt(secret)
    row.updated_at = now
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="webhook.secret_rotated",
        target_type="webhook",
        target_id=row.id,
        after={"rotation_ends_at": row.previous_secret_expires_at},
    )
    return SecretRotated(id=row.id, secret=secret, rotation_ends_at=_rotation_end(row))


# --- deliveries and the dead-letter queue --------------------------------------------------


async def _deliveries_page(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    endpoint_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[DeliveryOut]:
    rows = await repo.list_deliveries(
        session,
        tenant_id,
        endpoint_id=endpoint_id,
        status=status,
        before=after_id(cursor),
        limit=limit + 1,
    )
    attempts = await repo.attempts_for(session, tenant_id, [d.id for d in rows[:limit]])
    return page_by_id(rows, limit, lambda d: delivery_out(d, attempts[d.id]), lambda d: d.id)


async def list_deliveries(
    session: AsyncSession,
    tenant_id: TenantId,
    webhook_id: uuid.UUID,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[DeliveryOut]:
    await _endpoint(session, tenant_id, webhook_id)
    return await _deliveries_page(
        session, tenant_id, endpoint_id=webhook_id, status=status, cursor=cursor, limit=limit
    )


async def dead_letters(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[DeliveryOut]:
    return await _deliveries_page(
        session, tenant_id, endpoint_id=None, status="dead", cursor=cursor, limit=limit
    )


async def _delivery(
    session: AsyncSession,
    tenant_id: TenantId,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    lock: bool = False,
) -> WebhookDelivery:
    row = await repo.delivery(session, tenant_id, delivery_id, lock=lock)
    if row is None or row.endpoint_id != webhook_id:
        raise DeliveryNotFound()
    return row


async def get_delivery(
    session: AsyncSession, tenant_id: TenantId, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryOut:
    row = await _delivery(session, tenant_id, webhook_id, delivery_id)
    attempts = await repo.attempts_for(session, tenant_id, [row.id])
    return delivery_out(row, attempts[row.id])


async def retry(
    session: AsyncSession,
    tenant_id: TenantId,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    actor: str,
) -> RetryOut:
    """Re-run a dead delivery once. Idempotent: while it waits to be sent, asking again adds
    nothing; a delivered one is never sent again."""
    row = await _delivery(session, tenant_id, webhook_id, delivery_id, lock=True)
    if row.status == "delivered":
        raise AlreadyDelivered()
    requeued = row.status == "dead"
    if requeued:
        row.status = "pending"
        row.max_attempts = row.attempt_count + 1
        row.seq += 1
        row.next_attempt_at = datetime.now(UTC)
        row.dead_at = None
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await enqueue_delivery(session, tenant_id, row.id, row.seq)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="webhook_delivery.retry_requested",
        target_type="webhook_delivery",
        target_id=row.id,
        after={"requeued": requeued, "status": row.status},
    )
    attempts = await repo.attempts_for(session, tenant_id, [row.id])
    return RetryOut(requeued=requeued, delivery=delivery_out(row, attempts[row.id]))


async def enqueue_delivery(
    session: AsyncSession,
    tenant_id: TenantId,
    delivery_id: uuid.UUID,
    seq: int,
    delay: timedelta | None = None,
) -> None:
    await jobs.enqueue(
        session,
        DELIVER_JOB,
        {"tenant_id": str(tenant_id), "delivery_id": str(delivery_id), "seq": seq},
        delay=delay,
    )


# --- emit ---------------------------------------------------------------------------------


async def emit(
    session: AsyncSession,
    tenant_id: TenantId,
    event_type: str,
    data: dict[str, Any],
    *,
    _depth: int = 0,
) -> list[uuid.UUID]:
    """Record `event_type` for every enabled endpoint subscribed to it (and every endpoint a
    matching automation rule calls), in the caller's transaction; returns the delivery ids.

    One query finds the subscribed endpoints and the rules; a tenant with neither pays that
    single round trip. `data` must be JSON-serialisable (ids as strings)."""
    endpoint_ids, rules = await repo.targets(session, tenant_id, event_type)
    follow_ups: list[tuple[str, dict[str, Any]]] = []
    if rules:
        outcome = await automations.apply(session, tenant_id, data, rules)
        extra = [i for i in outcome.webhook_ids if i not in endpoint_ids]
        if extra:
            endpoint_ids += await repo.enabled_endpoint_ids(session, tenant_id, extra)
        follow_ups = outcome.events
    created: list[uuid.UUID] = []
    if endpoint_ids:
        now = datetime.now(UTC)
        payload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
        rows = [
            WebhookDelivery(
                tenant_id=tenant_id,
                id=new_id(),
                endpoint_id=endpoint_id,
                event_type=event_type,
                payload=payload,
                status="pending",
                attempt_count=0,
                max_attempts=None,
                seq=0,
                next_attempt_at=now,
            )
            for endpoint_id in dict.fromkeys(endpoint_ids)
        ]
        session.add_all(rows)
        await session.flush()
        for row in rows:
            await enqueue_delivery(session, tenant_id, row.id, 0)
            created.append(row.id)
    if _depth < 2:
        for follow_type, follow_data in follow_ups:
            created += await emit(session, tenant_id, follow_type, follow_data, _depth=_depth + 1)
    return created
