"""Bots and their versions, channels, visitors, conversations, messages, feedback, the
idempotency ledger and the LLM turn ledger. All tenant-scoped; foreign keys carry tenant_id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


class Bot(TenantScoped, Base):
    __tablename__ = "bots"

    __table_args__ = (
        CheckConstraint("quality_gate_mode IN ('block', 'warn')", name="quality_gate_mode"),
    )

    name: Mapped[str] = mapped_column(String(120))
    quality_gate_mode: Mapped[str] = mapped_column(String(8), server_default="warn")
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class BotVersion(TenantScoped, Base):
    """An immutable configuration snapshot. Exactly one version per bot is `published`."""

    __tablename__ = "bot_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "bot_id"], ["bots.tenant_id", "bots.id"], ondelete="CASCADE"
        ),
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
        Index("uq_bot_versions_number", "tenant_id", "bot_id", "number", unique=True),
        Index(
            "uq_bot_versions_published",
            "tenant_id",
            "bot_id",
            unique=True,
            postgresql_where=text("status = 'published'"),
        ),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quality_gate: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The quality gate's result when this version was published (issue 19, decision 0037)."""


class GoldenQuestion(TenantScoped, Base):
    """A question a bot must keep answering: with the source it should cite, a passage it
    should retrieve and/or a substring its answer should contain (the quality gate)."""

    __tablename__ = "golden_questions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "bot_id"], ["bots.tenant_id", "bots.id"], ondelete="CASCADE"
        ),
        CheckConstraint(
            "expected_source_id IS NOT NULL OR expected_passage IS NOT NULL "
            "OR expected_answer IS NOT NULL",
            name="expects_something",
        ),
        Index("ix_golden_questions_bot", "tenant_id", "bot_id", "id"),
    )

    bot_id: Mapped[uuid.UUID] = mapped_column()
    question: Mapped[str] = mapped_column(Text)
    expected_source_id: Mapped[uuid.UUID | None] = mapped_column()
    expected_passage: Mapped[str | None] = mapped_column(Text)
    expected_answer: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()


class Channel(TenantScoped, Base):
    __tablename__ = "channels"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "bot_id"], ["bots.tenant_id", "bots.id"], ondelete="CASCADE"
        ),
        CheckConstraint("type IN ('widget', 'telegram', 'webhook', 'api')", name="type"),
        Index("uq_channels_widget_key", "widget_key", unique=True),
    )

    type: Mapped[str] = mapped_column(String(16))
    bot_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    widget_key: Mapped[str | None] = mapped_column(String(64))
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    theme: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # Telegram and webhook channels: non-secret settings (callback_url, api_base_url), the
    # inbound secret (Telegram secret token or `whsec_` key) and the bot token, encrypted.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # After a rotation the previous inbound secret verifies until it expires (migration 0027).
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    # Widget tokens carry the epoch they were issued under; removing an origin moves it on,
    # which ends every live token of the channel (migration 0018, decision 0019).
    token_epoch: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class Visitor(TenantScoped, Base):
    __tablename__ = "visitors"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "channel_id"], ["channels.tenant_id", "channels.id"], ondelete="CASCADE"
        ),
        Index("uq_visitors_token_hash", "tenant_id", "token_hash", unique=True),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = utcnow_column()
    last_seen_at: Mapped[datetime] = utcnow_column()
    # What staff see of the contact: the channel's own id for it (Telegram chat id, the
    # webhook channel's user id), an email the visitor left, the page the widget opened on.
    external_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    page_url: Mapped[str | None] = mapped_column(Text)


