"""A webhook channel's inbound secret rotates with a grace period: the previous secret keeps
verifying deliveries until it expires (issue 18, docs/channels.md "Rotating the secret").

Revision ID: 0027_channel_secret_rotation
Revises: 0026_exports_and_slots
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_channel_secret_rotation"
down_revision: str | None = "0026_exports_and_slots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # `channels` already has RLS with FORCE (0009); new columns are covered by its policy.
    op.add_column("channels", sa.Column("previous_secret_encrypted", sa.Text(), nullable=True))
    op.add_column(
        "channels",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("channels", "previous_secret_expires_at")
    op.drop_column("channels", "previous_secret_encrypted")
