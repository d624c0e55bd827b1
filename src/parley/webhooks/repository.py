"""Queries for webhook endpoints, deliveries and their attempts log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, null, select, text, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import (
    AutomationRule,
    EmittedEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from parley.webhooks import events


async def endpoint(
    session: AsyncSession, tenant_id: TenantId, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
    )
    if lock:  # and re-read: the row may have changed since this session first loaded it
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> Sequence[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    return (await session.execute(query)).scalars().all()


async def targets(
    session: AsyncSession, tenant_id: TenantId, event_type: str
) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, dict[str, Any], dict[str, Any]]]]:
    """One round trip: the enabled endpoints subscribed to `event_type`, and the enabled
    automation rules on it (id, condition, action)."""
    endpoints = select(
        literal("e").label("kind"),
        WebhookEndpoint.id.label("id"),
        null().label("condition"),
        null().label("action"),
    ).where(
        WebhookEndpoint.tenant_id == tenant_id,
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.events.any_() == event_type,
    )
    rules = select(
        literal("r"),
        AutomationRule.id,
        AutomationRule.condition,
        AutomationRule.action,
    ).where(
        AutomationRule.tenant_id == tenant_id,
        AutomationRule.enabled.is_(True),
        AutomationRule.event == event_type,
    )
    rows = (await session.execute(union_all(endpoints, rules))).all()
    ids = [r[1] for r in rows if r[0] == "e"]
    found = [(r[1], r[2], r[3]) for r in rows if r[0] == "r"]
    return ids, found


async def enabled_endpoint_ids(
    session: AsyncSession, tenant_id: TenantId, ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    rows = await session.execute(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.tenant_id == tenant_id,
            WebhookEndpoint.id.in_(ids),
            WebhookEndpoint.enabled.is_(True),
        )
    )
    return list(rows.scalars())


async def delivery(
    session: AsyncSession, tenant_id: TenantId, delivery_id: uuid.UUID, *, lock: bool = False
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id == delivery_id
    )
    if lock:  # and re-read: the row may have changed since this session first loaded it
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def list_deliveries(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    endpoint_id: uuid.UUID | None,
    status: str | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[WebhookDelivery]:
    """Newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.tenant_id == tenant_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return (await session.execute(query)).scalars().all()


async def attempts_for(
    session: AsyncSession, tenant_id: TenantId, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    out: dict[uuid.UUID, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return out
    rows = await session.execute(
        select(WebhookAttempt)
        .where(WebhookAttempt.tenant_id == tenant_id, WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
    )
    for attempt in rows.scalars():
        out[attempt.delivery_id].append(attempt)
    return out


async def in_flight(
    session: AsyncSession,
    tenant_id: TenantId,
    endpoint_id: uuid.UUID,
    now: datetime,
    exclude: uuid.UUID,
) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "sending",
            WebhookDelivery.lease_until > now,
            WebhookDelivery.id != exclude,
        )
    )
    return int(count or 0)


async def defer_pending(
    session: AsyncSession, tenant_id: TenantId, endpoint_id: uuid.UUID, until: datetime
) -> int:
    """The circuit just opened: every pending delivery of the endpoint due before `until` is
    moved to `until` plus up to 5 s of jitter, so the list says when it will really be tried
    (a delivery waiting for a slot would otherwise show its slot time, then defer on waking).
    Rows another run holds are skipped: that run sees the open circuit and defers itself. The
    deliveries' queued jobs need no change: one that wakes early finds the later time and
    waits again."""
    held = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at < until,
        )
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id.in_(held))
        .values(
            next_attempt_at=until + func.random() * text("interval '5 seconds'"),
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def next_waiting(
    session: AsyncSession, tenant_id: TenantId, endpoint_id: uuid.UUID, now: datetime
) -> WebhookDelivery | None:
    """The oldest delivery of the endpoint waiting for an in-flight slot (never tried, moved
    to a later time), locked; one another run holds is skipped, not waited for. Served by the
    partial index `ix_webhook_deliveries_waiting`, so the endpoint's delivered history is not
    scanned."""
    found = await session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.attempt_count == 0,
            WebhookDelivery.next_attempt_at > now,
        )
        .order_by(WebhookDelivery.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return found.first()


async def dead_letter_total(session: AsyncSession) -> int:
    """Dead deliveries across every tenant (a count only; see the migration's function)."""
    return int(await session.scalar(text("SELECT parley_webhook_dead_letters()")) or 0)


async def mark_emitted(
    session: AsyncSession, tenant_id: TenantId, event: str, subject_id: uuid.UUID
) -> bool:
    """Record that `event` about `subject_id` is being emitted in this transaction; False when
    it already was (then the caller does nothing)."""
    inserted = await session.execute(
        pg_insert(EmittedEvent)
        .values(
            tenant_id=tenant_id,
            id=events.emitted_id(event, subject_id),
            event=event,
            subject_id=subject_id,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        .returning(EmittedEvent.id)
    )
    return inserted.first() is not None


async def emitted_among(
    session: AsyncSession, tenant_id: TenantId, event: str, subject_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `subject_ids` already had `event` emitted (a read; `mark_emitted` decides)."""
    if not subject_ids:
        return set()
    by_id = {events.emitted_id(event, s): s for s in subject_ids}
    rows = await session.execute(
        select(EmittedEvent.id).where(
            EmittedEvent.tenant_id == tenant_id, EmittedEvent.id.in_(list(by_id))
        )
    )
    return {by_id[i] for i in rows.scalars()}
