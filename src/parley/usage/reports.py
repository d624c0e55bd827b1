"""Monthly usage reports: one workspace's month (JSON and CSV) and the platform-wide view.

Totals come from `usage_counters` (kept in the transaction of the work, so exact and cheap);
the per-day figures from `usage_events` of the month (one index range scan)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Date, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.errors import ParleyError
from parley.kit.pagination import after_id, encode_cursor
from parley.models import Bot, KnowledgeSource, Tenant, UsageCounter, UsageEvent
from parley.tenants.service import bind_new_tenant
from parley.usage.plans import LIMITS
from parley.usage.schemas import (
    LimitReading,
    MeterDay,
    MeterTotal,
    PlatformUsage,
    TenantUsageRow,
    UsageReport,
)

METERS = (
    "llm_tokens",
    "conversations_started",
    "messages_processed",
    "webhook_events",
    "integration_calls",
    "storage_bytes",
)


class InvalidPeriod(ParleyError):
    status = 422
    code = "invalid_period"
    title = "The period must be a month as YYYY-MM"


def month_bounds(period: str | None, now: datetime) -> tuple[str, datetime, datetime]:
    """(`YYYY-MM`, first instant, first instant of the next month), UTC."""
    if period is None:
        start = datetime(now.year, now.month, 1, tzinfo=UTC)
    else:
        try:
            year, month = (int(p) for p in period.split("-"))
            start = datetime(year, month, 1, tzinfo=UTC)
        except ValueError as exc:
            raise InvalidPeriod() from exc
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    return start.strftime("%Y-%m"), start, end


async def _counters(session: AsyncSession, tenant_id: uuid.UUID, period: str) -> dict[str, int]:
    rows = await session.execute(
        select(UsageCounter.metric, UsageCounter.used).where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.period.in_([period, "all"]),
        )
    )
    return {str(m): int(u) for m, u in rows}


async def limit_readings(
    session: AsyncSession, tenant_id: TenantId, now: datetime
) -> list[LimitReading]:
    """Where the workspace stands on each limit right now (limits with live overages)."""
    period, _, next_month = month_bounds(None, now)
    limits = (
        await session.execute(
            text("SELECT " + ", ".join(f"parley_plan_limit(:t, '{m}', :now)" for m in LIMITS)),
            {"t": tenant_id, "now": now},
        )
    ).one()
    counters = await _counters(session, tenant_id, period)
    window = await session.scalar(
        select(UsageCounter.used).where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.metric == "messages_per_minute",
            UsageCounter.window_start == func.date_trunc("minute", now),
        )
    )
    bots = await session.scalar(
        select(func.count()).select_from(Bot).where(Bot.tenant_id == tenant_id)
    )
    sources = await session.scalar(
        select(func.count())
        .select_from(KnowledgeSource)
        .where(KnowledgeSource.tenant_id == tenant_id)
    )
    minute = now.replace(second=0, microsecond=0)
    used = {
        "monthly_conversations": counters.get("conversations_started", 0),
        "monthly_tokens": counters.get("llm_tokens", 0),
        "messages_per_minute": int(window or 0),
        "bots": int(bots or 0),
        "sources": int(sources or 0),
        "storage_bytes": counters.get("storage_bytes", 0),
    }
    resets: dict[str, datetime | None] = {
        "monthly_conversations": next_month,
        "monthly_tokens": next_month,
        "messages_per_minute": minute + timedelta(minutes=1),
    }
    out = []
    for name, limit in zip(LIMITS, limits, strict=True):
        value = int(limit) if limit is not None else None
        out.append(
            LimitReading(
                metric=name,
                limit=value,
                used=used[name],
                percent=None if not value else min(100, used[name] * 100 // value),
                reset_at=resets.get(name),
            )
        )
    return out


async def tenant_report(
    session: AsyncSession, tenant_id: TenantId, period: str | None, now: datetime | None = None
) -> UsageReport:
    now = now or datetime.now(UTC)
    name, start, end = month_bounds(period, now)
    plan = await session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id)) or "free"
    counters = await _counters(session, tenant_id, name)
    day = cast(func.timezone("UTC", UsageEvent.occurred_at), Date)
    rows = await session.execute(
        select(day, UsageEvent.type, func.sum(UsageEvent.quantity))
        .where(
            UsageEvent.tenant_id == tenant_id,
            UsageEvent.occurred_at >= start,
            UsageEvent.occurred_at < end,
        )
        .group_by(day, UsageEvent.type)
        .order_by(day, UsageEvent.type)
    )
    days = [MeterDay(day=d, type=t, quantity=int(q)) for d, t, q in rows]
    # storage is a gauge (the current total); the others are the month's sums
    totals = [MeterTotal(type=m, quantity=counters.get(m, 0)) for m in METERS]
    return UsageReport(
        tenant_id=tenant_id,
        period=name,
        plan=plan,
        totals=totals,
        days=days,
        limits=await limit_readings(session, tenant_id, now),
    )


CSV_COLUMNS = ("period", "day", "type", "quantity")


def csv_name(report: UsageReport) -> str:
    """The download's file name (the API's `/usage.csv` and the console's)."""
    return f"usage-{report.period}.csv"


def report_csv(report: UsageReport) -> str:
    """The report's figures as CSV: one row per day and meter, then one `total` row per
    meter (day empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in report.days:
        writer.writerow((report.period, d.day.isoformat(), d.type, d.quantity))
    for t in report.totals:
        writer.writerow((report.period, "", t.type, t.quantity))
    return out.getvalue()


async def platform_usage(
    session: AsyncSession, period: str | None, cursor: str | None, limit: int
) -> PlatformUsage:
    """Every workspace's month totals, a page at a time: each workspace's counters are read
    in its own tenant context (the app role sees no tenant rows otherwise)."""
    name, _, _ = month_bounds(period, datetime.now(UTC))
    query = select(Tenant).order_by(Tenant.id).limit(limit + 1)
    after = after_id(cursor)
    if after is not None:
        query = query.where(Tenant.id > after)
    tenants = list((await session.execute(query)).scalars())
    items = []
    for tenant in tenants[:limit]:
        tid = await bind_new_tenant(session, tenant.id)
        counters = await _counters(session, tid, name)
        items.append(
            TenantUsageRow(
                tenant_id=tenant.id,
                name=tenant.name,
                plan=tenant.plan,
                status=tenant.status,
                totals={m: counters.get(m, 0) for m in METERS},
            )
        )
    more = len(tenants) > limit
    return PlatformUsage(
        period=name,
        items=items,
        next_cursor=encode_cursor([str(tenants[limit - 1].id)]) if more else None,
    )
