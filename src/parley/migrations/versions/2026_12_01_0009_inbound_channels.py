"""Inbound channels: channel config and encrypted secrets, the `inbound_events` table, the
pre-tenant channel lookup and the operator's event counts.

Revision ID: 0009_inbound_channels
Revises: 0008_tenant_webhooks
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0009_inbound_channels"
down_revision: str | None = "0008_tenant_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "channels",
        sa.Column(
            "config", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
    )
    op.add_column("channels", sa.Column("secret_encrypted", sa.Text(), nullable=True))
    op.add_column("channels", sa.Column("token_encrypted", sa.Text(), nullable=True))
    op.create_table(
        "inbound_events",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("external_user_id", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="received", nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("user_message_id", sa.Uuid(), nullable=True),
        sa.Column("reply_message_id", sa.Uuid(), nullable=True),
        sa.Column("reply_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'done', 'ignored', 'failed')",
            name=op.f("ck_inbound_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "channel_id"],
            ["channels.tenant_id", "channels.id"],
            name=op.f("fk_inbound_events_tenant_id_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inbound_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "tenant_id", name=op.f("pk_inbound_events")),
    )
    op.create_index(
        "uq_inbound_events_dedupe",
        "inbound_events",
        ["tenant_id", "channel_id", "dedupe_key"],
        unique=True,
    )
    op.create_index(
        "ix_inbound_events_pending",
        "inbound_events",
        ["status"],
        postgresql_where=sa.text("status IN ('received', 'processing', 'failed')"),
    )
    enable_tenant_rls("inbound_events")
    grant("SELECT, INSERT, UPDATE, DELETE", "inbound_events")
    # Decision 0002: the channel id in an ingress path yields only its tenant id; the channel
    # and its secret are then read inside that tenant's context, where the signature is checked.
    op.execute(
        """
        CREATE FUNCTION parley_channel_tenant(p_channel_id uuid, p_type text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT tenant_id FROM channels WHERE id = p_channel_id AND type = p_type $$
        """
    )
    # Operators see the backlog across tenants as counts only (no tenant ids, no content).
    op.execute(
        """
        CREATE FUNCTION parley_inbound_event_counts() RETURNS TABLE(status text, n bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT status::text, count(*) FROM inbound_events
           WHERE status IN ('received', 'processing', 'failed') GROUP BY status $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION parley_channel_tenant(uuid, text) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION parley_inbound_event_counts() FROM PUBLIC")
    grant("EXECUTE", "FUNCTION parley_channel_tenant(uuid, text)")
    grant("EXECUTE", "FUNCTION parley_inbound_event_counts()")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS parley_inbound_event_counts()")
    op.execute("DROP FUNCTION IF EXISTS parley_channel_tenant(uuid, text)")
    disable_tenant_rls("inbound_events")
    op.drop_index(
        "ix_inbound_events_pending",
        table_name="inbound_events",
        postgresql_where=sa.text("status IN ('received', 'processing', 'failed')"),
    )
    op.drop_index("uq_inbound_events_dedupe", table_name="inbound_events")
    op.drop_table("inbound_events")
    op.execute("DELETE FROM channels WHERE type IN ('telegram', 'webhook')")
    op.drop_column("channels", "token_encrypted")
    op.drop_column("channels", "secret_encrypted")
    op.drop_column("channels", "config")
