"""Rolling conversation summary.

Revision ID: 0005_conversation_summary
Revises: 0004_provider_credentials
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_conversation_summary"
down_revision: str | None = "0004_provider_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("summary", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("summary_upto", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "summary_upto")
    op.drop_column("conversations", "summary")
