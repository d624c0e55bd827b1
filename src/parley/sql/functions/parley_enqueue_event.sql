-- Hands an event (`message.created`) to the webhook/automation layer: a job in the caller's
-- transaction, only when the workspace has an enabled endpoint or rule for it, then asks for a
-- usage check (`parley_usage_check_request`). Decisions 0005, 0012. The caller binds the tenant.
-- Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_enqueue_event.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_enqueue_event(
    p_tenant uuid, p_event text, p_message uuid, p_fallback boolean
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    -- The caller has bound the tenant; RLS filters these reads too.
    IF EXISTS (SELECT 1 FROM webhook_endpoints
               WHERE tenant_id = p_tenant AND enabled AND p_event = ANY(events))
       OR EXISTS (SELECT 1 FROM automation_rules
                  WHERE tenant_id = p_tenant AND enabled AND event = p_event) THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, 'webhooks.emit_message', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'event', p_event, 'message_id', p_message,
                        'fallback', p_fallback)::text, 'UTF8'),
                    now(), 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
    END IF;
    -- Usage may have grown (migration 0015): a usage.threshold check, if anyone listens.
    PERFORM parley_usage_check_request(p_tenant);
END
$fn$;
