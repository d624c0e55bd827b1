CREATE OR REPLACE FUNCTION parley_usage_on_count() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- BEFORE INSERT on a table whose rows a plan counts (`bots`, `kb_sources`; the limit's name
-- is the trigger's argument): refuse (402) when the workspace already has as many as its
-- plan allows. A transaction-scoped advisory lock per workspace and limit serialises
-- concurrent creations, so two processes cannot both take the last place.
DECLARE
    v_limit_name text := TG_ARGV[0];
    v_limit bigint := parley_plan_limit(NEW.tenant_id, v_limit_name, now());
    v_count bigint;
BEGIN
    IF v_limit IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(
        hashtextextended('parley.plan/' || v_limit_name || '/' || NEW.tenant_id::text, 0));
    EXECUTE format('SELECT count(*) FROM %I WHERE tenant_id = $1', TG_TABLE_NAME)
    INTO v_count USING NEW.tenant_id;
    IF v_count >= v_limit THEN
        PERFORM parley_quota_refuse(NEW.tenant_id, 402, 'quota_exceeded', v_limit_name,
                                    v_limit, v_count, NULL);
    END IF;
    RETURN NEW;
END
$fn$;
