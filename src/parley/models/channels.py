"""Inbound channel events: the raw update as received, deduplicated per channel, and how far
its processing got (user message, reply, reply sent)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


class InboundEvent(TenantScoped, Base):
    """One delivery from a channel. `dedupe_key` (Telegram `update_id`, Standard Webhooks
    `webhook-id`) is unique per channel: a redelivery finds the row and does nothing."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "channel_id"], ["channels.tenant_id", "channels.id"], ondelete="CASCADE"
        ),
        CheckConstraint(
            "status IN ('received', 'processing', 'done', 'ignored', 'failed')", name="status"
        ),
        Index("uq_inbound_events_dedupe", "tenant_id", "channel_id", "dedupe_key", unique=True),
        Index(
            "ix_inbound_events_pending",
            "status",
            postgresql_where=text("status IN ('received', 'processing', 'failed')"),
        ),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column()
    dedupe_key: Mapped[str] = mapped_column(String(255))
    external_user_id: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="received")
    conversation_id: Mapped[uuid.UUID | None] = mapped_column()
    user_message_id: Mapped[uuid.UUID | None] = mapped_column()
    reply_message_id: Mapped[uuid.UUID | None] = mapped_column()
    reply_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = utcnow_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


__all__ = ["InboundEvent"]
