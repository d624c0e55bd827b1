"""Conversations for staff and human handoff (issue 17; docs/inbox.md, decision 0021).

- `conversations` gains who handles it (`handoff_status`: bot → waiting → assigned →
  resolved, or back to bot), the assignee, the fallback streak the handoff rules read, the
  last feedback, and the service figures (first bot reply, first human reply after handoff,
  resolution) as stored columns.
- `conversation_events` is the timeline of status and assignment changes, written by one
  trigger on `conversations`, whoever changes the row (an operator, the send path, a rule).
- `conversation_notes`: internal notes. `messages.author_id`: the person behind an `operator`
  message. `visitors` keeps the channel identity, an email left and the page URL.
- The `agent` role. Staff presence (`memberships.inbox_seen_at`) and the workspace's inbox
  settings (`tenants.inbox_settings`: hours, offline message).
- Full-text search over messages: `message_search` (a trigger-kept tsvector per message, GIN)
  read through `parley_inbox_search` (see `SEARCH` below for why it is not a policy table).
- `parley_chat_send` no longer starts a turn while a person holds the conversation, and applies
  the bot's handoff phrases to the message it stores (`parley_inbox_user_message`, which the
  channel path calls too); `parley_chat_finish` counts fallbacks, applies the N-fallbacks rule
  and records the time to the first bot reply.

Revision ID: 0019_inbox
Revises: 0016_search_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

from parley.migrations.rls import CURRENT_TENANT, enable_tenant_rls, execute_script, grant

revision: str = "0019_inbox"
down_revision: str | None = "0018_widget_token_liveness"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEND_PATH = "parley.migrations.versions.2026_12_01_0010_send_path"
_LIVENESS = "parley.migrations.versions.2026_12_02_0018_widget_token_liveness"

# A UUIDv7 made in SQL (the timeline rows the trigger writes): Unix milliseconds, then random.
UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) "
    "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)

USER_MESSAGE = """
CREATE FUNCTION parley_inbox_user_message(
    p_tenant uuid, p_conversation uuid, p_content text, p_config jsonb
) RETURNS text
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Who answers the message just stored: 'bot', 'waiting' or 'assigned' (a person holds the
-- conversation: no turn), or 'requested' (this message matched a handoff phrase of the bot and
-- moved the conversation to the queue). A message in a resolved conversation reopens it to
-- the bot. The caller has bound the tenant.
DECLARE
    v_status text;
