-- Analytics roll-ups (migration 0024, docs/analytics.md): every write that changes a day's
-- figures marks that (workspace, UTC day) dirty; the `analytics.rollup` job recomputes the
-- marked days from the source rows. Marks are append-only (no unique key, so a writer never
-- waits on the roll-up's delete); the job deletes the marks it has read in the transaction
-- that writes the recomputed figures. SECURITY INVOKER: the writer's tenant context applies.

CREATE OR REPLACE FUNCTION parley_analytics_mark_row() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Row-level, after an UPDATE that changes a figure (the trigger's WHEN says which): the day
-- the row was created on (a conversation's handling, a turn finishing).
BEGIN
    INSERT INTO analytics_dirty (tenant_id, day)
    VALUES (NEW.tenant_id, (NEW.created_at AT TIME ZONE 'UTC')::date);
    RETURN NULL;
END
$fn$;
