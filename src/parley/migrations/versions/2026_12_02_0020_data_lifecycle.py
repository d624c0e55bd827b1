"""Data lifecycle: per-workspace retention, scheduled workspace deletion, and fair job order.

- `tenants` gains the days it keeps conversations, files and logs (NULL: the platform
  default from settings) and the deletion schedule (`deletion_due_at`: the grace period's
  end, NULL when none is pending).
- Fairness between workspaces in the job queue (P15, decision 0023): pgqueuer runs jobs by
  `priority DESC, id ASC`. A trigger on `pgqueuer` records each job's workspace (from the
  `tenant_id` our code puts in every tenant job's payload) and lowers the priority of a new
  job by one step per 10 jobs that workspace already has queued (counted up to 100 through a
  partial index, so the cost per enqueue is bounded: at most 10 steps down). A workspace's
  first job therefore runs ahead of another's burst, whichever path enqueued it (Python or
  the SQL send/ingress functions). A job put back in the queue by a retry is re-ranked the same way.

Revision ID: 0020_data_lifecycle
Revises: 0019_inbox
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import CURRENT_TENANT, execute_script, grant

revision: str = "0020_data_lifecycle"
down_revision: str | None = "0019_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAIR_PRIORITY = """
CREATE FUNCTION parley_job_fair_priority() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_backlog integer;
BEGIN
    IF NEW.status <> 'queued' OR (TG_OP = 'UPDATE' AND OLD.status = 'queued') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- Our payloads are JSON objects; a job without a workspace keeps its priority.
        IF NEW.payload IS NULL OR get_byte(NEW.payload, 0) <> 123 THEN
            RETURN NEW;
        END IF;
        NEW.fair_tenant := (convert_from(NEW.payload, 'UTF8')::jsonb ->> 'tenant_id')::uuid;
    END IF;
    IF NEW.fair_tenant IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT count(*) INTO v_backlog FROM (
        SELECT 1 FROM pgqueuer
        WHERE fair_tenant = NEW.fair_tenant AND status = 'queued' AND id <> NEW.id
        LIMIT 100
    ) AS queued;
    NEW.priority := LEAST(NEW.priority, 0) - v_backlog / 10;
    RETURN NEW;
END
$fn$;
"""

# A tenant table the app role may not read (the inbox's private search copy, decision 0022)
# still has to be counted when a deleted workspace is verified: this counts the bound
# workspace's rows in such a table, and refuses any table that has a policy (those the app
# role counts itself) or no `tenant_id`.
PRIVATE_ROW_COUNT = f"""
CREATE FUNCTION parley_private_row_count(p_table text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    v_tenant uuid := {CURRENT_TENANT};
    v_n bigint;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no workspace bound' USING ERRCODE = 'PA403';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                           AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relname = p_table AND c.relkind IN ('r', 'p')
          AND NOT c.relrowsecurity
    ) THEN
        RAISE EXCEPTION 'not a private tenant table: %', p_table USING ERRCODE = 'PA404';
    END IF;
    EXECUTE format('SELECT count(*) FROM public.%I WHERE tenant_id = $1', p_table)
    INTO v_n USING v_tenant;
    RETURN v_n;
END
$fn$;
REVOKE ALL ON FUNCTION parley_private_row_count(text) FROM PUBLIC;
"""


def upgrade() -> None:
    op.add_column("tenants", sa.Column("retention_conversations_days", sa.Integer()))
    op.add_column("tenants", sa.Column("retention_files_days", sa.Integer()))
    op.add_column("tenants", sa.Column("retention_logs_days", sa.Integer()))
    op.add_column(
        "tenants", sa.Column("deletion_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "tenants", sa.Column("deletion_due_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("tenants", sa.Column("deletion_requested_by", sa.Uuid(), nullable=True))
    for column in ("conversations", "files", "logs"):
        op.create_check_constraint(
            op.f(f"ck_tenants_retention_{column}"),
            "tenants",
            f"retention_{column}_days IS NULL OR retention_{column}_days BETWEEN 1 AND 36500",
        )

    op.execute("ALTER TABLE pgqueuer ADD COLUMN fair_tenant uuid")
    op.execute(
        "CREATE INDEX pgqueuer_tenant_queued ON pgqueuer (fair_tenant) "
        "WHERE status = 'queued' AND fair_tenant IS NOT NULL"
    )
    op.execute(FAIR_PRIORITY)
    op.execute(
        "CREATE TRIGGER parley_job_fair_priority BEFORE INSERT OR UPDATE OF status ON pgqueuer "
        "FOR EACH ROW EXECUTE FUNCTION parley_job_fair_priority()"
    )
    execute_script(PRIVATE_ROW_COUNT)
    grant("EXECUTE", "FUNCTION parley_private_row_count(text)")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS parley_private_row_count(text)")
    op.execute("DROP TRIGGER IF EXISTS parley_job_fair_priority ON pgqueuer")
    op.execute("DROP FUNCTION IF EXISTS parley_job_fair_priority()")
    op.execute("DROP INDEX IF EXISTS pgqueuer_tenant_queued")
    op.execute("ALTER TABLE pgqueuer DROP COLUMN IF EXISTS fair_tenant")
    for column in ("conversations", "files", "logs"):
        op.drop_constraint(op.f(f"ck_tenants_retention_{column}"), "tenants", type_="check")
    for column in (
        "deletion_requested_by",
        "deletion_due_at",
        "deletion_requested_at",
        "retention_logs_days",
        "retention_files_days",
        "retention_conversations_days",
    ):
        op.drop_column("tenants", column)
