"""The analytics metrics read (issue 19, benchmark P14): the workspace's pending marks are an
index-only scan of `(tenant_id, day)` with `marked_at` carried in the index, so the read's
`pending_days` / `pending_since` and the roll-up job's "take the oldest marked days" grow with
the marks waiting, never with the history of marks (a workspace's marks were found by the
primary key's tenant prefix and every row visited). The roll-up tables need no new index:
their primary keys start with `(tenant_id, day)`. Decision 0034, docs/analytics.md.

Revision ID: 0029_analytics_read
Revises: 0028_quality_gate
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0029_analytics_read"
down_revision: str | None = "0028_quality_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_analytics_dirty_day",
        "analytics_dirty",
        ["tenant_id", "day"],
        postgresql_include=["marked_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_dirty_day", table_name="analytics_dirty")
