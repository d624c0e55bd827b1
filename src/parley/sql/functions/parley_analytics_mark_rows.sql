-- Analytics roll-ups (migration 0024, docs/analytics.md): every write that changes a day's
-- figures marks that (workspace, UTC day) dirty; the `analytics.rollup` job recomputes the
-- marked days from the source rows. Marks are append-only (no unique key, so a writer never
-- waits on the roll-up's delete); the job deletes the marks it has read in the transaction
-- that writes the recomputed figures. SECURITY INVOKER: the writer's tenant context applies.

CREATE OR REPLACE FUNCTION parley_analytics_mark_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Statement-level, after INSERT or DELETE on messages, conversations or llm_turns: one mark
-- per (workspace, day) the statement touched, whatever the number of rows.
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO analytics_dirty (tenant_id, day)
        SELECT DISTINCT tenant_id, (created_at AT TIME ZONE 'UTC')::date FROM old_rows;
    ELSE
        INSERT INTO analytics_dirty (tenant_id, day)
        SELECT DISTINCT tenant_id, (created_at AT TIME ZONE 'UTC')::date FROM new_rows;
    END IF;
    RETURN NULL;
END
$fn$;
