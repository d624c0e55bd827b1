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

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

from parley.migrations.rls import (
    CURRENT_TENANT,
    bind_tenant_sql,
    enable_tenant_rls,
    execute_script,
    grant,
)

revision: str = "0019_inbox"
down_revision: str | None = "0018_widget_token_liveness"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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

# Frozen (issue 16, decision 0029): the text this migration produced when it was written,
# kept literally so it depends on no other migration; history, never edited. The current
# definition lives in src/parley/sql/.
# parley_chat_send: after the user message is stored, who answers it (step 2b).
SEND = f"""
CREATE OR REPLACE FUNCTION parley_chat_send(
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
    v_handling text;
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

    -- 2b. A person holds the conversation, or this message asked for one (0019):
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

# parley_chat_finish: the fallback counters and the N-fallbacks rule after a bot reply.
FINISH = f"""
CREATE OR REPLACE FUNCTION parley_chat_finish(
    p_tenant uuid, p_operation uuid, p_scope text, p_key text, p_conversation uuid,
    p_reply uuid, p_content text, p_version uuid, p_now timestamptz, p_model text,
    p_cost numeric, p_prompt_tokens integer, p_completion_tokens integer,
    p_latency_ms integer, p_ttft_ms integer, p_response jsonb,
    p_summary text, p_summary_upto uuid,  -- a rolling summary the turn extended, or NULLs
    p_citations jsonb, p_fallback boolean  -- what the answer cites; it is the fallback text
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    {bind_tenant_sql("p_tenant")}
    INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations,
                          bot_version_id, created_at)
    VALUES (p_tenant, p_reply, p_conversation, 'assistant', p_content, p_citations,
            p_version, p_now);
    PERFORM parley_enqueue_event(p_tenant, 'message.created', p_reply, p_fallback);
    UPDATE llm_turns
    SET status = 'succeeded', model = p_model, cost_usd = p_cost,
        prompt_tokens = p_prompt_tokens, completion_tokens = p_completion_tokens,
        latency_ms = p_latency_ms, ttft_ms = p_ttft_ms, reply_message_id = p_reply,
        finished_at = p_now
    WHERE tenant_id = p_tenant AND operation_id = p_operation;
    UPDATE llm_turns SET fallback = p_fallback
    WHERE tenant_id = p_tenant AND operation_id = p_operation;
    PERFORM parley_inbox_after_reply(p_tenant, p_conversation, p_version, p_fallback, p_now);
    UPDATE idempotency_keys SET state = 'completed', response = p_response
    WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;
    UPDATE conversations
    SET last_message_at = p_now,
        summary = CASE WHEN p_summary_upto IS NULL THEN summary ELSE p_summary END,
        summary_upto = coalesce(p_summary_upto, summary_upto)
    WHERE tenant_id = p_tenant AND id = p_conversation;
END
$fn$;
"""

# The functions as 0018 and 0010 left them (the downgrade).
SEND_BEFORE = f"""
CREATE OR REPLACE FUNCTION parley_chat_send(
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

FINISH_BEFORE = f"""
CREATE OR REPLACE FUNCTION parley_chat_finish(
    p_tenant uuid, p_operation uuid, p_scope text, p_key text, p_conversation uuid,
    p_reply uuid, p_content text, p_version uuid, p_now timestamptz, p_model text,
    p_cost numeric, p_prompt_tokens integer, p_completion_tokens integer,
    p_latency_ms integer, p_ttft_ms integer, p_response jsonb,
    p_summary text, p_summary_upto uuid,  -- a rolling summary the turn extended, or NULLs
    p_citations jsonb, p_fallback boolean  -- what the answer cites; it is the fallback text
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    {bind_tenant_sql("p_tenant")}
    INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations,
                          bot_version_id, created_at)
    VALUES (p_tenant, p_reply, p_conversation, 'assistant', p_content, p_citations,
            p_version, p_now);
    PERFORM parley_enqueue_event(p_tenant, 'message.created', p_reply, p_fallback);
    UPDATE llm_turns
    SET status = 'succeeded', model = p_model, cost_usd = p_cost,
        prompt_tokens = p_prompt_tokens, completion_tokens = p_completion_tokens,
        latency_ms = p_latency_ms, ttft_ms = p_ttft_ms, reply_message_id = p_reply,
        finished_at = p_now
    WHERE tenant_id = p_tenant AND operation_id = p_operation;
    UPDATE idempotency_keys SET state = 'completed', response = p_response
    WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;
    UPDATE conversations
    SET last_message_at = p_now,
        summary = CASE WHEN p_summary_upto IS NULL THEN summary ELSE p_summary END,
        summary_upto = coalesce(p_summary_upto, summary_upto)
    WHERE tenant_id = p_tenant AND id = p_conversation;
END
$fn$;
"""


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
    execute_script(SEND)
    execute_script(FINISH)
    for fn in (
        "parley_inbox_user_message(uuid, uuid, text, jsonb)",
        "parley_inbox_after_reply(uuid, uuid, uuid, boolean, timestamptz)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")


def downgrade() -> None:
    execute_script(FINISH_BEFORE)
    execute_script(SEND_BEFORE)
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
