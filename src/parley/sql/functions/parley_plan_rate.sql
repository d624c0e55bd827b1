CREATE OR REPLACE FUNCTION parley_plan_rate(p_tenant uuid) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Admit one message under the plan's `messages_per_minute`, or refuse (429 quota_exceeded,
-- Retry-After to the next minute): a fixed window per UTC minute, one row per workspace,
-- moved on by the first message of a new minute. Serialised on that row like
-- `parley_plan_admit`. Migration 0025, decision 0035.
DECLARE
    v_limit bigint := parley_plan_limit(p_tenant, 'messages_per_minute', now());
    v_window timestamptz := date_trunc('minute', now());
    v_used bigint;
BEGIN
    IF v_limit IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO usage_counters (tenant_id, metric, period, used, window_start)
    VALUES (p_tenant, 'messages_per_minute', 'minute', 1, v_window)
    ON CONFLICT (tenant_id, metric, period)
    DO UPDATE SET
        used = CASE WHEN usage_counters.window_start < EXCLUDED.window_start THEN 1
                    ELSE usage_counters.used + 1 END,
        window_start = greatest(usage_counters.window_start, EXCLUDED.window_start),
        updated_at = now()
    WHERE usage_counters.window_start < EXCLUDED.window_start OR usage_counters.used < v_limit
    RETURNING used INTO v_used;
    IF NOT FOUND THEN
        PERFORM parley_quota_refuse(p_tenant, 429, 'quota_exceeded', 'messages_per_minute',
                                    v_limit, v_limit, v_window + interval '1 minute');
    END IF;
END
$fn$;
