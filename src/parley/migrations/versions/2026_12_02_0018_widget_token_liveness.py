"""Widget tokens are checked against the database on every widget route, inside the statement
each route already sends (issue 15, decision 0019).

- `channels.token_epoch`: a widget token carries the epoch of its channel when it was issued;
  removing an origin from the allowlist moves the epoch on, so every live token of the channel
  stops working at once (the widget takes a new session on its next 401).
- `parley_widget_live(tenant, conversation, epoch)`: raises `PA403` when the workspace is
  suspended, `PA410` when the conversation (and so its channel, which cascades) is gone, and
  `PA401` when the epoch is not the channel's. A NULL epoch (the OpenAI-compatible API, whose
  caller is an API key) skips the epoch check only.
- `parley_chat_send` and `parley_chat_history` take the token's epoch and call it first, so a
  send still costs one statement and a history page one statement (SPEC P2/P3). A send to a
  deleted channel's conversation was a foreign-key violation (a 500) before.

Revision ID: 0018_widget_token_liveness
Revises: 0016_search_plans
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import bind_tenant_sql, execute_script, grant

revision: str = "0018_widget_token_liveness"
down_revision: str | None = "0017_ingest_error_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SEND_ARGS = (
    "uuid, text, text, text, uuid, uuid, uuid, uuid, uuid, text, timestamptz, interval, "
    "interval, integer, text"
)
OLD_HISTORY_ARGS = "uuid, uuid, uuid, integer"
SEND_ARGS = OLD_SEND_ARGS + ", integer"
HISTORY_ARGS = OLD_HISTORY_ARGS + ", integer"
LIVE_ARGS = "uuid, uuid, integer"

LIVE = f"""
CREATE FUNCTION parley_widget_live(p_tenant uuid, p_conversation uuid, p_epoch integer)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_status text;
    v_epoch integer;
BEGIN
    {bind_tenant_sql("p_tenant")}
    SELECT status INTO v_status FROM tenants WHERE id = p_tenant;
    IF v_status IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'tenant_suspended' USING ERRCODE = 'PA403';
    END IF;
    SELECT ch.token_epoch INTO v_epoch
    FROM conversations cv
    JOIN channels ch ON ch.tenant_id = cv.tenant_id AND ch.id = cv.channel_id
    WHERE cv.tenant_id = p_tenant AND cv.id = p_conversation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation_gone' USING ERRCODE = 'PA410';
    END IF;
    IF p_epoch IS NOT NULL AND v_epoch <> p_epoch THEN
        RAISE EXCEPTION 'token_revoked' USING ERRCODE = 'PA401';
    END IF;
