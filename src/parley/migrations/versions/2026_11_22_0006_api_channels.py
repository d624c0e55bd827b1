"""Channels of type `api` (the OpenAI-compatible endpoint).

Revision ID: 0006_api_channels
Revises: 0005_conversation_summary
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_api_channels"
down_revision: str | None = "0005_conversation_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_channels_type"), "channels", type_="check")
    op.create_check_constraint(
        op.f("ck_channels_type"), "channels", "type IN ('widget', 'telegram', 'webhook', 'api')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM channels WHERE type = 'api'")
    op.drop_constraint(op.f("ck_channels_type"), "channels", type_="check")
    op.create_check_constraint(
        op.f("ck_channels_type"), "channels", "type IN ('widget', 'telegram', 'webhook')"
    )
