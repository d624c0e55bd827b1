"""Queries for bots and their versions."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import Bot, BotVersion, KnowledgeSource


async def published(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID
) -> tuple[Bot, BotVersion] | None:
    result = await session.execute(
        select(Bot, BotVersion)
        .join(
            BotVersion,
            (BotVersion.tenant_id == Bot.tenant_id)
            & (BotVersion.bot_id == Bot.id)
            & (BotVersion.status == "published"),
        )
        .where(Bot.tenant_id == tenant_id, Bot.id == bot_id)
    )
    row = result.first()
    return (row[0], row[1]) if row else None


async def list_published(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> list[tuple[Bot, BotVersion]]:
    query = (
        select(Bot, BotVersion)
        .join(
            BotVersion,
            (BotVersion.tenant_id == Bot.tenant_id)
            & (BotVersion.bot_id == Bot.id)
            & (BotVersion.status == "published"),
        )
        .where(Bot.tenant_id == tenant_id)
        .order_by(Bot.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Bot.id > after)
    return [(b, v) for b, v in (await session.execute(query)).all()]


async def lock_bot(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> Bot | None:
    result = await session.execute(
        select(Bot).where(Bot.tenant_id == tenant_id, Bot.id == bot_id).with_for_update()
    )
    return result.scalar_one_or_none()


async def next_version_number(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> int:
    result = await session.execute(
        select(func.coalesce(func.max(BotVersion.number), 0)).where(
            BotVersion.tenant_id == tenant_id, BotVersion.bot_id == bot_id
        )
    )
    return int(result.scalar_one()) + 1


async def archive_published(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> None:
    await session.execute(
        update(BotVersion)
        .where(
            BotVersion.tenant_id == tenant_id,
            BotVersion.bot_id == bot_id,
            BotVersion.status == "published",
        )
        .values(status="archived")
    )


async def missing_sources(
    session: AsyncSession, tenant_id: TenantId, source_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """The ids in `source_ids` that are not knowledge sources of this tenant."""

    if not source_ids:
        return []
    result = await session.execute(
        select(KnowledgeSource.id).where(
            KnowledgeSource.tenant_id == tenant_id, KnowledgeSource.id.in_(source_ids)
        )
    )
    found = set(result.scalars())
    return [sid for sid in source_ids if sid not in found]
