"""Analytics roll-ups (per workspace, bot, channel and UTC day) and the dirty-day marks that
keep them current, and answered knowledge gaps. All tenant-scoped. The roll-ups are derived
data: `parley_analytics_recompute` rewrites a day from the source rows (migration 0024,
docs/analytics.md)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


def _tenant() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)


class AnalyticsDirty(Base):
    """A (workspace, day) whose figures changed since its last roll-up; append-only marks."""

    __tablename__ = "analytics_dirty"
    # The read's pending check is an index-only scan on this (migration 0029).
    __table_args__ = (
        Index("ix_analytics_dirty_day", "tenant_id", "day", postgresql_include=["marked_at"]),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant()
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    marked_at: Mapped[datetime] = utcnow_column()


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, server_default="0")


class AnalyticsDaily(Base):
    __tablename__ = "analytics_daily"

    tenant_id: Mapped[uuid.UUID] = _tenant()
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bot_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversations: Mapped[int] = _count()
    messages: Mapped[int] = _count()
    user_messages: Mapped[int] = _count()
    bot_messages: Mapped[int] = _count()
    operator_messages: Mapped[int] = _count()
    turns: Mapped[int] = _count()
    answered: Mapped[int] = _count()
    fallback: Mapped[int] = _count()
    unanswered: Mapped[int] = _count()
    handoffs: Mapped[int] = _count()
    resolved_by_bot: Mapped[int] = _count()
    resolved_by_person: Mapped[int] = _count()
    feedback_up: Mapped[int] = _count()
    feedback_down: Mapped[int] = _count()
    first_bot_reply_ms_sum: Mapped[int] = _count()
    first_bot_replies: Mapped[int] = _count()
    first_human_reply_ms_sum: Mapped[int] = _count()
    first_human_replies: Mapped[int] = _count()
    prompt_tokens: Mapped[int] = _count()
    completion_tokens: Mapped[int] = _count()
    cost_usd: Mapped[float] = mapped_column(Numeric(16, 6), server_default="0")


class AnalyticsDailyModel(Base):
    """Tokens and cost of one day, bot and channel by provider and model."""

    __tablename__ = "analytics_daily_models"

    tenant_id: Mapped[uuid.UUID] = _tenant()
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bot_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(120), primary_key=True)
    turns: Mapped[int] = _count()
    prompt_tokens: Mapped[int] = _count()
    completion_tokens: Mapped[int] = _count()
    cost_usd: Mapped[float] = mapped_column(Numeric(16, 6), server_default="0")


class AnalyticsDailyLatency(Base):
    """Time to first token of one day, bot and channel as a histogram (`le_ms` = bucket's
    upper bound), so percentiles can be read over any range of days."""

    __tablename__ = "analytics_daily_latency"

    tenant_id: Mapped[uuid.UUID] = _tenant()
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bot_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    le_ms: Mapped[int] = mapped_column(Integer, primary_key=True)
    turns: Mapped[int] = _count()


class GapAnswer(TenantScoped, Base):
    """A knowledge gap someone answered: the FAQ entry written and the re-index it started."""

    __tablename__ = "analytics_gap_answers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "bot_id"], ["bots.tenant_id", "bots.id"], ondelete="CASCADE"
        ),
        Index("ix_analytics_gap_answers_bot", "tenant_id", "bot_id", "id"),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column()
    source_id: Mapped[uuid.UUID] = mapped_column()
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    questions: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()


class GapQuestion(Base):
    """A visitor's question that an answered gap covers; gaps leave it out from then on."""

    __tablename__ = "analytics_gap_questions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "answer_id"],
            ["analytics_gap_answers.tenant_id", "analytics_gap_answers.id"],
            ondelete="CASCADE",
            name="fk_analytics_gap_questions_answer",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant()
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    answer_id: Mapped[uuid.UUID] = mapped_column()


__all__ = [
    "AnalyticsDaily",
    "AnalyticsDailyLatency",
    "AnalyticsDailyModel",
    "AnalyticsDirty",
    "GapAnswer",
    "GapQuestion",
]
