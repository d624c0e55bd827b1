-- Raises PA403 (suspended workspace), PA410 (conversation gone) or PA401 (token epoch revoked) for
-- a widget route, inside the statement the route already sends. Decision 0019. Source file
-- (decision 0029): a migration applies it with apply_sql("functions/parley_widget_live.sql"); edit
-- it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_widget_live(p_tenant uuid, p_conversation uuid, p_epoch integer)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_status text;
    v_epoch integer;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    SELECT status INTO v_status FROM tenants WHERE id = p_tenant;
    IF v_status IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'tenant_suspended' USING ERRCODE = 'PA403';
    END IF;
    SELECT ch.token_epoch INTO v_epoch
    FROM conversations cv
    JOIN channels ch ON ch.tenant_id = cv.tenant_id AND ch.id = cv.channel_id
    WHERE cv.tenant_id = p_tenant AND cv.id = p_conversation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation_gone' USING ERRCODE = 'PA410';
    END IF;
    IF p_epoch IS NOT NULL AND v_epoch <> p_epoch THEN
        RAISE EXCEPTION 'token_revoked' USING ERRCODE = 'PA401';
    END IF;
END
$fn$;
