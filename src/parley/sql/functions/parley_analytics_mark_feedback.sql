-- Analytics roll-ups (migration 0024, docs/analytics.md): every write that changes a day's
-- figures marks that (workspace, UTC day) dirty; the `analytics.rollup` job recomputes the
-- marked days from the source rows. Marks are append-only (no unique key, so a writer never
-- waits on the roll-up's delete); the job deletes the marks it has read in the transaction
-- that writes the recomputed figures. SECURITY INVOKER: the writer's tenant context applies.

CREATE OR REPLACE FUNCTION parley_analytics_mark_feedback() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Feedback counts on the day of the rated message.
DECLARE
    v_row message_feedback;
BEGIN
    v_row := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    INSERT INTO analytics_dirty (tenant_id, day)
    SELECT m.tenant_id, (m.created_at AT TIME ZONE 'UTC')::date
    FROM messages m WHERE m.tenant_id = v_row.tenant_id AND m.id = v_row.message_id;
    RETURN NULL;
END
$fn$;
