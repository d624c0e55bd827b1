CREATE OR REPLACE FUNCTION parley_usage_on_call() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- AFTER INSERT metering of one unit of the type named by the trigger's argument, keyed by
-- the row: `webhook_events` per inbound channel event stored, `integration_calls` per
-- outbound webhook POST made. Migration 0025, decision 0035.
BEGIN
    PERFORM parley_usage_meter(NEW.tenant_id, TG_ARGV[0], 1,
                               TG_TABLE_NAME || '/' || NEW.id::text, true);
    RETURN NULL;
END
$fn$;