END
$fn$;
"""

# Frozen (issue 16, decision 0029): the text this migration produced when it was written,
# kept literally so it depends on no other migration; history, never edited. The current
# definition lives in src/parley/sql/.
SEND = f"""
CREATE FUNCTION parley_chat_send(
    p_tenant uuid, p_scope text, p_key text, p_hash text, p_operation uuid,
    p_message uuid, p_turn uuid, p_conversation uuid, p_bot uuid, p_content text,
    p_now timestamptz, p_lease interval, p_retention interval, p_history_limit integer,
    p_job text,  -- the job's entrypoint (asynchronous send) or NULL (the caller runs the turn)
    p_epoch integer  -- the widget token's channel epoch; NULL for API-key callers
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_status text;
    v_idem idempotency_keys%ROWTYPE;
    v_outcome text := 'new';
    v_message messages%ROWTYPE;
    v_version bot_versions%ROWTYPE;
    v_turn llm_turns%ROWTYPE;
    v_summary text;
    v_upto uuid;
    v_history jsonb;
    v_credential jsonb;
BEGIN
    {bind_tenant_sql("p_tenant")}
    -- An inline send's commit does not wait for its WAL flush: the request ends with the
    -- reply, whose commit is synchronous, and the WAL is one sequence, so a reply that reached
    -- anyone implies its stored message; a crash before it loses the claim, message and ledger
    -- row together and the client, which got no reply, retries with the same key. A 202 is
    -- the acknowledgement itself, so an asynchronous send commits durably (decision 0005).
    IF p_job IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    ELSE
        -- No per-insert NOTIFY for the jobs this send enqueues: the caller nudges the
        -- workers after the commit (migration 0013).
        PERFORM set_config('parley.enqueue_notify', 'off', true);
    END IF;
    -- Suspended workspace, deleted channel, revoked token: raised.
    PERFORM parley_widget_live(p_tenant, p_conversation, p_epoch);

    -- 1. The idempotency claim: one winner among concurrent identical requests.
    INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, operation_id,
                                  message_id, lease_expires_at, expires_at)
    VALUES (p_tenant, p_scope, p_key, p_hash, 'in_progress', p_operation, p_message,
            p_now + p_lease, p_now + p_retention)
    ON CONFLICT (tenant_id, scope, key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_idem FROM idempotency_keys
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key FOR UPDATE;
        IF v_idem.request_hash <> p_hash THEN
            RETURN jsonb_build_object('outcome', 'reused');
        END IF;
        SELECT * INTO v_message FROM messages
        WHERE tenant_id = p_tenant AND id = v_idem.message_id;
        IF v_idem.state = 'completed' THEN
            RETURN jsonb_build_object('outcome', 'replay', 'operation_id', v_idem.operation_id,
                                      'response', v_idem.response,
                                      'message', to_jsonb(v_message));
        END IF;
        IF v_idem.state = 'in_progress' AND v_idem.lease_expires_at > p_now THEN
            RETURN jsonb_build_object('outcome', 'in_progress',
                                      'operation_id', v_idem.operation_id,
                                      'message', to_jsonb(v_message));
        END IF;
        -- Failed (retryable) or abandoned by a process that died: take it over.
        UPDATE idempotency_keys SET state = 'in_progress', lease_expires_at = p_now + p_lease
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;
        v_outcome := 'takeover';
        p_operation := v_idem.operation_id;
        p_message := coalesce(v_idem.message_id, p_message);
    END IF;

    SELECT * INTO v_version FROM bot_versions
    WHERE tenant_id = p_tenant AND bot_id = p_bot AND status = 'published';
    IF NOT FOUND THEN  -- undo the claim: the statement is the transaction
        RAISE EXCEPTION 'bot_not_found' USING ERRCODE = 'PA404';
    END IF;

    -- 2. The user message (a taken-over operation keeps the one it stored).
    IF v_message.id IS NULL THEN
        INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations,
                              created_at)
        VALUES (p_tenant, p_message, p_conversation, 'user', p_content, '[]'::jsonb, p_now)
        RETURNING * INTO v_message;
        PERFORM parley_enqueue_event(p_tenant, 'message.created', v_message.id, false);
    END IF;

    IF p_job IS NOT NULL THEN
        -- 3a. Asynchronous: enqueue the turn in this same transaction (pgqueuer's table;
        -- its trigger notifies the workers).
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, p_job, convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'operation_id', p_operation, 'scope', p_scope,
                        'key', p_key, 'conversation_id', p_conversation, 'bot_id', p_bot,
                        'message_id', v_message.id)::text, 'UTF8'),
                    now(), 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
        RETURN jsonb_build_object('outcome', v_outcome, 'operation_id', p_operation,
                                  'message', to_jsonb(v_message));
    END IF;

    -- 3b. Synchronous: claim the turn ledger row; a turn that already succeeded is answered
    -- from what it stored.
    INSERT INTO llm_turns (tenant_id, id, operation_id, conversation_id, bot_version_id,
                           provider, model, status)
    VALUES (p_tenant, p_turn, p_operation, p_conversation, v_version.id,
            coalesce(v_version.config->>'provider', 'extractive'),
            coalesce(v_version.config->>'model', 'extractive'), 'running')
    ON CONFLICT (tenant_id, operation_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_turn FROM llm_turns
        WHERE tenant_id = p_tenant AND operation_id = p_operation FOR UPDATE;
        IF v_turn.status = 'succeeded' AND EXISTS (
            SELECT 1 FROM messages r
            WHERE r.tenant_id = p_tenant AND r.id = v_turn.reply_message_id
        ) THEN
            RETURN jsonb_build_object(
                'outcome', 'stored_reply', 'operation_id', p_operation,
                'message', to_jsonb(v_message), 'version_id', v_version.id,
                'config', v_version.config,
                'reply', (SELECT to_jsonb(r) FROM messages r
                          WHERE r.tenant_id = p_tenant AND r.id = v_turn.reply_message_id));
        END IF;
        UPDATE llm_turns SET status = 'running', error = NULL
        WHERE tenant_id = p_tenant AND operation_id = p_operation;
    END IF;

    -- 4. What the prompt needs: the rolling summary, the turns it does not cover yet, the
    -- workspace's own provider key.
    SELECT summary, summary_upto INTO v_summary, v_upto FROM conversations
    WHERE tenant_id = p_tenant AND id = p_conversation;
    SELECT coalesce(jsonb_agg(jsonb_build_array(h.id, h.role, h.content) ORDER BY h.id),
                    '[]'::jsonb)
    INTO v_history
    FROM (SELECT m.id, m.role, m.content FROM messages m
          WHERE m.tenant_id = p_tenant AND m.conversation_id = p_conversation
            AND m.id < v_message.id AND (v_upto IS NULL OR m.id > v_upto)
          ORDER BY m.id DESC LIMIT p_history_limit) h;
    SELECT jsonb_build_object('base_url', c.base_url, 'api_key_encrypted', c.api_key_encrypted)
    INTO v_credential
    FROM provider_credentials c
    WHERE c.tenant_id = p_tenant AND c.provider = v_version.config->>'provider';

    RETURN jsonb_build_object(
        'outcome', v_outcome, 'operation_id', p_operation, 'message', to_jsonb(v_message),
        'version_id', v_version.id, 'config', v_version.config, 'summary', v_summary,
        'summary_upto', v_upto, 'history', v_history, 'credential', v_credential,
        'has_knowledge', EXISTS (SELECT 1 FROM kb_stats
                                 WHERE tenant_id = p_tenant AND chunks > 0));
END
$fn$;
"""

HISTORY = """
CREATE FUNCTION parley_chat_history(
    p_tenant uuid, p_conversation uuid, p_before uuid, p_limit integer,
    p_epoch integer
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_rows jsonb;
BEGIN
    PERFORM parley_widget_live(p_tenant, p_conversation, p_epoch);
    SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.id DESC), '[]'::jsonb) INTO v_rows
    FROM (SELECT * FROM messages
          WHERE tenant_id = p_tenant AND conversation_id = p_conversation
            AND (p_before IS NULL OR id < p_before)
          ORDER BY id DESC LIMIT p_limit) m;
    RETURN v_rows;
