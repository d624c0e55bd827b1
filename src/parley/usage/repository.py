"""Month-to-date usage queries, and the request for a threshold check (migration 0015)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.ids import id_floor
from parley.models import Conversation, LlmTurn, Tenant

# Rows are counted by `created_at`; the id range (UUIDv7 ids are time-ordered) only narrows the
# scan to the month on the `(tenant_id, id)` primary key, so a check reads this month's rows,
# not the workspace's whole history. The margin covers an id made a little before its row was
# stored (the id is made by the application, `created_at` by the database).
_ID_MARGIN = timedelta(days=1)


async def tenant_plan(session: AsyncSession, tenant_id: TenantId) -> str | None:
    return await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))


async def month_usage(
    session: AsyncSession,
    tenant_id: TenantId,
    since: datetime,
    *,
    conversations: bool,
    tokens: bool,
) -> tuple[int | None, int | None]:
    """(conversations created, prompt + completion tokens of turns created) since `since`, in
    one round trip; a metric not asked for is `None` and not computed."""
    floor = id_floor(since - _ID_MARGIN)
    started = (
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.id >= floor,
            Conversation.created_at >= since,
        )
        .scalar_subquery()
    )
    spent = (
        select(
            func.coalesce(
                func.sum(
                    func.coalesce(LlmTurn.prompt_tokens, 0)
                    + func.coalesce(LlmTurn.completion_tokens, 0)
                ),
                0,
            )
        )
        .where(
            LlmTurn.tenant_id == tenant_id,
            LlmTurn.id >= floor,
            LlmTurn.created_at >= since,
        )
        .scalar_subquery()
    )
    columns = [started if conversations else None, spent if tokens else None]
    picked = [c for c in columns if c is not None]
    if not picked:
        return None, None
    row = (await session.execute(select(*picked))).one()
    values = iter(int(v) for v in row)
    return (
        next(values) if conversations else None,
        next(values) if tokens else None,
    )


async def request_check(session: AsyncSession, tenant_id: TenantId) -> None:
    """Queue a threshold check for the workspace if it listens to `usage.threshold` and none is
    queued or running (one statement; see migration 0015). In the caller's transaction."""
    await session.execute(text("SELECT parley_usage_check_request(:t)"), {"t": tenant_id})
