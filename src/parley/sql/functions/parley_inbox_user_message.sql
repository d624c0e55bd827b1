-- Who answers a user message just stored: the bot, a person, or a handoff phrase that moves the
-- conversation to the queue. Decision 0021. The caller binds the tenant. Source file (decision
-- 0029): a migration applies it with apply_sql("functions/parley_inbox_user_message.sql"); edit it
-- only together with such a migration.
CREATE OR REPLACE FUNCTION parley_inbox_user_message(
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
    WHERE tenant_id = p_tenant AND id = p_conversation FOR NO KEY UPDATE;
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