END
$fn$;
"""

# The functions as 0013 and 0010 left them (the downgrade).
SEND_BEFORE = f"""
CREATE OR REPLACE FUNCTION parley_chat_send(
    p_tenant uuid, p_scope text, p_key text, p_hash text, p_operation uuid,
    p_message uuid, p_turn uuid, p_conversation uuid, p_bot uuid, p_content text,
    p_now timestamptz, p_lease interval, p_retention interval, p_history_limit integer,
    p_job text  -- the job's entrypoint (asynchronous send) or NULL (the caller runs the turn)
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_status text;
    v_idem idempotency_keys%ROWTYPE;
    v_outcome text := 'new';
    v_message messages%ROWTYPE;
    v_version bot_versions%ROWTYPE;
    v_turn llm_turns%ROWTYPE;
    v_summary text;
    v_upto uuid;
    v_history jsonb;
    v_credential jsonb;
BEGIN
    {bind_tenant_sql("p_tenant")}
    -- An inline send's commit does not wait for its WAL flush: the request ends with the
    -- reply, whose commit is synchronous, and the WAL is one sequence, so a reply that reached
    -- anyone implies its stored message; a crash before it loses the claim, message and ledger
    -- row together and the client, which got no reply, retries with the same key. A 202 is
    -- the acknowledgement itself, so an asynchronous send commits durably (decision 0005).
    IF p_job IS NULL THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    ELSE
        -- No per-insert NOTIFY for the jobs this send enqueues: the caller nudges the
        -- workers after the commit (migration 0013).
        PERFORM set_config('parley.enqueue_notify', 'off', true);
    END IF;
    SELECT status INTO v_status FROM tenants WHERE id = p_tenant;
    IF v_status IS DISTINCT FROM 'active' THEN
        RETURN jsonb_build_object('outcome', 'suspended');
    END IF;

    -- 1. The idempotency claim: one winner among concurrent identical requests.
    INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, operation_id,
                                  message_id, lease_expires_at, expires_at)
    VALUES (p_tenant, p_scope, p_key, p_hash, 'in_progress', p_operation, p_message,
            p_now + p_lease, p_now + p_retention)
    ON CONFLICT (tenant_id, scope, key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_idem FROM idempotency_keys
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key FOR UPDATE;
        IF v_idem.request_hash <> p_hash THEN
            RETURN jsonb_build_object('outcome', 'reused');
        END IF;
        SELECT * INTO v_message FROM messages
        WHERE tenant_id = p_tenant AND id = v_idem.message_id;
        IF v_idem.state = 'completed' THEN
            RETURN jsonb_build_object('outcome', 'replay', 'operation_id', v_idem.operation_id,
                                      'response', v_idem.response,
                                      'message', to_jsonb(v_message));
        END IF;
        IF v_idem.state = 'in_progress' AND v_idem.lease_expires_at > p_now THEN
            RETURN jsonb_build_object('outcome', 'in_progress',
                                      'operation_id', v_idem.operation_id,
                                      'message', to_jsonb(v_message));
        END IF;
        -- Failed (retryable) or abandoned by a process that died: take it over.
        UPDATE idempotency_keys SET state = 'in_progress', lease_expires_at = p_now + p_lease
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;
        v_outcome := 'takeover';
        p_operation := v_idem.operation_id;
        p_message := coalesce(v_idem.message_id, p_message);
    END IF;

    SELECT * INTO v_version FROM bot_versions
    WHERE tenant_id = p_tenant AND bot_id = p_bot AND status = 'published';
    IF NOT FOUND THEN  -- undo the claim: the statement is the transaction
        RAISE EXCEPTION 'bot_not_found' USING ERRCODE = 'PA404';
    END IF;

    -- 2. The user message (a taken-over operation keeps the one it stored).
    IF v_message.id IS NULL THEN
        INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations,
                              created_at)
        VALUES (p_tenant, p_message, p_conversation, 'user', p_content, '[]'::jsonb, p_now)
        RETURNING * INTO v_message;
        PERFORM parley_enqueue_event(p_tenant, 'message.created', v_message.id, false);
    END IF;

    IF p_job IS NOT NULL THEN
        -- 3a. Asynchronous: enqueue the turn in this same transaction (pgqueuer's table;
        -- its trigger notifies the workers).
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, p_job, convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'operation_id', p_operation, 'scope', p_scope,
                        'key', p_key, 'conversation_id', p_conversation, 'bot_id', p_bot,
                        'message_id', v_message.id)::text, 'UTF8'),
                    now(), 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
        RETURN jsonb_build_object('outcome', v_outcome, 'operation_id', p_operation,
                                  'message', to_jsonb(v_message));
    END IF;

    -- 3b. Synchronous: claim the turn ledger row; a turn that already succeeded is answered
    -- from what it stored.
    INSERT INTO llm_turns (tenant_id, id, operation_id, conversation_id, bot_version_id,
                           provider, model, status)
    VALUES (p_tenant, p_turn, p_operation, p_conversation, v_version.id,
            coalesce(v_version.config->>'provider', 'extractive'),
            coalesce(v_version.config->>'model', 'extractive'), 'running')
    ON CONFLICT (tenant_id, operation_id) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_turn FROM llm_turns
        WHERE tenant_id = p_tenant AND operation_id = p_operation FOR UPDATE;
        IF v_turn.status = 'succeeded' AND EXISTS (
            SELECT 1 FROM messages r
            WHERE r.tenant_id = p_tenant AND r.id = v_turn.reply_message_id
        ) THEN
            RETURN jsonb_build_object(
                'outcome', 'stored_reply', 'operation_id', p_operation,
                'message', to_jsonb(v_message), 'version_id', v_version.id,
                'config', v_version.config,
                'reply', (SELECT to_jsonb(r) FROM messages r
                          WHERE r.tenant_id = p_tenant AND r.id = v_turn.reply_message_id));
        END IF;
        UPDATE llm_turns SET status = 'running', error = NULL
        WHERE tenant_id = p_tenant AND operation_id = p_operation;
    END IF;

    -- 4. What the prompt needs: the rolling summary, the turns it does not cover yet, the
    -- workspace's own provider key.
    SELECT summary, summary_upto INTO v_summary, v_upto FROM conversations
    WHERE tenant_id = p_tenant AND id = p_conversation;
    SELECT coalesce(jsonb_agg(jsonb_build_array(h.id, h.role, h.content) ORDER BY h.id),
                    '[]'::jsonb)
    INTO v_history
    FROM (SELECT m.id, m.role, m.content FROM messages m
          WHERE m.tenant_id = p_tenant AND m.conversation_id = p_conversation
            AND m.id < v_message.id AND (v_upto IS NULL OR m.id > v_upto)
          ORDER BY m.id DESC LIMIT p_history_limit) h;
    SELECT jsonb_build_object('base_url', c.base_url, 'api_key_encrypted', c.api_key_encrypted)
    INTO v_credential
    FROM provider_credentials c
    WHERE c.tenant_id = p_tenant AND c.provider = v_version.config->>'provider';

    RETURN jsonb_build_object(
        'outcome', v_outcome, 'operation_id', p_operation, 'message', to_jsonb(v_message),
        'version_id', v_version.id, 'config', v_version.config, 'summary', v_summary,
        'summary_upto', v_upto, 'history', v_history, 'credential', v_credential,
        'has_knowledge', EXISTS (SELECT 1 FROM kb_stats
                                 WHERE tenant_id = p_tenant AND chunks > 0));
