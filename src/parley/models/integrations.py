"""Outbound tenant webhooks (endpoints, deliveries, the attempts log) and automation rules.
All tenant-scoped; deliveries and attempts reference their parent with tenant_id included."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
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


class WebhookEndpoint(TenantScoped, Base):
    """A URL a tenant subscribed to events. Secrets are encrypted; during a rotation window the
    previous secret is kept so deliveries carry both signatures. The circuit-breaker state lives
    here so every worker process sees the same one."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    circuit_open_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class WebhookDelivery(TenantScoped, Base):
    """One event for one endpoint; its id is the `webhook-id` receivers dedupe on.

    `status`: pending (waiting for its job), sending (claimed, lease until `lease_until`),
    delivered, dead (the dead-letter queue). `seq` names the job generation allowed to act on
    the row, so a stale or duplicated job is a no-op.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('pending', 'sending', 'delivered', 'dead')", name="status"),
        Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_status", "tenant_id", "status", "id"),
        Index("ix_webhook_deliveries_dead", "id", postgresql_where=text("status = 'dead'")),
        # Deliveries waiting for an in-flight slot, oldest first (the slot hand-over).
        Index(
            "ix_webhook_deliveries_waiting",
            "tenant_id",
            "endpoint_id",
            "id",
            postgresql_where=text("status = 'pending' AND attempt_count = 0"),
        ),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # Null: as many as the worker's retry schedule allows; a DLQ re-run sets attempts made + 1.
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = utcnow_column()
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class WebhookAttempt(TenantScoped, Base):
    """The delivery log: one row per POST we made (deferrals by the circuit breaker are not
    attempts and leave no row)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
        Index("ix_webhook_attempts_delivery", "tenant_id", "delivery_id", "attempt"),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column()
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = utcnow_column()


class AutomationRule(TenantScoped, Base):
    """On `event`, when `condition` holds, do `action` (shapes in automations/schemas.py)."""

    __tablename__ = "automation_rules"
    __table_args__ = (Index("ix_automation_rules_event", "tenant_id", "event"),)

    name: Mapped[str] = mapped_column(String(120))
    event: Mapped[str] = mapped_column(String(64))
    condition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    action: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class EmittedEvent(TenantScoped, Base):
    """An event that was turned into deliveries and rule actions, stored in the same
    transaction as they are: a re-run of the job that emits it (a crash between its commit and
    its acknowledgement) finds this row and does nothing. `id` is derived from the event and
    its subject (`webhooks.events.emitted_id`), so the primary key is the dedupe key."""

    __tablename__ = "emitted_events"

    event: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = utcnow_column()


__all__ = [
    "AutomationRule",
    "EmittedEvent",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
