CREATE OR REPLACE FUNCTION parley_usage_on_conversation() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- conversations: BEFORE INSERT admits the conversation under `monthly_conversations` (or
-- refuses it: the insert, and the transaction that wanted it, fail); AFTER INSERT meters it.
-- Every way a conversation starts (widget, API, compat, channels) passes here.
BEGIN
    IF TG_WHEN = 'BEFORE' THEN
        PERFORM parley_plan_admit(NEW.tenant_id, 'monthly_conversations',
                                  'conversations_started', 1);
    ELSE
        PERFORM parley_usage_meter(NEW.tenant_id, 'conversations_started', 1,
                                   'conversation/' || NEW.id::text, false);
    END IF;
    RETURN NEW;
END
$fn$;
