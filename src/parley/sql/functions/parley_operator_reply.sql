-- A person's reply to a conversation, in one round trip (issue 17, decision 0032): the
-- conversation checked and locked, the idempotency claim, the `operator` message, taking the
-- conversation when nobody holds it (the handling trigger writes the timeline row), the time
-- to the first human reply, the audit entry (the workspace's hash chain), the webhook events
-- and the channel delivery as jobs in this same transaction (an outbox: nothing is lost, and a
-- workspace without a subscribed endpoint or rule pays no job), and the completed key.
--
-- Returns jsonb: `outcome` is 'new', 'replay' (same key and body: `response` is the stored
-- answer), 'reused' (same key, another body), 'in_progress', or 'not_found'. For 'new':
-- `message` (the row), `channel_type`, `taken` (the reply assigned it to its author),
-- `jobs` (anything was enqueued: the caller wakes the workers).
--
-- SECURITY INVOKER: it runs as the app role under the tenant policies; its first statement
-- binds the tenant, so a conversation of another workspace is simply not found.
CREATE OR REPLACE FUNCTION parley_operator_reply(
    p_tenant uuid, p_conversation uuid, p_scope text, p_key text, p_hash text,
    p_operation uuid, p_message uuid, p_audit uuid, p_author uuid, p_actor text,
    p_content text, p_lease interval, p_retention interval
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_conv conversations%ROWTYPE;
    v_channel text;
    v_idem idempotency_keys%ROWTYPE;
    v_message messages%ROWTYPE;
    v_now timestamptz := now();
    v_taken boolean := false;
    v_jobs boolean := false;
    v_data jsonb;
    v_seq bigint;
    v_prev text;
    v_created text;
    v_after jsonb;
    v_canonical text;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- Jobs enqueued here do not notify per insert; the caller wakes the workers (0013).
    PERFORM set_config('parley.enqueue_notify', 'off', true);

    SELECT c.* INTO v_conv FROM conversations c
    WHERE c.tenant_id = p_tenant AND c.id = p_conversation FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    SELECT type INTO v_channel FROM channels
    WHERE tenant_id = p_tenant AND id = v_conv.channel_id;

    -- 1. The idempotency claim (the visitor's send has the same semantics).
    INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, operation_id,
                                  message_id, lease_expires_at, expires_at)
    VALUES (p_tenant, p_scope, p_key, p_hash, 'in_progress', p_operation, p_message,
            v_now + p_lease, v_now + p_retention)
    ON CONFLICT (tenant_id, scope, key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT * INTO v_idem FROM idempotency_keys
        WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key FOR UPDATE;
        IF v_idem.request_hash <> p_hash THEN
            RETURN jsonb_build_object('outcome', 'reused');
        END IF;
        IF v_idem.state = 'completed' THEN
            RETURN jsonb_build_object('outcome', 'replay', 'response', v_idem.response);
        END IF;
        IF v_idem.state = 'in_progress' AND v_idem.lease_expires_at > v_now THEN
            RETURN jsonb_build_object('outcome', 'in_progress');
        END IF;
        -- Failed, or abandoned by an older writer: take it over with the id it recorded.
        p_message := coalesce(v_idem.message_id, p_message);
    END IF;

    -- 2. The message, and the conversation: taken by the author when nobody holds it (so the
    -- bot falls silent), its last activity, and the time to the first human reply.
    INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations, author_id,
                          created_at)
    VALUES (p_tenant, p_message, p_conversation, 'operator', p_content, '[]'::jsonb, p_author,
            v_now)
    RETURNING * INTO v_message;
    v_taken := v_conv.handoff_status <> 'assigned' AND p_author IS NOT NULL;
    IF v_taken THEN
        PERFORM set_config('parley.actor', p_actor, true);
        PERFORM set_config('parley.handoff_reason', 'reply', true);
    END IF;
    UPDATE conversations
    SET handoff_status = CASE WHEN v_taken THEN 'assigned' ELSE handoff_status END,
        assignee_id = CASE WHEN v_taken THEN p_author ELSE assignee_id END,
        last_message_at = v_now,
        first_human_reply_ms = coalesce(first_human_reply_ms, greatest(0,
            (extract(epoch FROM v_now - coalesce(handoff_requested_at, created_at)) * 1000)
            ::integer))
    WHERE tenant_id = p_tenant AND id = p_conversation;

    v_data := to_jsonb(v_message);  -- the caller shapes it (`message_row_json`)
    UPDATE idempotency_keys
    SET state = 'completed', message_id = p_message,
        response = jsonb_build_object('message', v_data)
    WHERE tenant_id = p_tenant AND scope = p_scope AND key = p_key;

    -- 3. The audit entry, chained as `audit.service.record` chains it: the same advisory lock,
    -- and the hash over the previous hash and the entry's canonical JSON (sorted keys, no
    -- spaces; every value here is ASCII, so it is the text Python's json.dumps makes).
    PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || p_tenant::text, 0));
    SELECT seq, hash INTO v_seq, v_prev FROM audit_log
    WHERE tenant_id = p_tenant ORDER BY seq DESC LIMIT 1;
    v_seq := coalesce(v_seq, 0) + 1;
    v_prev := coalesce(v_prev, repeat('0', 64));
    v_created := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM v_now)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(v_now AT TIME ZONE 'UTC', '.US') END
        || '+00:00';
    v_after := jsonb_build_object('conversation_id', p_conversation::text,
                                  'chars', char_length(p_content));
    v_canonical := '{"action":"conversation.reply","actor":' || to_json(p_actor)::text
        || ',"after":{"chars":' || char_length(p_content)::text
        || ',"conversation_id":"' || p_conversation::text || '"}'
        || ',"before":' || 'null'  -- split: a colon before a word reads as a bind parameter
        || ',"created_at":"' || v_created || '"'
        || ',"id":"' || p_audit::text || '","seq":' || v_seq::text
        || ',"target_id":"' || p_message::text || '","target_type":"message"'
        || ',"tenant_id":"' || p_tenant::text || '"}';
    INSERT INTO audit_log (tenant_id, id, seq, actor, action, target_type, target_id, before,
                           after, created_at, prev_hash, hash)
    VALUES (p_tenant, p_audit, v_seq, p_actor, 'conversation.reply', 'message',
            p_message::text, NULL, v_after, v_now, v_prev,
            encode(sha256(convert_to(v_prev || v_canonical, 'UTF8')), 'hex'));

    -- 4. The outbox: webhook events for subscribed endpoints or rules, and the delivery to a
    -- Telegram or webhook channel (`channels.deliver_operator_message`).
    IF v_taken AND (
        EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = p_tenant AND enabled
                AND 'conversation.assigned' = ANY(events))
        OR EXISTS (SELECT 1 FROM automation_rules WHERE tenant_id = p_tenant AND enabled
                   AND event = 'conversation.assigned')) THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, 'webhooks.emit_event', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'event', 'conversation.assigned',
                        'subject_id', p_message,
                        'data', jsonb_build_object(
                            'conversation_id', p_conversation::text,
                            'assignee_id', p_author::text, 'actor', p_actor))::text, 'UTF8'),
                    v_now, 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
        v_jobs := true;
    END IF;
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = p_tenant AND enabled
               AND 'message.created' = ANY(events))
       OR EXISTS (SELECT 1 FROM automation_rules WHERE tenant_id = p_tenant AND enabled
                  AND event = 'message.created') THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, 'webhooks.emit_event', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'event', 'message.created',
                        'subject_id', p_message,
                        'data', jsonb_build_object(
                            'conversation_id', p_conversation::text,
                            'message_id', p_message::text, 'role', 'operator',
                            'text', p_content, 'citations', '[]'::jsonb, 'fallback', false,
                            'author_id', p_author::text))::text, 'UTF8'),
                    v_now, 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
        v_jobs := true;
    END IF;
    IF v_channel IN ('telegram', 'webhook') THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status,
                                  dedupe_key)
            VALUES (0, 'channels.deliver_operator_message', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant::text, 'message_id', p_message::text)::text,
                        'UTF8'),
                    v_now, 'queued', p_tenant::text || ':deliver:' || p_message::text)
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
        v_jobs := true;
    END IF;

    RETURN jsonb_build_object(
        'outcome', 'new', 'message', v_data, 'channel_type', v_channel, 'taken', v_taken,
        'jobs', v_jobs);
END
$fn$;
