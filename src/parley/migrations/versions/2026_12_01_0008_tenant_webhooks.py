"""Outbound tenant webhooks (endpoints, deliveries, attempts), automation rules, and the
conversation tags and handoff request they act on.

Revision ID: 0008_tenant_webhooks
Revises: 0007_knowledge
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0008_tenant_webhooks"
down_revision: str | None = "0007_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("webhook_endpoints", "webhook_deliveries", "webhook_attempts", "automation_rules")


def _now(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _tenant(table: str) -> list[Any]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{table}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("events", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("circuit_open_until", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        *_tenant("webhook_endpoints"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), server_default="0", nullable=False),
        _now("next_attempt_at"),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        *_tenant("webhook_deliveries"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'dead')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint",
        "webhook_deliveries",
        ["tenant_id", "endpoint_id", "id"],
    )
    op.create_index(
        "ix_webhook_deliveries_status", "webhook_deliveries", ["tenant_id", "status", "id"]
    )
    op.create_index(
        "ix_webhook_deliveries_dead",
        "webhook_deliveries",
        ["id"],
        postgresql_where=sa.text("status = 'dead'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        _now("created_at"),
        *_tenant("webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_tenant_id_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(
        "ix_webhook_attempts_delivery",
        "webhook_attempts",
        ["tenant_id", "delivery_id", "attempt"],
    )
    op.create_table(
        "automation_rules",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("action", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _now("created_at"),
        _now("updated_at"),
        *_tenant("automation_rules"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_automation_rules")),
    )
    op.create_index("ix_automation_rules_event", "automation_rules", ["tenant_id", "event"])
    op.add_column(
        "conversations",
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column(
        "conversations",
        sa.Column("handoff_requested_at", sa.DateTime(timezone=True), nullable=True),
    )
    for table in TABLES:
        enable_tenant_rls(table)
    grant("SELECT, INSERT, UPDATE, DELETE", ", ".join(TABLES))
    # The dead-letter queue's size across all tenants, for /readyz and /metrics: one number,
    # no tenant data (the same narrow SECURITY DEFINER pattern as the pre-tenant lookups).
    op.execute(
        """
        CREATE FUNCTION parley_webhook_dead_letters() RETURNS bigint
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT count(*) FROM webhook_deliveries WHERE status = 'dead' $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION parley_webhook_dead_letters() FROM PUBLIC")
    grant("EXECUTE", "FUNCTION parley_webhook_dead_letters()")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS parley_webhook_dead_letters()")
    op.drop_column("conversations", "handoff_requested_at")
    op.drop_column("conversations", "tags")
    for table in TABLES:
        disable_tenant_rls(table)
    op.drop_index("ix_automation_rules_event", table_name="automation_rules")
    op.drop_table("automation_rules")
    op.drop_index("ix_webhook_attempts_delivery", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_dead", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
