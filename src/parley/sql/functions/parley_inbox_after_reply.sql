-- After a bot reply: fallback counters, time to first reply, the N-fallbacks handoff rule.
-- Decision 0021. The caller binds the tenant. Source file (decision 0029): a migration applies it
-- with apply_sql("functions/parley_inbox_after_reply.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_inbox_after_reply(
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
