-- The workspace of an invitation token hash. SECURITY DEFINER door (decision 0002): the one lookup
-- the app role may make before it knows the workspace; it returns a tenant id only, never a row.
-- Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_invitation_tenant.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_invitation_tenant(p_token_hash text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
$$ SELECT tenant_id FROM invitations WHERE token_hash = p_token_hash $$;
