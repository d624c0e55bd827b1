"""The voice ledger: one row per spoken turn (SPEC C12) with the speech time and cost, and the
visitor's audio only when the workspace keeps it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


class VoiceTurn(TenantScoped, Base):
    __tablename__ = "voice_turns"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted')", name="status"
        ),
        Index("ix_voice_turns_conversation", "tenant_id", "conversation_id"),
        Index("ix_voice_turns_created", "tenant_id", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    channel: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[uuid.UUID | None] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    reply_message_id: Mapped[uuid.UUID | None] = mapped_column()
    stt_provider: Mapped[str] = mapped_column(String(40))
    stt_model: Mapped[str] = mapped_column(String(120))
    tts_provider: Mapped[str | None] = mapped_column(String(40))
    tts_model: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    input_seconds: Mapped[float] = mapped_column(Numeric(10, 3), server_default="0")
    output_seconds: Mapped[float] = mapped_column(Numeric(10, 3), server_default="0")
    stt_ms: Mapped[int | None] = mapped_column(Integer)
    first_audio_ms: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Numeric(12, 6), server_default="0")
    audio: Mapped[bytes | None] = mapped_column(LargeBinary)
    audio_format: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


__all__ = ["VoiceTurn"]