END
$fn$;
"""

HISTORY_BEFORE = f"""
CREATE FUNCTION parley_chat_history(
    p_tenant uuid, p_conversation uuid, p_before uuid, p_limit integer
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_rows jsonb;
BEGIN
    {bind_tenant_sql("p_tenant")}
    SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.id DESC), '[]'::jsonb) INTO v_rows
    FROM (SELECT * FROM messages
          WHERE tenant_id = p_tenant AND conversation_id = p_conversation
            AND (p_before IS NULL OR id < p_before)
          ORDER BY id DESC LIMIT p_limit) m;
    RETURN v_rows;
END
$fn$;
"""


def upgrade() -> None:
    op.add_column(
        "channels",
        sa.Column("token_epoch", sa.Integer(), server_default="0", nullable=False),
    )
    execute_script(LIVE)
    op.execute(f"DROP FUNCTION parley_chat_send({OLD_SEND_ARGS})")
    op.execute(f"DROP FUNCTION parley_chat_history({OLD_HISTORY_ARGS})")
    execute_script(SEND)
    execute_script(HISTORY)
    for fn in (
        f"parley_widget_live({LIVE_ARGS})",
        f"parley_chat_send({SEND_ARGS})",
        f"parley_chat_history({HISTORY_ARGS})",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION parley_chat_history({HISTORY_ARGS})")
    op.execute(f"DROP FUNCTION parley_chat_send({SEND_ARGS})")
    op.execute(f"DROP FUNCTION parley_widget_live({LIVE_ARGS})")
    execute_script(SEND_BEFORE)
    execute_script(HISTORY_BEFORE)
    for fn in (f"parley_chat_send({OLD_SEND_ARGS})", f"parley_chat_history({OLD_HISTORY_ARGS})"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")
    op.drop_column("channels", "token_epoch")
