"""An asynchronous chat send enqueues its turn without pgqueuer's per-insert NOTIFY, as channel
ingress does since 0011: a transaction that notifies holds a database-wide lock through its
commit's WAL flush, so notifying commits run one at a time. The caller wakes the workers
itself, coalesced (`kit.jobs.WorkerNudge`). See docs/decisions/0008-ingress-path.md.

`parley_chat_send` is replaced with 0010's body plus, for an asynchronous send, the
transaction-local `parley.enqueue_notify = off` that 0011's trigger guard reads; it is set
before anything is enqueued, so the `message.created` event job is quiet too.

Revision ID: 0013_quiet_async_send
Revises: 0012_retrieval_path
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.migrations.rls import bind_tenant_sql, execute_script

revision: str = "0013_quiet_async_send"
down_revision: str | None = "0012_retrieval_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen (issue 16, decision 0029): the text this migration produced when it was written,
# kept literally so it depends on no other migration; history, never edited. The current
# definition lives in src/parley/sql/.
SEND = f"""
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

# 0010's function (the downgrade).
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


def upgrade() -> None:
    execute_script(SEND)


def downgrade() -> None:
    execute_script(SEND_BEFORE)
