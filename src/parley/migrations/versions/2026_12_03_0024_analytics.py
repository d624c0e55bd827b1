"""Analytics (issue 19): daily roll-ups kept current by dirty-day marks, and answered
knowledge gaps (the quality gate on publish comes in a later revision of this file).

Triggers on messages, conversations, llm_turns and message_feedback mark the (workspace, UTC
day) a write changes in `analytics_dirty`; the `analytics.rollup` job recomputes those days
with `parley_analytics_recompute` (both in `parley/sql/functions/`). Three indexes on
`created_at` let a day be recomputed without scanning the workspace. Decision 0034.

Revision ID: 0024_analytics
Revises: 0023_inbox_paths
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant
from parley.migrations.sqlsource import apply_sql

revision: str = "0024_analytics"
down_revision: str | None = "0023_inbox_paths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "analytics_dirty",
    "analytics_daily",
    "analytics_daily_models",
    "analytics_daily_latency",
    "analytics_gap_answers",
    "analytics_gap_questions",
)

FUNCTIONS = (
    "parley_analytics_mark_rows",
    "parley_analytics_mark_row",
    "parley_analytics_mark_feedback",
    "parley_analytics_days",
    "parley_analytics_recompute",
)

COUNTS = (
    "conversations",
    "messages",
    "user_messages",
    "bot_messages",
    "operator_messages",
    "turns",
    "answered",
    "fallback",
    "unanswered",
    "handoffs",
    "resolved_by_bot",
    "resolved_by_person",
    "feedback_up",
    "feedback_down",
    "first_bot_reply_ms_sum",
    "first_bot_replies",
    "first_human_reply_ms_sum",
    "first_human_replies",
    "prompt_tokens",
    "completion_tokens",
)


DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS analytics_messages_insert ON messages;
DROP TRIGGER IF EXISTS analytics_messages_delete ON messages;
DROP TRIGGER IF EXISTS analytics_conversations_insert ON conversations;
DROP TRIGGER IF EXISTS analytics_conversations_delete ON conversations;
DROP TRIGGER IF EXISTS analytics_conversations_update ON conversations;
DROP TRIGGER IF EXISTS analytics_llm_turns_insert ON llm_turns;
DROP TRIGGER IF EXISTS analytics_llm_turns_update ON llm_turns;
DROP TRIGGER IF EXISTS analytics_llm_turns_delete ON llm_turns;
DROP TRIGGER IF EXISTS analytics_feedback ON message_feedback;
DROP FUNCTION IF EXISTS parley_analytics_mark_rows();
DROP FUNCTION IF EXISTS parley_analytics_mark_row();
DROP FUNCTION IF EXISTS parley_analytics_mark_feedback();
DROP FUNCTION IF EXISTS parley_analytics_recompute(uuid, date[]);
DROP FUNCTION IF EXISTS parley_analytics_days(date[]);
"""


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _bot_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "bot_id"],
        ["bots.tenant_id", "bots.id"],
        name=f"fk_{table}_tenant_id_bot_id_bots",
        ondelete="CASCADE",
    )


def _bucket(table: str, *extra: sa.Column[object], keys: Sequence[str] = ()) -> None:
    op.create_table(
        table,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        *extra,
        _tenant_fk(table),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "bot_id", "channel_id", *keys, name=f"pk_{table}"
        ),
    )


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def _money() -> sa.Column[object]:
    return sa.Column(
        "cost_usd", sa.Numeric(precision=16, scale=6), server_default="0", nullable=False
    )


def upgrade() -> None:
    op.create_index("ix_messages_created", "messages", ["tenant_id", "created_at"])
    op.create_index("ix_conversations_created", "conversations", ["tenant_id", "created_at"])
    op.create_index("ix_llm_turns_created", "llm_turns", ["tenant_id", "created_at"])
    op.create_table(
        "analytics_dirty",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        _tenant_fk("analytics_dirty"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_analytics_dirty"),
    )
    _bucket("analytics_daily", *(_count(c) for c in COUNTS), _money())
    _bucket(
        "analytics_daily_models",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        _count("turns"),
        _count("prompt_tokens"),
        _count("completion_tokens"),
        _money(),
        keys=("provider", "model"),
    )
    _bucket(
        "analytics_daily_latency",
        sa.Column("le_ms", sa.Integer(), nullable=False),
        _count("turns"),
        keys=("le_ms",),
    )
    op.create_table(
        "analytics_gap_answers",
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        _bot_fk("analytics_gap_answers"),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name="fk_analytics_gap_answers_created_by_users",
            ondelete="SET NULL",
        ),
        _tenant_fk("analytics_gap_answers"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_analytics_gap_answers"),
    )
    op.create_index(
        "ix_analytics_gap_answers_bot", "analytics_gap_answers", ["tenant_id", "bot_id", "id"]
    )
    op.create_table(
        "analytics_gap_questions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("answer_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "answer_id"],
            ["analytics_gap_answers.tenant_id", "analytics_gap_answers.id"],
            name="fk_analytics_gap_questions_answer",
            ondelete="CASCADE",
        ),
        _tenant_fk("analytics_gap_questions"),
        sa.PrimaryKeyConstraint("tenant_id", "message_id", name="pk_analytics_gap_questions"),
    )
    for table in TABLES:
        enable_tenant_rls(table)
        grant("SELECT, INSERT, UPDATE, DELETE", table)
    apply_sql("functions/parley_analytics_mark_rows.sql")
    apply_sql("functions/parley_analytics_mark_row.sql")
    apply_sql("functions/parley_analytics_mark_feedback.sql")
    apply_sql("functions/parley_analytics_days.sql")
    apply_sql("functions/parley_analytics_recompute.sql")
    apply_sql("triggers/analytics_messages_insert.sql")
    apply_sql("triggers/analytics_messages_delete.sql")
    apply_sql("triggers/analytics_conversations_insert.sql")
    apply_sql("triggers/analytics_conversations_delete.sql")
    apply_sql("triggers/analytics_conversations_update.sql")
    apply_sql("triggers/analytics_llm_turns_insert.sql")
    apply_sql("triggers/analytics_llm_turns_update.sql")
    apply_sql("triggers/analytics_llm_turns_delete.sql")
    apply_sql("triggers/analytics_feedback.sql")


def downgrade() -> None:
    for statement in DROP_TRIGGERS.split(";\n"):
        if statement.strip():
            op.execute(statement)
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
    op.drop_index("ix_llm_turns_created", table_name="llm_turns")
    op.drop_index("ix_conversations_created", table_name="conversations")
    op.drop_index("ix_messages_created", table_name="messages")
