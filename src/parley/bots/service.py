"""Bots: create with version 1 published; configuration changes publish a new immutable version
atomically (the old one is archived in the same transaction)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.auth.access import Principal
from parley.bots import repository as repo
from parley.bots.schemas import BotConfig, BotCreate, BotOut, BotUpdate
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound, Unprocessable
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.models import Bot, BotVersion, GoldenQuestion

log = structlog.get_logger(__name__)


class BotNotFound(NotFound):
    code = "bot_not_found"
    title = "Bot not found"


class UnknownKnowledgeSource(Unprocessable):
    code = "unknown_knowledge_source"
    title = "A listed knowledge source does not exist in this workspace"


async def check_sources(
    session: AsyncSession, tenant_id: TenantId, source_ids: list[uuid.UUID] | None
) -> None:
    """Ids in a body are checked like ids in a path: only this workspace's sources."""
    if source_ids:
        missing = await repo.missing_sources(session, tenant_id, source_ids)
        if missing:
            raise UnknownKnowledgeSource(f"Unknown source ids: {', '.join(map(str, missing))}")


class GateRequiresDraft(Conflict):
    code = "quality_gate_requires_draft"
    title = "This bot's quality gate blocks; publish configuration changes through a draft"


def bot_out(bot: Bot, version: BotVersion) -> BotOut:
    return BotOut(
        id=bot.id,
        name=bot.name,
        version=version.number,
        version_id=version.id,
        config=BotConfig.model_validate(version.config),
        created_at=bot.created_at,
        updated_at=bot.updated_at,
    )


def _default_model(provider: str) -> str:
    return {
        "extractive": "extractive",
        "openai": "gpt-4o-mini",
        "anthropic": "claude-3-5-haiku-latest",
        "gemini": "gemini-2.0-flash",
    }.get(provider, provider)


async def create_bot(
    session: AsyncSession, tenant_id: TenantId, principal: Principal, body: BotCreate
) -> BotOut:
    fields = body.model_dump(exclude_none=True, exclude={"name"})
    if "provider" in fields and "model" not in fields:
        fields["model"] = _default_model(fields["provider"])
    config = BotConfig(**fields)
    bot = Bot(tenant_id=tenant_id, id=new_id(), name=body.name.strip())
    session.add(bot)
    await session.flush()
    version = BotVersion(
        tenant_id=tenant_id,
        id=new_id(),
        bot_id=bot.id,
        number=1,
        status="published",
        config=config.model_dump(mode="json"),
        created_by=principal.user_id,
        published_at=datetime.now(UTC),
    )
    session.add(version)
    await session.flush()
    await session.refresh(bot)
    await session.refresh(version)
    log.info("bot.created", tenant_id=str(tenant_id), bot_id=str(bot.id))
    out = bot_out(bot, version)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.created",
        target_type="bot",
        target_id=bot.id,
        after=out.model_dump(mode="json"),
    )
    return out


async def get_bot(session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID) -> BotOut:
    found = await repo.published(session, tenant_id, bot_id)
    if found is None:
        raise BotNotFound()
    return bot_out(*found)


async def list_bots(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[BotOut]:
    rows = await repo.list_published(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, lambda r: bot_out(*r), lambda b: b.id)


async def update_bot(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    bot_id: uuid.UUID,
    body: BotUpdate,
) -> BotOut:
    bot = await repo.lock_bot(session, tenant_id, bot_id)  # serialises concurrent publishes
    current = await repo.published(session, tenant_id, bot_id)
    if bot is None or current is None:
        raise BotNotFound()
    _, version = current
    before = bot_out(bot, version).model_dump(mode="json")
    if body.name is not None:
        bot.name = body.name.strip()
    await check_sources(session, tenant_id, body.knowledge_source_ids)
    changes = body.model_dump(exclude_none=True, exclude={"name"}, mode="json")
    if changes and bot.quality_gate_mode == "block" and await _has_golden(session, tenant_id, bot):
        raise GateRequiresDraft()  # the shortcut would publish around the gate
    if changes:
        if "provider" in changes and "model" not in changes:
            changes["model"] = _default_model(changes["provider"])
        config = BotConfig.model_validate({**version.config, **changes})
        await repo.archive_published(session, tenant_id, bot_id)
        version = BotVersion(
            tenant_id=tenant_id,
            id=new_id(),
            bot_id=bot_id,
            number=await repo.next_version_number(session, tenant_id, bot_id),
            status="published",
            config=config.model_dump(mode="json"),
            created_by=principal.user_id,
            published_at=datetime.now(UTC),
        )
        session.add(version)
    bot.updated_at = datetime.now(UTC)
    await session.flush()
    await session.refresh(bot)
    await session.refresh(version)
    out = bot_out(bot, version)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.updated",
        target_type="bot",
        target_id=bot_id,
        before=before,
        after=out.model_dump(mode="json"),
    )
    return out


async def _has_golden(session: AsyncSession, tenant_id: TenantId, bot: Bot) -> bool:
    found = await session.scalar(
        select(GoldenQuestion.id)
        .where(GoldenQuestion.tenant_id == tenant_id, GoldenQuestion.bot_id == bot.id)
        .limit(1)
    )
    return found is not None


async def delete_bot(
    session: AsyncSession, tenant_id: TenantId, principal: Principal, bot_id: uuid.UUID
) -> None:
    bot = await repo.lock_bot(session, tenant_id, bot_id)
    current = await repo.published(session, tenant_id, bot_id)
    if bot is None or current is None:
        raise BotNotFound()
    before = bot_out(*current).model_dump(mode="json")
    await session.delete(bot)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="bot.deleted",
        target_type="bot",
        target_id=bot_id,
        before=before,
    )
