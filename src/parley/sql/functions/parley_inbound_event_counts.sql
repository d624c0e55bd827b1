-- Inbound events per status across workspaces, for the operator metrics (counts only). Source file
-- (decision 0029): a migration applies it with
-- apply_sql("functions/parley_inbound_event_counts.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_inbound_event_counts() RETURNS TABLE(status text, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
$$ SELECT status::text, count(*) FROM inbound_events
           WHERE status IN ('received', 'processing', 'failed') GROUP BY status $$;
