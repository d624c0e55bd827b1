-- The workspace of an API key prefix. SECURITY DEFINER door (decision 0002): the one lookup the
-- app role may make before it knows the workspace; it returns a tenant id only, never a row.
-- Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_api_key_tenant.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_api_key_tenant(p_prefix text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
$$ SELECT tenant_id FROM api_keys WHERE prefix = p_prefix $$;
