-- Queues one `usage.check_thresholds` job per workspace that listens to `usage.threshold` (dedupe
-- key), a second later and without a NOTIFY. Decision 0012. The caller binds the tenant. Source
-- file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_usage_check_request.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_usage_check_request(p_tenant uuid) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_key text;
    v_notify text;
BEGIN
    IF NOT (EXISTS (SELECT 1 FROM webhook_endpoints
                    WHERE tenant_id = p_tenant AND enabled
                      AND 'usage.threshold' = ANY(events))
            OR EXISTS (SELECT 1 FROM automation_rules
                       WHERE tenant_id = p_tenant AND enabled
                         AND event = 'usage.threshold')) THEN
        RETURN;
    END IF;
    v_key := 'usage.check_thresholds:' || p_tenant::text;
    -- A check already waiting or running: it (or the next usage) counts this one too.
    IF EXISTS (SELECT 1 FROM pgqueuer
               WHERE dedupe_key = v_key AND status IN ('queued', 'picked')) THEN
        RETURN;
    END IF;
    v_notify := current_setting('parley.enqueue_notify', true);
    PERFORM set_config('parley.enqueue_notify', 'off', true);
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status, dedupe_key)
        VALUES (0, 'usage.check_thresholds',
                convert_to(jsonb_build_object('tenant_id', p_tenant)::text, 'UTF8'),
                now() + interval '1 second', 'queued', v_key)
        ON CONFLICT (dedupe_key) WHERE ((status = ANY (ARRAY['queued'::pgqueuer_status, 'picked'::pgqueuer_status])) AND (dedupe_key IS NOT NULL)) DO NOTHING
        RETURNING id, entrypoint, priority
    )
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, 'queued', entrypoint, priority FROM job;
    PERFORM set_config('parley.enqueue_notify', coalesce(v_notify, ''), true);
END
$fn$;