BEGIN
    SELECT handoff_status INTO v_status FROM conversations
    WHERE tenant_id = p_tenant AND id = p_conversation FOR UPDATE;
    IF v_status IN ('waiting', 'assigned') THEN
        RETURN v_status;
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements_text(
                   coalesce(p_config #> '{handoff,keywords}', '[]'::jsonb)) k
               WHERE length(btrim(k)) > 0
                 AND position(lower(btrim(k)) IN lower(p_content)) > 0) THEN
        PERFORM set_config('parley.handoff_reason', 'phrase', true);
        UPDATE conversations SET handoff_status = 'waiting'
        WHERE tenant_id = p_tenant AND id = p_conversation;
        RETURN 'requested';
    END IF;
    IF v_status = 'resolved' THEN
        PERFORM set_config('parley.handoff_reason', 'visitor_returned', true);
        UPDATE conversations SET handoff_status = 'bot'
        WHERE tenant_id = p_tenant AND id = p_conversation;
    END IF;
    RETURN 'bot';
END
$fn$;
"""

HANDLING_TRIGGER = f"""
CREATE FUNCTION parley_conversation_handling() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- One place for what a change of handler implies, whoever makes it: the clocks of the service
-- figures, open/closed, and a timeline row. The actor and reason come from the transaction
-- (`parley.actor`, `parley.handoff_reason`), set by whoever changes the row.
DECLARE
    v_actor text := nullif(current_setting('parley.actor', true), '');
    v_reason text := nullif(current_setting('parley.handoff_reason', true), '');
BEGIN
    IF NEW.handoff_status IS NOT DISTINCT FROM OLD.handoff_status
       AND NEW.assignee_id IS NOT DISTINCT FROM OLD.assignee_id THEN
        RETURN NEW;
    END IF;
    IF NEW.handoff_status IN ('bot', 'waiting') THEN
        NEW.assignee_id := NULL;
    END IF;
    IF NEW.handoff_status = 'waiting' AND OLD.handoff_status IN ('bot', 'resolved') THEN
        NEW.handoff_requested_at := now();
    END IF;
    IF NEW.handoff_status = 'resolved' AND OLD.handoff_status <> 'resolved' THEN
        NEW.status := 'closed';
        NEW.resolved_at := now();
        NEW.resolution_ms := (extract(epoch FROM now() - NEW.created_at) * 1000)::integer;
    ELSIF NEW.handoff_status <> 'resolved' AND OLD.handoff_status = 'resolved' THEN
        NEW.status := 'open';
        NEW.resolved_at := NULL;
    END IF;
    IF NEW.handoff_status = 'bot' THEN
        NEW.fallback_streak := 0;
    END IF;
    INSERT INTO conversation_events (tenant_id, id, conversation_id, kind, actor,
                                     from_status, to_status, assignee_id, reason, created_at)
    VALUES (NEW.tenant_id, {UUID7}, NEW.id,
            CASE WHEN NEW.handoff_status IS DISTINCT FROM OLD.handoff_status
                 THEN 'status' ELSE 'assignee' END,
            coalesce(v_actor, 'system'), OLD.handoff_status, NEW.handoff_status,
            NEW.assignee_id, v_reason, now());
    RETURN NEW;
END
$fn$;
CREATE TRIGGER conversations_handling BEFORE UPDATE OF handoff_status, assignee_id
ON conversations FOR EACH ROW EXECUTE FUNCTION parley_conversation_handling();
"""

AFTER_FALLBACK = """
CREATE FUNCTION parley_inbox_after_reply(
    p_tenant uuid, p_conversation uuid, p_version uuid, p_fallback boolean, p_now timestamptz
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- After a bot reply: the fallback counters, the time to the first bot reply, and the rule
-- "N fallbacks in a row" (`handoff.after_fallbacks`, or 1 with `handoff.on_no_answer`).
DECLARE
    v_streak integer;
    v_status text;
    v_limit integer;
BEGIN
    UPDATE conversations
    SET fallback_streak = CASE WHEN p_fallback THEN fallback_streak + 1 ELSE 0 END,
        fallback_count = fallback_count + CASE WHEN p_fallback THEN 1 ELSE 0 END,
        first_bot_reply_ms = coalesce(first_bot_reply_ms,
            greatest(0, (extract(epoch FROM p_now - created_at) * 1000)::integer))
    WHERE tenant_id = p_tenant AND id = p_conversation
    RETURNING fallback_streak, handoff_status INTO v_streak, v_status;
    IF NOT p_fallback OR v_status IS DISTINCT FROM 'bot' THEN
        RETURN;
    END IF;
    SELECT coalesce((config #>> '{handoff,after_fallbacks}')::integer,
                    CASE WHEN (config #>> '{handoff,on_no_answer}')::boolean THEN 1 END)
    INTO v_limit
    FROM bot_versions WHERE tenant_id = p_tenant AND id = p_version;
    IF v_limit IS NOT NULL AND v_limit > 0 AND v_streak >= v_limit THEN
        PERFORM set_config('parley.handoff_reason', 'fallbacks', true);
        UPDATE conversations SET handoff_status = 'waiting'
        WHERE tenant_id = p_tenant AND id = p_conversation;
    END IF;
END
$fn$;
"""

# parley_chat_send: after the user message is stored, who answers it.
_SEND_ANCHOR = """    IF p_job IS NOT NULL THEN
        -- 3a."""
_SEND_HELD = """    -- 2b. A person holds the conversation, or this message asked for one (0019):
    -- no turn. The key completes now with no reply; the caller announces a new handoff.
    v_handling := CASE WHEN v_outcome = 'new'
        THEN parley_inbox_user_message(p_tenant, p_conversation, p_content, v_version.config)
        ELSE (SELECT handoff_status FROM conversations
              WHERE tenant_id = p_tenant AND id = p_conversation) END;
    IF v_handling IN ('waiting', 'assigned', 'requested') THEN
        UPDATE idempotency_keys
        SET state = 'completed',
            response = jsonb_build_object(
                'message', jsonb_build_object(
                    'id', v_message.id, 'conversation_id', v_message.conversation_id,
                    'role', v_message.role, 'content', v_message.content,
                    'citations', v_message.citations, 'created_at', v_message.created_at),
                'reply', NULL, 'handling', v_handling)
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;
        RETURN jsonb_build_object('outcome', 'held', 'handling', v_handling,
                                  'operation_id', p_operation, 'message', to_jsonb(v_message),
                                  'config', v_version.config);
    END IF;

"""
_SEND_DECLARE = "    v_credential jsonb;\n"

_FINISH_ANCHOR = """    UPDATE idempotency_keys SET state = 'completed', response = p_response"""
_FINISH_INBOX = """    UPDATE llm_turns SET fallback = p_fallback
    WHERE tenant_id = p_tenant AND operation_id = p_operation;
    PERFORM parley_inbox_after_reply(p_tenant, p_conversation, p_version, p_fallback, p_now);
"""


def _send_0018() -> str:
    """The send function as 0018 left it (the widget token's liveness check)."""
    liveness = importlib.import_module(_LIVENESS)
    return str(liveness._send()).replace(
        "CREATE FUNCTION parley_chat_send(", "CREATE OR REPLACE FUNCTION parley_chat_send(", 1
    )


def _finish_0010() -> str:
    send_path = importlib.import_module(_SEND_PATH)
    return str(send_path.FINISH).replace(
        "CREATE FUNCTION parley_chat_finish(", "CREATE OR REPLACE FUNCTION parley_chat_finish("
    )


def _send_0019() -> str:
    body = _send_0018()
    if _SEND_ANCHOR not in body or _SEND_DECLARE not in body:
        raise RuntimeError("parley_chat_send changed shape; update 0019")
    body = body.replace(_SEND_DECLARE, _SEND_DECLARE + "    v_handling text;\n", 1)
    return body.replace(_SEND_ANCHOR, _SEND_HELD + _SEND_ANCHOR, 1)


def _finish_0019() -> str:
    body = _finish_0010()
    if _FINISH_ANCHOR not in body:
        raise RuntimeError("parley_chat_finish changed shape; update 0019")
    return body.replace(_FINISH_ANCHOR, _FINISH_INBOX + _FINISH_ANCHOR, 1)


# Full-text search. Under row-level security PostgreSQL evaluates the policy before any
# qual that is not leakproof, and `@@` is not: a GIN index on `messages` cannot be used by
# the app role, so every search would compute a tsvector per message of the workspace. The
# searchable copy lives in `message_search`, which has no policy and no grant to the app role:
# a trigger fills it, and `parley_inbox_search` (SECURITY DEFINER) reads it for the workspace
# the transaction is bound to (`app.tenant_id`, the setting the policies read), returning
# conversation ids only. The workspace's own lexeme is in every document, so one GIN index
# answers "this workspace AND these words" inside the index. See decision 0022.
SEARCH = f"""
CREATE TABLE message_search (
    tenant_id uuid NOT NULL,
    message_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    doc tsvector NOT NULL,
    CONSTRAINT pk_message_search PRIMARY KEY (tenant_id, message_id),
    CONSTRAINT fk_message_search_message FOREIGN KEY (tenant_id, message_id)
        REFERENCES messages (tenant_id, id) ON DELETE CASCADE
);
REVOKE ALL ON message_search FROM PUBLIC;
CREATE FUNCTION parley_search_doc(p_tenant uuid, p_content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT to_tsvector('simple'::regconfig, p_content)
           || ('t' || replace(p_tenant::text, '-', ''))::tsvector
$fn$;
CREATE FUNCTION parley_message_searchable() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
BEGIN
    INSERT INTO message_search (tenant_id, message_id, conversation_id, doc)
    VALUES (NEW.tenant_id, NEW.id, NEW.conversation_id,
            parley_search_doc(NEW.tenant_id, NEW.content));
    RETURN NULL;
END
$fn$;
CREATE TRIGGER messages_searchable AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION parley_message_searchable();
INSERT INTO message_search (tenant_id, message_id, conversation_id, doc)
SELECT tenant_id, id, conversation_id, parley_search_doc(tenant_id, content) FROM messages;
CREATE INDEX ix_message_search_doc ON message_search USING gin (doc);
CREATE FUNCTION parley_inbox_search(p_query text) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
    SELECT DISTINCT s.conversation_id FROM message_search s
    WHERE s.tenant_id = {CURRENT_TENANT}
      AND s.doc @@ (websearch_to_tsquery('simple'::regconfig, p_query)
                    && to_tsquery('simple'::regconfig,
                                  't' || replace(({CURRENT_TENANT})::text, '-', '')))
$fn$;
REVOKE ALL ON FUNCTION parley_inbox_search(text) FROM PUBLIC;
"""

ROLES_NEW = "('owner', 'admin', 'editor', 'agent', 'viewer')"
INVITABLE_NEW = "('admin', 'editor', 'agent', 'viewer')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_memberships_role"), "memberships", type_="check")
    op.create_check_constraint(op.f("ck_memberships_role"), "memberships", f"role IN {ROLES_NEW}")
    op.drop_constraint(op.f("ck_invitations_role"), "invitations", type_="check")
    op.create_check_constraint(
        op.f("ck_invitations_role"), "invitations", f"role IN {INVITABLE_NEW}"
    )
    op.add_column(
        "memberships", sa.Column("inbox_seen_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "tenants",
        sa.Column(
            "inbox_settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )

    add = op.add_column
    add("conversations", sa.Column("handoff_status", sa.String(16), server_default="bot"))
    op.alter_column("conversations", "handoff_status", nullable=False)
    add("conversations", sa.Column("assignee_id", sa.Uuid(), nullable=True))
    add("conversations", sa.Column("fallback_streak", sa.Integer(), server_default="0"))
    add("conversations", sa.Column("fallback_count", sa.Integer(), server_default="0"))
    op.alter_column("conversations", "fallback_streak", nullable=False)
    op.alter_column("conversations", "fallback_count", nullable=False)
    add("conversations", sa.Column("last_feedback", sa.String(8), nullable=True))
    add("conversations", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    add("conversations", sa.Column("first_bot_reply_ms", sa.Integer(), nullable=True))
    add("conversations", sa.Column("first_human_reply_ms", sa.Integer(), nullable=True))
    add("conversations", sa.Column("resolution_ms", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_conversations_handoff_status"),
        "conversations",
        "handoff_status IN ('bot', 'waiting', 'assigned', 'resolved')",
    )
    op.create_foreign_key(
        op.f("fk_conversations_assignee_id_users"),
        "conversations",
        "users",
        ["assignee_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_conversations_handoff_status", "conversations", ["tenant_id", "handoff_status", "id"]
    )
    op.create_index(
        "ix_conversations_assignee", "conversations", ["tenant_id", "assignee_id", "id"]
    )
    op.create_index("ix_conversations_bot", "conversations", ["tenant_id", "bot_id", "id"])
    op.create_index("ix_conversations_channel", "conversations", ["tenant_id", "channel_id", "id"])
    op.create_index(
        "ix_conversations_tags",
        "conversations",
        ["tags"],
        postgresql_using="gin",
    )

    add("messages", sa.Column("author_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_author_id_users"),
        "messages",
        "users",
        ["author_id"],
        ["id"],
        ondelete="SET NULL",
    )
    add("llm_turns", sa.Column("fallback", sa.Boolean(), server_default="false", nullable=False))
    add("visitors", sa.Column("external_id", sa.String(255), nullable=True))
    add("visitors", sa.Column("email", sa.String(320), nullable=True))
    add("visitors", sa.Column("page_url", sa.Text(), nullable=True))

    tables: list[tuple[str, list[SchemaItem]]] = [
        (
            "conversation_notes",
            [
                sa.Column("author_id", sa.Uuid(), nullable=True),
                sa.Column("body", sa.Text(), nullable=False),
            ],
        ),
        (
            "conversation_events",
            [
                sa.Column("kind", sa.String(16), nullable=False),
                sa.Column("actor", sa.String(80), nullable=False),
                sa.Column("from_status", sa.String(16), nullable=True),
                sa.Column("to_status", sa.String(16), nullable=True),
                sa.Column("assignee_id", sa.Uuid(), nullable=True),
                sa.Column("reason", sa.String(40), nullable=True),
            ],
        ),
    ]
    for table, extra in tables:
        fks: list[SchemaItem] = [
            sa.ForeignKeyConstraint(
                ["tenant_id", "conversation_id"],
                ["conversations.tenant_id", "conversations.id"],
                name=op.f(f"fk_{table}_tenant_id_conversations"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["tenant_id"],
                ["tenants.id"],
                name=op.f(f"fk_{table}_tenant_id_tenants"),
                ondelete="CASCADE",
            ),
        ]
        if table == "conversation_notes":
            fks.append(
                sa.ForeignKeyConstraint(
                    ["author_id"],
                    ["users.id"],
                    name=op.f("fk_conversation_notes_author_id_users"),
                    ondelete="SET NULL",
                )
            )
        op.create_table(
            table,
            sa.Column("tenant_id", sa.Uuid(), nullable=False),
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("conversation_id", sa.Uuid(), nullable=False),
            *extra,
            sa.Column(
                "created_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("now()"),
                nullable=False,
            ),
            *fks,
            sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f(f"pk_{table}")),
        )
        op.create_index(f"ix_{table}_conversation", table, ["tenant_id", "conversation_id", "id"])
        enable_tenant_rls(table)
        grant("SELECT, INSERT, UPDATE, DELETE", table)

    execute_script(SEARCH)
    grant("EXECUTE", "FUNCTION parley_inbox_search(text)")
    execute_script(USER_MESSAGE)
    execute_script(HANDLING_TRIGGER)
    execute_script(AFTER_FALLBACK)
    execute_script(_send_0019())
    execute_script(_finish_0019())
    for fn in (
        "parley_inbox_user_message(uuid, uuid, text, jsonb)",
        "parley_inbox_after_reply(uuid, uuid, uuid, boolean, timestamptz)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")


def downgrade() -> None:
    execute_script(_finish_0010())
    execute_script(_send_0018())
    op.execute("DROP FUNCTION parley_inbox_after_reply(uuid, uuid, uuid, boolean, timestamptz)")
    op.execute("DROP TRIGGER conversations_handling ON conversations")
    op.execute("DROP FUNCTION parley_conversation_handling()")
    op.execute("DROP FUNCTION parley_inbox_user_message(uuid, uuid, text, jsonb)")
    op.drop_table("conversation_events")
    op.drop_table("conversation_notes")
    for table, column in (
        ("visitors", "page_url"),
        ("visitors", "email"),
        ("visitors", "external_id"),
        ("llm_turns", "fallback"),
    ):
        op.drop_column(table, column)
    op.drop_constraint(op.f("fk_messages_author_id_users"), "messages", type_="foreignkey")
    op.drop_column("messages", "author_id")
    op.execute("DROP FUNCTION parley_inbox_search(text)")
    op.execute("DROP TRIGGER messages_searchable ON messages")
    op.execute("DROP FUNCTION parley_message_searchable()")
    op.drop_table("message_search")
    op.execute("DROP FUNCTION parley_search_doc(uuid, text)")
    for name in (
        "ix_conversations_tags",
        "ix_conversations_channel",
        "ix_conversations_bot",
        "ix_conversations_assignee",
        "ix_conversations_handoff_status",
    ):
        op.drop_index(name, table_name="conversations")
    op.drop_constraint(
        op.f("fk_conversations_assignee_id_users"), "conversations", type_="foreignkey"
    )
    op.drop_constraint(op.f("ck_conversations_handoff_status"), "conversations", type_="check")
    for column in (
        "resolution_ms",
        "first_human_reply_ms",
        "first_bot_reply_ms",
        "resolved_at",
        "last_feedback",
        "fallback_count",
        "fallback_streak",
        "assignee_id",
        "handoff_status",
    ):
        op.drop_column("conversations", column)
    op.drop_column("tenants", "inbox_settings")
    op.drop_column("memberships", "inbox_seen_at")
    op.execute("DELETE FROM invitations WHERE role = 'agent'")
    op.execute("UPDATE memberships SET role = 'viewer' WHERE role = 'agent'")
    op.drop_constraint(op.f("ck_invitations_role"), "invitations", type_="check")
    op.create_check_constraint(
        op.f("ck_invitations_role"), "invitations", "role IN ('admin', 'editor', 'viewer')"
    )
    op.drop_constraint(op.f("ck_memberships_role"), "memberships", type_="check")
    op.create_check_constraint(
        op.f("ck_memberships_role"), "memberships", "role IN ('owner', 'admin', 'editor', 'viewer')"
    )
