"""Queries for the voice capability: what a voice turn needs to know (one round trip), the
voice ledger, and the workspace's voice settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import BotVersion, Channel, Tenant, VoiceTurn


async def turn_context(
    session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID, bot_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any], bool] | None:
    """The channel's settings, the published bot configuration and the workspace's audio
    retention, or None when the channel or the published version is gone."""
    row = (
        await session.execute(
            select(Channel.config, BotVersion.config, Tenant.voice_retention)
            .join(
                BotVersion,
                (BotVersion.tenant_id == Channel.tenant_id)
                & (BotVersion.bot_id == bot_id)
                & (BotVersion.status == "published"),
            )
            .join(Tenant, Tenant.id == Channel.tenant_id)
            .where(Channel.tenant_id == tenant_id, Channel.id == channel_id)
        )
    ).first()
    if row is None:
        return None
    return dict(row[0] or {}), dict(row[1]), bool(row[2])


async def published_config(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID
) -> tuple[dict[str, Any], bool] | None:
    row = (
        await session.execute(
            select(BotVersion.config, Tenant.voice_retention)
            .join(Tenant, Tenant.id == BotVersion.tenant_id)
            .where(
                BotVersion.tenant_id == tenant_id,
                BotVersion.bot_id == bot_id,
                BotVersion.status == "published",
            )
        )
    ).first()
    return (dict(row[0]), bool(row[1])) if row is not None else None


def add_turn(session: AsyncSession, tenant_id: TenantId, **values: Any) -> None:
    session.add(VoiceTurn(tenant_id=tenant_id, **values))


async def retention(session: AsyncSession, tenant_id: TenantId) -> bool:
    found = await session.scalar(select(Tenant.voice_retention).where(Tenant.id == tenant_id))
    return bool(found)


async def set_retention(session: AsyncSession, tenant_id: TenantId, keep: bool) -> None:
    await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(voice_retention=keep))


async def voice_seconds(session: AsyncSession, tenant_id: TenantId, since: datetime) -> float:
    """The `voice_seconds` usage metric: speech heard plus speech made."""
    total = await session.scalar(
        select(
            func.coalesce(func.sum(VoiceTurn.input_seconds + VoiceTurn.output_seconds), 0)
        ).where(VoiceTurn.tenant_id == tenant_id, VoiceTurn.created_at >= since)
    )
    return float(total or 0)
