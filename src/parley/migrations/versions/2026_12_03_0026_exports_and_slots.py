"""Issue 20: workspace exports through the API (one row per requested export), and a partial
index for the webhook slot hand-over (the endpoint's deliveries waiting for a slot).

Revision ID: 0026_exports_and_slots
Revises: 0025_plans
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0026_exports_and_slots"
down_revision: str | None = "0025_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_exports",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("storage_key", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
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
            "status IN ('queued', 'running', 'ready', 'failed')",
            name=op.f("ck_workspace_exports_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_workspace_exports_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_workspace_exports")),
    )
    op.create_index(
        "ix_workspace_exports_created", "workspace_exports", ["tenant_id", "created_at"]
    )
    enable_tenant_rls("workspace_exports")
    grant("SELECT, INSERT, UPDATE, DELETE", "workspace_exports")
    op.create_index(
        "ix_webhook_deliveries_waiting",
        "webhook_deliveries",
        ["tenant_id", "endpoint_id", "id"],
        postgresql_where=sa.text("status = 'pending' AND attempt_count = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_waiting", table_name="webhook_deliveries")
    disable_tenant_rls("workspace_exports")
    op.drop_index("ix_workspace_exports_created", table_name="workspace_exports")
    op.drop_table("workspace_exports")
