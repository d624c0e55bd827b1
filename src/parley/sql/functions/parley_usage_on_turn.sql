CREATE OR REPLACE FUNCTION parley_usage_on_turn() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- llm_turns: a turn that succeeds meters its tokens (`llm_tokens`, once per turn however
-- often the row is written) into the month's counter and, when the conversation's visitor
-- has a budget row today, into the visitor's day. Migration 0025, decision 0035.
DECLARE
    v_tokens bigint := coalesce(NEW.prompt_tokens, 0) + coalesce(NEW.completion_tokens, 0);
BEGIN
    IF NEW.status <> 'succeeded' OR v_tokens <= 0
       OR (TG_OP = 'UPDATE' AND OLD.status = 'succeeded') THEN
        RETURN NULL;
    END IF;
    IF parley_usage_meter(NEW.tenant_id, 'llm_tokens', v_tokens, 'turn/' || NEW.id::text, true)
    THEN
        UPDATE visitor_usage u SET tokens = u.tokens + v_tokens
        FROM conversations c
        WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.conversation_id
          AND u.tenant_id = NEW.tenant_id AND u.visitor_id = c.visitor_id
          AND u.day = (now() AT TIME ZONE 'UTC')::date;
    END IF;
    RETURN NULL;
END
$fn$;
