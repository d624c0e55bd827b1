"""Turn ledger aggregates: what each bot and model cost, in tokens, money and time."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import Bot, BotVersion, LlmTurn


class UsageRow(BaseModel):
    bot_id: uuid.UUID | None
    bot_name: str | None
    provider: str
    model: str
    turns: int
    failed_turns: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    avg_latency_ms: float | None
    avg_ttft_ms: float | None


class UsageReport(BaseModel):
    since: datetime | None
    until: datetime | None
    items: list[UsageRow]
    total_cost_usd: Decimal


async def llm_usage(
    session: AsyncSession, tenant_id: TenantId, since: datetime | None, until: datetime | None
) -> UsageReport:
    query = (
        select(
            Bot.id,
            Bot.name,
            LlmTurn.provider,
            LlmTurn.model,
            func.count(),
            func.count().filter(LlmTurn.status == "failed"),
            func.coalesce(func.sum(LlmTurn.prompt_tokens), 0),
            func.coalesce(func.sum(LlmTurn.completion_tokens), 0),
            func.coalesce(func.sum(LlmTurn.cost_usd), 0),
            func.avg(case((LlmTurn.status == "succeeded", LlmTurn.latency_ms))),
            func.avg(LlmTurn.ttft_ms),
        )
        .select_from(LlmTurn)
        .outerjoin(
            BotVersion,
            (BotVersion.tenant_id == LlmTurn.tenant_id) & (BotVersion.id == LlmTurn.bot_version_id),
        )
        .outerjoin(Bot, (Bot.tenant_id == BotVersion.tenant_id) & (Bot.id == BotVersion.bot_id))
        .where(LlmTurn.tenant_id == tenant_id)
        .group_by(Bot.id, Bot.name, LlmTurn.provider, LlmTurn.model)
        .order_by(func.sum(LlmTurn.cost_usd).desc(), Bot.name, LlmTurn.model)
    )
    if since is not None:
        query = query.where(LlmTurn.created_at >= since)
    if until is not None:
        query = query.where(LlmTurn.created_at < until)
    items = [
        UsageRow(
            bot_id=r[0],
            bot_name=r[1],
            provider=r[2],
            model=r[3],
            turns=int(r[4]),
            failed_turns=int(r[5]),
            prompt_tokens=int(r[6]),
            completion_tokens=int(r[7]),
            cost_usd=Decimal(r[8]),
            avg_latency_ms=float(r[9]) if r[9] is not None else None,
            avg_ttft_ms=float(r[10]) if r[10] is not None else None,
        )
        for r in (await session.execute(query)).all()
    ]
    return UsageReport(
        since=since,
        until=until,
        items=items,
        total_cost_usd=sum((i.cost_usd for i in items), Decimal(0)),
    )
