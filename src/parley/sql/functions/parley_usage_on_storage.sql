CREATE OR REPLACE FUNCTION parley_usage_on_storage() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- kb_sources.size_bytes is the workspace's stored bytes: a change is metered
-- (`storage_bytes`, a gauge: the counter's `all` period is the current total) and a growth
-- past the plan's `storage_bytes` is refused (402) before the row is written.
DECLARE
    v_delta bigint := CASE TG_OP WHEN 'INSERT' THEN NEW.size_bytes
                                 WHEN 'UPDATE' THEN NEW.size_bytes - OLD.size_bytes
                                 ELSE -OLD.size_bytes END;
    v_tenant uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
    v_limit bigint;
    v_used bigint;
BEGIN
    IF coalesce(v_delta, 0) = 0 THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF v_delta > 0 THEN
        v_limit := parley_plan_limit(v_tenant, 'storage_bytes', now());
        -- Too big even for an empty store: refused without a write (v_used stays NULL).
        IF v_limit IS NULL OR v_delta <= v_limit THEN
            INSERT INTO usage_counters AS c (tenant_id, metric, period, used)
            VALUES (v_tenant, 'storage_bytes', 'all', v_delta)
            ON CONFLICT (tenant_id, metric, period)
            DO UPDATE SET used = c.used + EXCLUDED.used, updated_at = now()
            WHERE v_limit IS NULL OR c.used + EXCLUDED.used <= v_limit
            RETURNING used INTO v_used;
        END IF;
        IF v_used IS NULL THEN
            SELECT used INTO v_used FROM usage_counters
            WHERE tenant_id = v_tenant AND metric = 'storage_bytes' AND period = 'all';
            PERFORM parley_quota_refuse(v_tenant, 402, 'quota_exceeded', 'storage_bytes',
                                        v_limit, coalesce(v_used, 0), NULL);
        END IF;
    ELSE
        UPDATE usage_counters SET used = greatest(0, used + v_delta), updated_at = now()
        WHERE tenant_id = v_tenant AND metric = 'storage_bytes' AND period = 'all';
    END IF;
    IF TG_OP <> 'DELETE' THEN  -- a deletion (maybe the workspace's own) leaves no event
        PERFORM parley_usage_meter(v_tenant, 'storage_bytes', v_delta,
                                   'storage/' || gen_random_uuid()::text, false);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
