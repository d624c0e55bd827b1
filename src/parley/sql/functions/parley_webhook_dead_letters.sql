-- Dead webhook deliveries across workspaces, for the operator metrics (no tenant data leaves: a
-- count only). Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_webhook_dead_letters.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_webhook_dead_letters() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
$$ SELECT count(*) FROM webhook_deliveries WHERE status = 'dead' $$;
