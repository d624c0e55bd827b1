"""The inbox's two hot paths in fewer steps (issue 17, decision 0032).

- Search: `parley_inbox_search_page` (src/parley/sql/functions/) returns one bounded page of
  candidate conversation ids, newest first, planned with the actual words; the btree
  `ix_message_search_conversation` lets a common word stop after a page instead of collecting
  every match.
- Operator reply: `parley_operator_reply` (src/parley/sql/functions/) does the whole reply in
  one statement (claim, message, assignment, audit entry, webhook and delivery jobs).
- Presence per stream: `memberships.inbox_connections` counts a member's open staff streams,
  so closing one tab of two keeps them present (`conversations.presence`).

Revision ID: 0023_inbox_paths
Revises: 0022_sql_sources
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import grant
from parley.migrations.sqlsource import apply_sql

revision: str = "0023_inbox_paths"
down_revision: str | None = "0022_sql_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_PAGE = "FUNCTION parley_inbox_search_page(text, uuid, integer)"
REPLY = (
    "FUNCTION parley_operator_reply(uuid, uuid, text, text, text, uuid, uuid, uuid, uuid, text, "
    "text, interval, interval)"
)


def upgrade() -> None:
    op.add_column(
        "memberships",
        sa.Column("inbox_connections", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_message_search_conversation", "message_search", ["tenant_id", "conversation_id"]
    )
    apply_sql("functions/parley_inbox_search_page.sql")
    op.execute(f"REVOKE ALL ON {SEARCH_PAGE} FROM PUBLIC")
    grant("EXECUTE", SEARCH_PAGE)
    apply_sql("functions/parley_operator_reply.sql")
    op.execute(f"REVOKE ALL ON {REPLY} FROM PUBLIC")
    grant("EXECUTE", REPLY)


def downgrade() -> None:
    op.execute(f"DROP {REPLY}")
    op.execute(f"DROP {SEARCH_PAGE}")
    op.drop_index("ix_message_search_conversation", table_name="message_search")
    op.drop_column("memberships", "inbox_connections")