class Conversation(TenantScoped, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "bot_id"], ["bots.tenant_id", "bots.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "channel_id"], ["channels.tenant_id", "channels.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "visitor_id"], ["visitors.tenant_id", "visitors.id"], ondelete="CASCADE"
        ),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint(
            "handoff_status IN ('bot', 'waiting', 'assigned', 'resolved')", name="handoff_status"
        ),
        Index("ix_conversations_visitor", "tenant_id", "visitor_id", "id"),
        Index("ix_conversations_handoff_status", "tenant_id", "handoff_status", "id"),
        Index("ix_conversations_assignee", "tenant_id", "assignee_id", "id"),
        Index("ix_conversations_bot", "tenant_id", "bot_id", "id"),
        Index("ix_conversations_channel", "tenant_id", "channel_id", "id"),
        Index("ix_conversations_created", "tenant_id", "created_at"),  # analytics (0024)
    )

    bot_id: Mapped[uuid.UUID] = mapped_column()
    channel_id: Mapped[uuid.UUID] = mapped_column()
    visitor_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    created_at: Mapped[datetime] = utcnow_column()
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str | None] = mapped_column(Text)
    summary_upto: Mapped[uuid.UUID | None] = mapped_column()
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    handoff_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who answers (docs/inbox.md): bot → waiting → assigned → resolved, or back to bot.
    handoff_status: Mapped[str] = mapped_column(String(16), server_default="bot")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    fallback_streak: Mapped[int] = mapped_column(Integer, server_default="0")
    fallback_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_feedback: Mapped[str | None] = mapped_column(String(8))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Service figures, in milliseconds (kept by the database; migration 0019).
    first_bot_reply_ms: Mapped[int | None] = mapped_column(Integer)
    first_human_reply_ms: Mapped[int | None] = mapped_column(Integer)
    resolution_ms: Mapped[int | None] = mapped_column(Integer)


class ConversationTag(Base):
    """One row per conversation and tag, kept equal to `conversations.tags` by a trigger
    (migration 0031): the tag filter reads this btree, since under row-level security the
    array's `@>` cannot use an index (decision 0039). Written only by the trigger."""

    __tablename__ = "conversation_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class Message(TenantScoped, Base):
    __tablename__ = "messages"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("role IN ('user', 'assistant', 'operator')", name="role"),
        Index("ix_messages_conversation", "tenant_id", "conversation_id", "id"),
        Index("ix_messages_created", "tenant_id", "created_at"),  # analytics (0024)
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    bot_version_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = utcnow_column()
    # The visitor said it (a voice turn's transcript) rather than typed it.
    spoken: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # The person who wrote an `operator` message.
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class MessageFeedback(Base):
    __tablename__ = "message_feedback"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "message_id"], ["messages.tenant_id", "messages.id"], ondelete="CASCADE"
        ),
        CheckConstraint("rating IN ('up', 'down')", name="rating"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class IdempotencyKey(Base):
    """One row per (tenant, scope, key): what the first request asked (hash), where it got to,
    and the stored answer to replay. Kept at least 24 hours."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("state IN ('in_progress', 'completed', 'failed')", name="state"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[uuid.UUID] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column()
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LlmTurn(TenantScoped, Base):
    __tablename__ = "llm_turns"
    __table_args__ = (
        Index("uq_llm_turns_operation", "tenant_id", "operation_id", unique=True),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
        Index("ix_llm_turns_conversation", "tenant_id", "conversation_id"),
        Index("ix_llm_turns_created", "tenant_id", "created_at"),  # analytics (0024)
    )

    operation_id: Mapped[uuid.UUID] = mapped_column()
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    bot_version_id: Mapped[uuid.UUID | None] = mapped_column()
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Numeric(12, 6), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    fallback: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reply_message_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConversationNote(TenantScoped, Base):
    """An internal note staff keep on a conversation; never shown to the visitor."""

    __tablename__ = "conversation_notes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            ondelete="CASCADE",
        ),
        Index("ix_conversation_notes_conversation", "tenant_id", "conversation_id", "id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()


class ConversationEvent(TenantScoped, Base):
    """The timeline: one row per change of handler or assignee (written by a trigger)."""

    __tablename__ = "conversation_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            ondelete="CASCADE",
        ),
        Index("ix_conversation_events_conversation", "tenant_id", "conversation_id", "id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(80))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = utcnow_column()


class ProviderCredential(TenantScoped, Base):
    """A tenant's own key (and optional base URL) for a provider, encrypted at rest."""

    __tablename__ = "provider_credentials"
    __table_args__ = (
        Index("uq_provider_credentials_provider", "tenant_id", "provider", unique=True),
    )

    provider: Mapped[str] = mapped_column(String(40))
    base_url: Mapped[str | None] = mapped_column(Text)
    api_key_encrypted: Mapped[str] = mapped_column(Text)
    key_hint: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


__all__ = [
    "Bot",
    "BotVersion",
    "Channel",
    "Conversation",
    "ConversationEvent",
    "ConversationNote",
    "IdempotencyKey",
    "LlmTurn",
    "Message",
    "MessageFeedback",
    "ProviderCredential",
    "Visitor",
]
