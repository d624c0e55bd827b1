"""Usage metering and plan enforcement (issue 19, migration 0025, decision 0035).

`usage_events` is the append-only meter a billing system reads; `usage_counters` the running
totals the limits are checked against (updated in the same transaction as the work, by
triggers). `plans` is the platform's plan table, copied from `PARLEY_PLANS` at startup so the
database can refuse work atomically. Per-visitor budgets live per channel."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column

USAGE_EVENT_TYPES = (
    "llm_tokens",
    "conversations_started",
    "messages_processed",
    "webhook_events",
    "integration_calls",
    "storage_bytes",
)


class Plan(Base):
    """A plan's limits (platform table, no tenant): `PARLEY_PLANS` as the database sees it."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    updated_at: Mapped[datetime] = utcnow_column()


_TYPES = ", ".join(f"'{t}'" for t in USAGE_EVENT_TYPES)


class UsageEvent(TenantScoped, Base):
    """One metered quantity. `source` names the work it counts (a message, a turn, a
    delivery), unique per type: metering the same work again is a no-op."""

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint(f"type IN ({_TYPES})", name="type"),
        Index("uq_usage_events_source", "tenant_id", "type", "source", unique=True),
        Index("ix_usage_events_occurred", "tenant_id", "occurred_at"),
    )

    type: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = utcnow_column()


class UsageCounter(Base):
    """A running total per meter and period (`YYYY-MM`; `all` for a gauge such as storage;
    for the per-minute rate, `minute` with `window_start`)."""

    __tablename__ = "usage_counters"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "metric", "period"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    used: Mapped[int] = mapped_column(BigInteger, server_default="0")
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = utcnow_column()


class PlanOverage(TenantScoped, Base):
    """A temporary raise of one limit granted by a platform admin (counts until it expires)."""

    __tablename__ = "plan_overages"
    __table_args__ = (
        CheckConstraint(
            "metric IN ('monthly_conversations', 'monthly_tokens', 'messages_per_minute', "
            "'bots', 'sources', 'storage_bytes')",
            name="metric",
        ),
        CheckConstraint("extra > 0", name="extra"),
        Index("ix_plan_overages_metric", "tenant_id", "metric", "expires_at"),
    )

    metric: Mapped[str] = mapped_column(String(32))
    extra: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()


class VisitorBudget(Base):
    """A channel's per-visitor daily budget (UTC days); `None` is no budget for that measure."""

    __tablename__ = "visitor_budgets"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "channel_id"),
        ForeignKeyConstraint(
            ["tenant_id", "channel_id"], ["channels.tenant_id", "channels.id"], ondelete="CASCADE"
        ),
        CheckConstraint("messages_per_day IS NULL OR messages_per_day > 0", name="messages"),
        CheckConstraint("tokens_per_day IS NULL OR tokens_per_day > 0", name="tokens"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column()
    messages_per_day: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = utcnow_column()


class VisitorUsage(Base):
    """What one visitor used on one day, kept for visitors of channels with a budget."""

    __tablename__ = "visitor_usage"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "visitor_id", "day"),
        ForeignKeyConstraint(
            ["tenant_id", "visitor_id"], ["visitors.tenant_id", "visitors.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    visitor_id: Mapped[uuid.UUID] = mapped_column()
    day: Mapped[date] = mapped_column(Date)
    messages: Mapped[int] = mapped_column(Integer, server_default="0")
    tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
