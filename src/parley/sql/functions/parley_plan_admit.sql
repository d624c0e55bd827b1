CREATE OR REPLACE FUNCTION parley_plan_admit(
    p_tenant uuid, p_limit text, p_meter text, p_amount bigint
) RETURNS bigint
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Admit `p_amount` more of the monthly meter `p_meter` under the plan's `p_limit`, or refuse
-- (402 quota_exceeded): one conditional upsert of the month's counter. The row lock it takes
-- is held to the end of the caller's transaction, so two processes admitting at once are
-- serialised on it and the second sees the first's count: together they never pass the limit.
-- Returns the count after. Migration 0025, decision 0035.
DECLARE
    v_limit bigint := parley_plan_limit(p_tenant, p_limit, now());
    v_period text := to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM');
    v_used bigint;
    v_reset timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC')
                            + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF v_limit IS NOT NULL AND p_amount > v_limit THEN
        PERFORM parley_quota_refuse(p_tenant, 402, 'quota_exceeded', p_limit, v_limit, 0, v_reset);
    END IF;
    INSERT INTO usage_counters (tenant_id, metric, period, used)
    VALUES (p_tenant, p_meter, v_period, p_amount)
    ON CONFLICT (tenant_id, metric, period)
    DO UPDATE SET used = usage_counters.used + EXCLUDED.used, updated_at = now()
    WHERE v_limit IS NULL OR usage_counters.used + EXCLUDED.used <= v_limit
    RETURNING used INTO v_used;
    IF NOT FOUND THEN
        SELECT used INTO v_used FROM usage_counters
        WHERE tenant_id = p_tenant AND metric = p_meter AND period = v_period;
        PERFORM parley_quota_refuse(p_tenant, 402, 'quota_exceeded', p_limit, v_limit, v_used,
                                    v_reset);
    END IF;
    RETURN v_used;
END
$fn$;
