"""Knowledge jobs show the stable code of their failure (`error_code`), beside the message: a
job stopped by its time budget reads `ingest_time_budget_exceeded`, a refused URL `unsafe_url`.

Revision ID: 0017_ingest_error_codes
Revises: 0016_search_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_ingest_error_codes"
down_revision: str | None = "0016_search_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("kb_jobs", sa.Column("error_code", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("kb_jobs", "error_code")
