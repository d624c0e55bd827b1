"""Plans that are enforced (issue 19, the plans half; docs/plans.md, decision 0035).

- `plans`: the platform's plan table, copied from `PARLEY_PLANS` at every startup, so the
  database itself can refuse work in the transaction that would do it.
- `usage_events` (append-only meter: llm_tokens, conversations_started, messages_processed,
  webhook_events, integration_calls, storage_bytes; unique per type and source, so the same
  work is never metered twice) and `usage_counters` (running totals per month, the storage
  gauge, the per-minute window) — both written by triggers in the transaction of the work.
- `plan_overages`: temporary raises granted by platform admins.
- `visitor_budgets` (per channel) and `visitor_usage` (per visitor and UTC day).
- `tenants.quota_message`: what a visitor is shown when the work is refused.
- Triggers: admission before the insert (conversations, visitor messages, bots, sources,
  stored bytes) and metering after it (messages, turns, inbound events, webhook attempts).
  A refusal raises SQLSTATE PQ402/PQ429 (`parley_quota_refuse`), which aborts the statement.

Revision ID: 0025_plans
Revises: 0024_analytics
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant
from parley.migrations.sqlsource import apply_sql

revision: str = "0025_plans"
down_revision: str | None = "0024_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "usage_events",
    "usage_counters",
    "plan_overages",
    "visitor_budgets",
    "visitor_usage",
)
FUNCTIONS = (
    "parley_plan_limit(uuid, text, timestamptz)",
    "parley_quota_refuse(uuid, integer, text, text, bigint, bigint, timestamptz)",
    "parley_usage_meter(uuid, text, bigint, text, boolean)",
    "parley_plan_admit(uuid, text, text, bigint)",
    "parley_plan_rate(uuid)",
    "parley_usage_on_conversation()",
    "parley_usage_on_message()",
    "parley_usage_on_turn()",
    "parley_usage_on_count()",
    "parley_usage_on_storage()",
    "parley_usage_on_call()",
)
USER = "WHEN (NEW.role = 'user')"  # what a visitor writes
TRIGGERS = (
    (
        "conversations",
        "usage_admit_conversation",
        "BEFORE INSERT",
        "",
        "parley_usage_on_conversation()",
    ),
    (
        "conversations",
        "usage_meter_conversation",
        "AFTER INSERT",
        "",
        "parley_usage_on_conversation()",
    ),
    ("messages", "usage_admit_message", "BEFORE INSERT", USER, "parley_usage_on_message()"),
    ("messages", "usage_meter_message", "AFTER INSERT", USER, "parley_usage_on_message()"),
    (
        "llm_turns",
        "usage_meter_turn",
        "AFTER INSERT OR UPDATE OF status",
        "",
        "parley_usage_on_turn()",
    ),
    ("bots", "usage_admit_bot", "BEFORE INSERT", "", "parley_usage_on_count('bots')"),
    ("kb_sources", "usage_admit_source", "BEFORE INSERT", "", "parley_usage_on_count('sources')"),
    (
        "kb_sources",
        "usage_storage",
        "BEFORE INSERT OR UPDATE OF size_bytes OR DELETE",
        "",
        "parley_usage_on_storage()",
    ),
    (
        "inbound_events",
        "usage_meter_inbound",
        "AFTER INSERT",
        "",
        "parley_usage_on_call('webhook_events')",
    ),
    (
        "webhook_attempts",
        "usage_meter_attempt",
        "AFTER INSERT",
        "",
        "parley_usage_on_call('integration_calls')",
    ),
)


def _created_at(name: str = "created_at") -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("tenants", sa.Column("quota_message", sa.Text(), nullable=True))
    op.create_table(
        "plans",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("limits", postgresql.JSONB(), server_default="{}", nullable=False),
        _created_at("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.create_table(
        "usage_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        _created_at("occurred_at"),
        sa.CheckConstraint(
            "type IN ('llm_tokens', 'conversations_started', 'messages_processed', "
            "'webhook_events', 'integration_calls', 'storage_bytes')",
            name=op.f("ck_usage_events_type"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_usage_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_usage_events")),
    )
    op.create_index(
        "uq_usage_events_source", "usage_events", ["tenant_id", "type", "source"], unique=True
    )
    op.create_index("ix_usage_events_occurred", "usage_events", ["tenant_id", "occurred_at"])
    op.create_table(
        "usage_counters",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("used", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        _created_at("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_usage_counters_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "metric", "period", name=op.f("pk_usage_counters")),
    )
    op.create_table(
        "plan_overages",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("extra", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.Uuid(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "metric IN ('monthly_conversations', 'monthly_tokens', 'messages_per_minute', "
            "'bots', 'sources', 'storage_bytes')",
            name=op.f("ck_plan_overages_metric"),
        ),
        sa.CheckConstraint("extra > 0", name=op.f("ck_plan_overages_extra")),
        sa.ForeignKeyConstraint(
            ["granted_by"],
            ["users.id"],
            name=op.f("fk_plan_overages_granted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_plan_overages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_plan_overages")),
    )
    op.create_index(
        "ix_plan_overages_metric", "plan_overages", ["tenant_id", "metric", "expires_at"]
    )
    op.create_table(
        "visitor_budgets",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("messages_per_day", sa.Integer(), nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger(), nullable=True),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "messages_per_day IS NULL OR messages_per_day > 0",
            name=op.f("ck_visitor_budgets_messages"),
        ),
        sa.CheckConstraint(
            "tokens_per_day IS NULL OR tokens_per_day > 0", name=op.f("ck_visitor_budgets_tokens")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "channel_id"],
            ["channels.tenant_id", "channels.id"],
            name=op.f("fk_visitor_budgets_tenant_id_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_visitor_budgets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "channel_id", name=op.f("pk_visitor_budgets")),
    )
    op.create_table(
        "visitor_usage",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("messages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "visitor_id"],
            ["visitors.tenant_id", "visitors.id"],
            name=op.f("fk_visitor_usage_tenant_id_visitor_id_visitors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_visitor_usage_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "visitor_id", "day", name=op.f("pk_visitor_usage")),
    )
    for table in TENANT_TABLES:
        enable_tenant_rls(table)
        grant("SELECT, INSERT, UPDATE, DELETE", table)
    grant("SELECT, INSERT, UPDATE, DELETE", "plans")
    apply_sql("functions/parley_plan_limit.sql")
    apply_sql("functions/parley_quota_refuse.sql")
    apply_sql("functions/parley_usage_meter.sql")
    apply_sql("functions/parley_plan_admit.sql")
    apply_sql("functions/parley_plan_rate.sql")
    apply_sql("functions/parley_usage_on_conversation.sql")
    apply_sql("functions/parley_usage_on_message.sql")
    apply_sql("functions/parley_usage_on_turn.sql")
    apply_sql("functions/parley_usage_on_count.sql")
    apply_sql("functions/parley_usage_on_storage.sql")
    apply_sql("functions/parley_usage_on_call.sql")
    for fn in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")
    apply_sql("triggers/usage_admit_conversation.sql")
    apply_sql("triggers/usage_meter_conversation.sql")
    apply_sql("triggers/usage_admit_message.sql")
    apply_sql("triggers/usage_meter_message.sql")
    apply_sql("triggers/usage_meter_turn.sql")
    apply_sql("triggers/usage_admit_bot.sql")
    apply_sql("triggers/usage_admit_source.sql")
    apply_sql("triggers/usage_storage.sql")
    apply_sql("triggers/usage_meter_inbound.sql")
    apply_sql("triggers/usage_meter_attempt.sql")


def downgrade() -> None:
    for table, name, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for fn in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {fn}")
    for table in reversed(TENANT_TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
    op.drop_table("plans")
    op.drop_column("tenants", "quota_message")
