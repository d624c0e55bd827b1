"""Staff search reads one document per conversation; the tag filter reads a btree (decision 0039).

- `conversation_search` replaces `message_search`: a conversation's words in one tsvector (in
  parts of about 8 KB of text), kept by `parley_message_searchable` on every stored message.
  A page of search results is then at most a page of rows, and `parley_inbox_search_page`
  picks, from the planner's estimate of how common the words are, between reading the newest
  documents in order (common words) and the GIN index (rare ones).
- `conversation_tags` mirrors `conversations.tags` (trigger `parley_conversation_tags_sync`), a
  tenant table under RLS with a btree `(tenant_id, tag, conversation_id)`: under RLS the
  array's `@>` is not leakproof, so `ix_conversations_tags` (GIN) never served the app role;
  it goes.
- The unused `parley_inbox_search(text)` (superseded by the paged search in 0023) goes.

Revision ID: 0031_search_by_conversation
Revises: 0030_conversation_lock_order
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import disable_tenant_rls, enable_tenant_rls, execute_script, grant
from parley.migrations.sqlsource import apply_sql, forget_sql

revision: str = "0031_search_by_conversation"
down_revision: str | None = "0030_conversation_lock_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PART_BYTES = 8192  # the budget of one part, as in parley_message_searchable.sql
OLD_SEARCH = "FUNCTION parley_inbox_search(text)"
_FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE conversation_search (
            tenant_id uuid NOT NULL,
            conversation_id uuid NOT NULL,
            part integer NOT NULL,
            bytes integer NOT NULL,
            doc tsvector NOT NULL,
            CONSTRAINT pk_conversation_search PRIMARY KEY (tenant_id, conversation_id, part),
            CONSTRAINT fk_conversation_search_conversation FOREIGN KEY (tenant_id, conversation_id)
                REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
        )
        """
    )
    op.execute("REVOKE ALL ON conversation_search FROM PUBLIC")
    # Existing messages, in id order, cut into parts by their running size.
    op.execute(
        f"""
        INSERT INTO conversation_search (tenant_id, conversation_id, part, bytes, doc)
        SELECT tenant_id, conversation_id, part, sum(bytes)::integer,
               parley_search_doc(tenant_id, string_agg(content, E'\\n' ORDER BY id))
        FROM (SELECT tenant_id, conversation_id, id, content, octet_length(content) AS bytes,
                     (coalesce(sum(octet_length(content)) OVER (
                          PARTITION BY tenant_id, conversation_id ORDER BY id
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                      / {PART_BYTES})::integer AS part
              FROM messages) m
        GROUP BY tenant_id, conversation_id, part
        """
    )
    op.execute("CREATE INDEX ix_conversation_search_doc ON conversation_search USING gin (doc)")
    apply_sql("functions/parley_message_searchable.sql")
    apply_sql("functions/parley_inbox_search_page.sql")
    op.execute(f"DROP {OLD_SEARCH}")
    forget_sql("functions/parley_inbox_search.sql")
    op.drop_table("message_search")

    op.create_table(
        "conversation_tags",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "conversation_id"],
            ["conversations.tenant_id", "conversations.id"],
            name=op.f("fk_conversation_tags_tenant_id_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_conversation_tags_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "tag", "conversation_id", name=op.f("pk_conversation_tags")
        ),
    )
    enable_tenant_rls("conversation_tags")
    grant("SELECT, INSERT, UPDATE, DELETE", "conversation_tags")
    op.execute(
        "INSERT INTO conversation_tags (tenant_id, tag, conversation_id) "
        "SELECT DISTINCT tenant_id, t, id FROM conversations, unnest(tags) t "
        "WHERE t IS NOT NULL"
    )
    apply_sql("functions/parley_conversation_tags_sync.sql")
    apply_sql("triggers/conversations_tags_insert.sql")
    apply_sql("triggers/conversations_tags_update.sql")
    op.drop_index("ix_conversations_tags", table_name="conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_tags", "conversations", ["tags"], postgresql_using="gin")
    op.execute("DROP TRIGGER conversations_tags_update ON conversations")
    op.execute("DROP TRIGGER conversations_tags_insert ON conversations")
    op.execute("DROP FUNCTION parley_conversation_tags_sync()")
    for name in (
        "functions/parley_conversation_tags_sync.sql",
        "triggers/conversations_tags_insert.sql",
        "triggers/conversations_tags_update.sql",
    ):
        forget_sql(name)
    disable_tenant_rls("conversation_tags")
    op.drop_table("conversation_tags")
    op.execute(
        """
        CREATE TABLE message_search (
            tenant_id uuid NOT NULL,
            message_id uuid NOT NULL,
            conversation_id uuid NOT NULL,
            doc tsvector NOT NULL,
            CONSTRAINT pk_message_search PRIMARY KEY (tenant_id, message_id),
            CONSTRAINT fk_message_search_message FOREIGN KEY (tenant_id, message_id)
                REFERENCES messages (tenant_id, id) ON DELETE CASCADE
        )
        """
    )
    op.execute("REVOKE ALL ON message_search FROM PUBLIC")
    op.execute(
        "INSERT INTO message_search (tenant_id, message_id, conversation_id, doc) "
        "SELECT tenant_id, id, conversation_id, parley_search_doc(tenant_id, content) "
        "FROM messages"
    )
    op.execute("CREATE INDEX ix_message_search_doc ON message_search USING gin (doc)")
    op.create_index(
        "ix_message_search_conversation", "message_search", ["tenant_id", "conversation_id"]
    )
    # 0030's definitions, frozen (no function text inline after 0022: decision 0029).
    execute_script((_FROZEN / "0031_down_message_search.sql").read_text())
    op.execute(f"REVOKE ALL ON {OLD_SEARCH} FROM PUBLIC")
    grant("EXECUTE", OLD_SEARCH)
    op.drop_table("conversation_search")
