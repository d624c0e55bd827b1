-- Stores the reply of a turn: the message, its event, the ledger, the idempotency key, the
-- summary, and the inbox counters (`parley_inbox_after_reply`). Decision 0005. SECURITY INVOKER:
-- the first statement binds the tenant for the calling transaction, so the tenant policies (RLS)
-- filter everything it reads or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_chat_finish.sql"); edit it only together with such a migration.
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
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- The conversation first, as every writer of it does (decision 0038).
    PERFORM 1 FROM conversations
    WHERE tenant_id = p_tenant AND id = p_conversation FOR NO KEY UPDATE;
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
