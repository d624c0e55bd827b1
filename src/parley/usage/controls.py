"""What workspaces and platform admins set: the message visitors see when work is refused,
per-channel visitor budgets, and temporary overages (audited)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.kit.db import TenantId
from parley.kit.errors import NotFound, ParleyError
from parley.kit.ids import new_id
from parley.models import Channel, PlanOverage, Tenant, VisitorBudget
from parley.usage.schemas import (
    OverageGrant,
    OverageOut,
    QuotaSettings,
    VisitorBudgetBody,
    VisitorBudgetOut,
)

MAX_OVERAGE = timedelta(days=92)


class ChannelNotFound(NotFound):
    code = "channel_not_found"
    title = "Channel not found"


class InvalidOverage(ParleyError):
    status = 422
    code = "invalid_overage"
    title = "The overage cannot be granted"


async def quota_settings(session: AsyncSession, tenant_id: TenantId) -> QuotaSettings:
    message = await session.scalar(select(Tenant.quota_message).where(Tenant.id == tenant_id))
    return QuotaSettings(quota_message=message)


async def set_quota_settings(
    session: AsyncSession, tenant_id: TenantId, body: QuotaSettings, *, actor: str
) -> QuotaSettings:
    before = await quota_settings(session, tenant_id)
    message = (body.quota_message or "").strip() or None
    await session.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(quota_message=message)
    )
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="usage.quota_message_changed",
        target_type="tenant",
        target_id=tenant_id,
        before=before.model_dump(),
        after={"quota_message": message},
    )
    return QuotaSettings(quota_message=message)


async def _require_channel(
    session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID
) -> None:
    found = await session.scalar(
        select(Channel.id).where(Channel.tenant_id == tenant_id, Channel.id == channel_id)
    )
    if found is None:
        raise ChannelNotFound()


async def visitor_budget(
    session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID
) -> VisitorBudgetOut:
    await _require_channel(session, tenant_id, channel_id)
    row = await session.scalar(
        select(VisitorBudget).where(
            VisitorBudget.tenant_id == tenant_id, VisitorBudget.channel_id == channel_id
        )
    )
    return VisitorBudgetOut(
        channel_id=channel_id,
        messages_per_day=row.messages_per_day if row else None,
        tokens_per_day=row.tokens_per_day if row else None,
    )


async def set_visitor_budget(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    body: VisitorBudgetBody,
    *,
    actor: str,
) -> VisitorBudgetOut:
    """Replace the channel's per-visitor daily budget (both measures null: no budget)."""
    before = await visitor_budget(session, tenant_id, channel_id)
    stmt = insert(VisitorBudget).values(
        tenant_id=tenant_id,
        channel_id=channel_id,
        messages_per_day=body.messages_per_day,
        tokens_per_day=body.tokens_per_day,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[VisitorBudget.tenant_id, VisitorBudget.channel_id],
            set_={
                "messages_per_day": stmt.excluded.messages_per_day,
                "tokens_per_day": stmt.excluded.tokens_per_day,
                "updated_at": text("now()"),
            },
        )
    )
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="usage.visitor_budget_changed",
        target_type="channel",
        target_id=channel_id,
        before=before.model_dump(mode="json", exclude={"channel_id"}),
        after=body.model_dump(mode="json"),
    )
    return VisitorBudgetOut(channel_id=channel_id, **body.model_dump())


def overage_out(row: PlanOverage, now: datetime) -> OverageOut:
    return OverageOut(
        id=row.id,
        tenant_id=row.tenant_id,
        metric=row.metric,
        extra=row.extra,
        reason=row.reason,
        expires_at=row.expires_at,
        granted_by=row.granted_by,
        created_at=row.created_at,
        active=row.expires_at > now,
    )


async def grant_overage(
    session: AsyncSession,
    tenant_id: TenantId,
    body: OverageGrant,
    *,
    admin_id: uuid.UUID,
    actor: str,
) -> OverageOut:
    """A platform admin raises one limit of a workspace until `expires_at` (at most
    MAX_OVERAGE ahead), in the workspace's audit log."""
    now = datetime.now(UTC)
    if body.expires_at <= now:
        raise InvalidOverage("expires_at is in the past.")
    if body.expires_at - now > MAX_OVERAGE:
        raise InvalidOverage(f"An overage lasts at most {MAX_OVERAGE.days} days.")
    row = PlanOverage(
        tenant_id=tenant_id,
        id=new_id(),
        metric=body.metric,
        extra=body.extra,
        reason=body.reason,
        expires_at=body.expires_at,
        granted_by=admin_id,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="plan.overage_granted",
        target_type="tenant",
        target_id=tenant_id,
        after=body.model_dump(mode="json"),
    )
    return overage_out(row, now)


async def overages(session: AsyncSession, tenant_id: TenantId) -> list[OverageOut]:
    now = datetime.now(UTC)
    rows = await session.execute(
        select(PlanOverage)
        .where(PlanOverage.tenant_id == tenant_id)
        .order_by(PlanOverage.id.desc())
        .limit(200)
    )
    return [overage_out(r, now) for r in rows.scalars()]
