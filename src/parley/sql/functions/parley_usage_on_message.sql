CREATE OR REPLACE FUNCTION parley_usage_on_message() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- messages written by a visitor (role 'user'): BEFORE INSERT admits the message (the plan's
-- messages per minute, the month's tokens, then the channel's per-visitor daily budget) or
-- refuses it, which undoes the whole send (the idempotency claim included: a refused send
-- stores nothing); AFTER INSERT meters `messages_processed`. Migration 0025, decision 0035.
DECLARE
    v_limit bigint;
    v_used bigint;
    v_visitor uuid;
    v_channel uuid;
    v_budget visitor_budgets%ROWTYPE;
    v_day date := (now() AT TIME ZONE 'UTC')::date;
    v_row visitor_usage%ROWTYPE;
    v_reset timestamptz;
BEGIN
    IF TG_WHEN = 'AFTER' THEN
        PERFORM parley_usage_meter(NEW.tenant_id, 'messages_processed', 1,
                                   'message/' || NEW.id::text, true);
        RETURN NEW;
    END IF;
    PERFORM parley_plan_rate(NEW.tenant_id);
    v_limit := parley_plan_limit(NEW.tenant_id, 'monthly_tokens', now());
    IF v_limit IS NOT NULL THEN
        SELECT used INTO v_used FROM usage_counters
        WHERE tenant_id = NEW.tenant_id AND metric = 'llm_tokens'
          AND period = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM');
        IF coalesce(v_used, 0) >= v_limit THEN
            PERFORM parley_quota_refuse(
                NEW.tenant_id, 402, 'quota_exceeded', 'monthly_tokens', v_limit, v_used,
                (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')
                    AT TIME ZONE 'UTC');
        END IF;
    END IF;
    -- The per-visitor budget of the conversation's channel, if it has one.
    SELECT c.visitor_id, c.channel_id INTO v_visitor, v_channel FROM conversations c
    WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.conversation_id;
    SELECT * INTO v_budget FROM visitor_budgets
    WHERE tenant_id = NEW.tenant_id AND channel_id = v_channel;
    IF NOT FOUND OR v_visitor IS NULL
       OR (v_budget.messages_per_day IS NULL AND v_budget.tokens_per_day IS NULL) THEN
        RETURN NEW;
    END IF;
    INSERT INTO visitor_usage AS u (tenant_id, visitor_id, day, messages, tokens)
    VALUES (NEW.tenant_id, v_visitor, v_day, 1, 0)
    ON CONFLICT (tenant_id, visitor_id, day) DO UPDATE SET messages = u.messages + 1
    WHERE (v_budget.messages_per_day IS NULL OR u.messages < v_budget.messages_per_day)
      AND (v_budget.tokens_per_day IS NULL OR u.tokens < v_budget.tokens_per_day)
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        SELECT * INTO v_row FROM visitor_usage
        WHERE tenant_id = NEW.tenant_id AND visitor_id = v_visitor AND day = v_day;
        v_reset := (v_day + 1)::timestamp AT TIME ZONE 'UTC';
        IF v_budget.messages_per_day IS NOT NULL
           AND v_row.messages >= v_budget.messages_per_day THEN
            PERFORM parley_quota_refuse(NEW.tenant_id, 429, 'visitor_budget_exceeded',
                                        'visitor_messages_per_day', v_budget.messages_per_day,
                                        v_row.messages, v_reset);
        END IF;
        PERFORM parley_quota_refuse(NEW.tenant_id, 429, 'visitor_budget_exceeded',
                                    'visitor_tokens_per_day', v_budget.tokens_per_day,
                                    v_row.tokens, v_reset);
    END IF;
    RETURN NEW;
END
$fn$;
