CREATE OR REPLACE FUNCTION parley_usage_meter(
    p_tenant uuid, p_type text, p_quantity bigint, p_source text, p_count boolean
) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Meter `p_quantity` of `p_type` for the work named `p_source`, in the caller's transaction:
-- one `usage_events` row, unique per (type, source), so metering the same work twice (a
-- retried send, a re-run job) is a no-op; with `p_count`, the month's counter grows by the
-- same amount (a caller that already counted it while admitting the work passes false).
-- Returns whether the event is new. Migration 0025, decision 0035.
BEGIN
    INSERT INTO usage_events (tenant_id, id, type, quantity, source, occurred_at)
    VALUES (p_tenant, gen_random_uuid(), p_type, p_quantity, p_source, now())
    ON CONFLICT (tenant_id, type, source) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_count THEN
        INSERT INTO usage_counters (tenant_id, metric, period, used)
        VALUES (p_tenant, p_type,
                CASE WHEN p_type = 'storage_bytes' THEN 'all'
                     ELSE to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') END,
                p_quantity)
        ON CONFLICT (tenant_id, metric, period)
        DO UPDATE SET used = usage_counters.used + EXCLUDED.used, updated_at = now();
    END IF;
    RETURN true;
END
$fn$;
