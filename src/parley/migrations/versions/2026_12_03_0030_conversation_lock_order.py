"""Writers of a conversation lock it first, with FOR NO KEY UPDATE (decision 0038).

The resilience harness (R1) found deadlocks between concurrent writers of one conversation:
two visitor sends each held FOR KEY SHARE on the conversation (their message's foreign key)
and each asked for FOR UPDATE on it (the handoff check); a finishing turn held the
conversation and asked for FOR KEY SHARE on the visitor that an inbound channel event held
FOR UPDATE. Now `parley_chat_send` and `parley_chat_finish` lock the conversation before their
inserts, and the handoff check and the operator reply take FOR NO KEY UPDATE, which a foreign
key check never waits for.

Revision ID: 0030_conversation_lock_order
Revises: 0029_analytics_read
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.migrations.sqlsource import apply_sql

revision: str = "0030_conversation_lock_order"
down_revision: str | None = "0029_analytics_read"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    apply_sql("functions/parley_chat_send.sql")
    apply_sql("functions/parley_chat_finish.sql")
    apply_sql("functions/parley_inbox_user_message.sql")
    apply_sql("functions/parley_operator_reply.sql")


def downgrade() -> None:
    """Nothing to undo: the functions keep their signatures and results; only the lock modes
    and order changed, and the earlier migrations' texts hold the same behaviour with the
    deadlock (they are not re-applied on the way down)."""
