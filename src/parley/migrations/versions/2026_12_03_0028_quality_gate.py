"""The quality gate on publish (issue 19, docs/bots.md "Quality gate", decision 0037).

- `golden_questions`: per bot, a question with the source it should cite, a passage it should
  retrieve and/or a substring its answer should contain. Tenant-scoped, RLS with FORCE.
- `bots.quality_gate_mode`: `warn` (default) or `block` when a draft passes fewer of them than
  the published version.
- `bot_versions.quality_gate`: the gate's result recorded when the version was published.

Revision ID: 0028_quality_gate
Revises: 0027_channel_secret_rotation
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0028_quality_gate"
down_revision: str | None = "0027_channel_secret_rotation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # `bots` and `bot_versions` already have RLS with FORCE; new columns are covered.
    op.add_column(
        "bots",
        sa.Column("quality_gate_mode", sa.String(8), server_default="warn", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_bots_quality_gate_mode"), "bots", "quality_gate_mode IN ('block', 'warn')"
    )
    op.add_column(
        "bot_versions",
        sa.Column("quality_gate", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_table(
        "golden_questions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("expected_source_id", sa.Uuid(), nullable=True),
        sa.Column("expected_passage", sa.Text(), nullable=True),
        sa.Column("expected_answer", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "expected_source_id IS NOT NULL OR expected_passage IS NOT NULL "
            "OR expected_answer IS NOT NULL",
            name=op.f("ck_golden_questions_expects_something"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            ondelete="CASCADE",
            name=op.f("fk_golden_questions_tenant_id_tenants"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "bot_id"],
            ["bots.tenant_id", "bots.id"],
            ondelete="CASCADE",
            name=op.f("fk_golden_questions_tenant_id_bot_id_bots"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            ondelete="SET NULL",
            name=op.f("fk_golden_questions_created_by_users"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_golden_questions")),
    )
    op.create_index("ix_golden_questions_bot", "golden_questions", ["tenant_id", "bot_id", "id"])
    enable_tenant_rls("golden_questions")
    grant("SELECT, INSERT, UPDATE, DELETE", "golden_questions")


def downgrade() -> None:
    disable_tenant_rls("golden_questions")
    op.drop_table("golden_questions")
    op.drop_column("bot_versions", "quality_gate")
    op.drop_constraint(op.f("ck_bots_quality_gate_mode"), "bots", type_="check")
    op.drop_column("bots", "quality_gate_mode")
