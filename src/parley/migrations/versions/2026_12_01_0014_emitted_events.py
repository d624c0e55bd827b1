"""`emitted_events`: one row per event turned into webhook deliveries and rule actions, in the
same transaction, so the job that emits `message.created` for a stored message does it exactly
once even when it runs again after a crash (it used to look for existing deliveries, which a
workspace with rules but no endpoint does not have).

Revision ID: 0014_emitted_events
Revises: 0013_quiet_async_send
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, grant

revision: str = "0014_emitted_events"
down_revision: str | None = "0013_quiet_async_send"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "emitted_events",
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_emitted_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_emitted_events")),
    )
    enable_tenant_rls("emitted_events")
    grant("SELECT, INSERT, UPDATE, DELETE", "emitted_events")


def downgrade() -> None:
    disable_tenant_rls("emitted_events")
    op.drop_table("emitted_events")
