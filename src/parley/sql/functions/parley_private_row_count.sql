-- Rows of a private (policy-less) tenant table for the bound workspace, for the data export and
-- deletion checks (P15). Decision 0024. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_private_row_count.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_private_row_count(p_table text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    v_tenant uuid := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
    v_n bigint;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no workspace bound' USING ERRCODE = 'PA403';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                           AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relname = p_table AND c.relkind IN ('r', 'p')
          AND NOT c.relrowsecurity
    ) THEN
        RAISE EXCEPTION 'not a private tenant table: %', p_table USING ERRCODE = 'PA404';
    END IF;
    EXECUTE format('SELECT count(*) FROM public.%I WHERE tenant_id = $1', p_table)
    INTO v_n USING v_tenant;
    RETURN v_n;
END
$fn$;
