"""Voice (SPEC C12): the voice ledger, spoken messages, and the workspace's audio retention.

Revision ID: 0021_voice
Revises: 0016_search_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0021_voice"
down_revision: str | None = "0020_data_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("spoken", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "tenants",
        sa.Column("voice_retention", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_table(
        "voice_turns",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("reply_message_id", sa.Uuid(), nullable=True),
        sa.Column("stt_provider", sa.String(length=40), nullable=False),
        sa.Column("stt_model", sa.String(length=120), nullable=False),
        sa.Column("tts_provider", sa.String(length=40), nullable=True),
        sa.Column("tts_model", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "input_seconds", sa.Numeric(precision=10, scale=3), server_default="0", nullable=False
        ),
        sa.Column(
            "output_seconds", sa.Numeric(precision=10, scale=3), server_default="0", nullable=False
        ),
        sa.Column("stt_ms", sa.Integer(), nullable=True),
        sa.Column("first_audio_ms", sa.Integer(), nullable=True),
        sa.Column(
            "cost_usd", sa.Numeric(precision=12, scale=6), server_default="0", nullable=False
        ),
        sa.Column("audio", sa.LargeBinary(), nullable=True),
        sa.Column("audio_format", sa.String(length=16), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted')",
            name=op.f("ck_voice_turns_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            name=op.f("fk_voice_turns_tenant_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voice_turns_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_voice_turns")),
    )
    op.create_index("ix_voice_turns_conversation", "voice_turns", ["tenant_id", "conversation_id"])
    op.create_index("ix_voice_turns_created", "voice_turns", ["tenant_id", "created_at"])
    enable_tenant_rls("voice_turns")
    grant("SELECT, INSERT, UPDATE, DELETE", "voice_turns")


def downgrade() -> None:
    disable_tenant_rls("voice_turns")
    op.drop_index("ix_voice_turns_created", table_name="voice_turns")
    op.drop_index("ix_voice_turns_conversation", table_name="voice_turns")
    op.drop_table("voice_turns")
    op.drop_column("tenants", "voice_retention")
    op.drop_column("messages", "spoken")
