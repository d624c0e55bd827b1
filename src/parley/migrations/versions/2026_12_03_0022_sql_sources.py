"""SQL source files (issue 16, decision 0029): every function and trigger the product runs is
applied from its file under `src/parley/sql/`, and recorded in `parley_sql_sources`.

The definitions are the ones migrations 0001-0021 left (the files were taken from them
verbatim), so this changes no behaviour; from now on a file is the only definition, and a
migration that changes one re-applies it with `apply_sql`.

Revision ID: 0022_sql_sources
Revises: 0021_voice
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import execute_script
from parley.migrations.sqlsource import CREATE_SOURCES_TABLE, SOURCES_TABLE, apply_sql

revision: str = "0022_sql_sources"
down_revision: str | None = "0021_voice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_vectors() -> bool:
    found = op.get_bind().execute(sa.text("SELECT to_regclass('kb_vectors') IS NOT NULL"))
    return bool(found.scalar())


def upgrade() -> None:
    execute_script(CREATE_SOURCES_TABLE)
    op.execute(f"REVOKE ALL ON {SOURCES_TABLE} FROM PUBLIC")
    # Functions first, then the triggers that call them.
    apply_sql("functions/fn_pgqueuer_changed.sql")
    apply_sql("functions/parley_api_key_tenant.sql")
    apply_sql("functions/parley_channel_tenant.sql")
    apply_sql("functions/parley_chat_finish.sql")
    apply_sql("functions/parley_chat_history.sql")
    apply_sql("functions/parley_chat_send.sql")
    apply_sql("functions/parley_conversation_handling.sql")
    apply_sql("functions/parley_enqueue_event.sql")
    apply_sql("functions/parley_inbound_event_counts.sql")
    apply_sql("functions/parley_inbound_receive.sql")
    apply_sql("functions/parley_inbox_after_reply.sql")
    # parley_inbox_search.sql was applied here until migration 0031 dropped the function and
    # its file; between 0022 and 0031 it keeps the definition 0019 gave it (the same text).
    apply_sql("functions/parley_inbox_user_message.sql")
    apply_sql("functions/parley_invitation_tenant.sql")
    apply_sql("functions/parley_job_fair_priority.sql")
    apply_sql("functions/parley_kb_bm25.sql")
    apply_sql("functions/parley_kb_keyword_leg.sql")
    apply_sql("functions/parley_kb_passages.sql")
    apply_sql("functions/parley_kb_search.sql")
    apply_sql("functions/parley_message_searchable.sql")
    apply_sql("functions/parley_private_row_count.sql")
    apply_sql("functions/parley_search_doc.sql")
    apply_sql("functions/parley_usage_check_request.sql")
    apply_sql("functions/parley_webhook_dead_letters.sql")
    apply_sql("functions/parley_widget_live.sql")
    apply_sql("functions/parley_widget_tenant.sql")
    if _has_vectors():  # the vector leg exists only where pgvector does (migration 0012)
        apply_sql("functions/parley_kb_nearest.sql")
        apply_sql("functions/parley_kb_vector_leg.sql")
    apply_sql("triggers/conversations_handling.sql")
    apply_sql("triggers/messages_searchable.sql")
    apply_sql("triggers/parley_job_fair_priority.sql")
    apply_sql("triggers/tg_pgqueuer_changed.sql")


def downgrade() -> None:
    # The definitions are 0021's own; only the record goes.
    op.execute(f"DROP TABLE IF EXISTS {SOURCES_TABLE}")
