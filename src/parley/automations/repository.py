"""Queries for automation rules and the conversation fields their actions change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, literal, not_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import AutomationRule, Conversation, WebhookEndpoint


async def rule(
    session: AsyncSession, tenant_id: TenantId, rule_id: uuid.UUID
) -> AutomationRule | None:
    result = await session.execute(
        select(AutomationRule).where(
            AutomationRule.tenant_id == tenant_id, AutomationRule.id == rule_id
        )
    )
    return result.scalar_one_or_none()


async def list_rules(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> Sequence[AutomationRule]:
    query = (
        select(AutomationRule)
        .where(AutomationRule.tenant_id == tenant_id)
        .order_by(AutomationRule.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(AutomationRule.id > after)
    return (await session.execute(query)).scalars().all()


async def add_tag(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, tag: str
) -> bool:
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.id == conversation_id,
            not_(literal(tag) == Conversation.tags.any_()),
        )
        .values(tags=func.array_append(Conversation.tags, tag))
        .returning(Conversation.id)
    )
    return result.first() is not None


async def request_handoff(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> bool:
    """Move a conversation the bot handles to the staff queue (`waiting`; the timeline
    trigger of migration 0019 records the rule as the reason); True when this call moved it."""
    await session.execute(
        text(
            "SELECT set_config('parley.actor', 'automation', true), "
            "set_config('parley.handoff_reason', 'automation', true)"
        )
    )
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.id == conversation_id,
            Conversation.handoff_status.in_(("bot", "resolved")),
        )
        .values(handoff_status="waiting", handoff_requested_at=func.now())
        .returning(Conversation.id)
    )
    return result.first() is not None


async def webhook_exists(
    session: AsyncSession, tenant_id: TenantId, endpoint_id: uuid.UUID
) -> bool:
    """A rule's `call_webhook` target exists in this workspace (another's does not)."""
    found = await session.execute(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )
    return found.scalar_one_or_none() is not None
