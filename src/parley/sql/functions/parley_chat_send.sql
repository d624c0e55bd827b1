-- The chat send in one round trip: liveness, idempotency claim, user message, handoff, then either
-- the turn job (asynchronous) or the turn ledger row and the prompt's inputs (inline). Decisions
-- 0005, 0019, 0021. SECURITY INVOKER: the first statement binds the tenant for the calling
-- transaction, so the tenant policies (RLS) filter everything it reads or writes. Source file
-- (decision 0029): a migration applies it with apply_sql("functions/parley_chat_send.sql"); edit
-- it only together with such a migration.
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
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
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

    -- 2. The user message (a taken-over operation keeps the one it stored). The conversation
    -- is locked first (FOR NO KEY UPDATE, decision 0038): every writer of a conversation takes
    -- that row before the rows its inserts' triggers touch (usage counters, visitor budgets),
    -- so two writers never wait on each other in opposite orders.
    IF v_message.id IS NULL THEN
        PERFORM 1 FROM conversations
        WHERE tenant_id = p_tenant AND id = p_conversation FOR NO KEY UPDATE;
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
