-- pgqueuer 1.6.0's change-notification trigger function, with Parley's guard first: an insert
-- whose transaction set `parley.enqueue_notify = off` does not notify (a notifying commit holds a
-- database-wide lock through its WAL flush); the caller wakes the workers, coalesced
-- (`kit.jobs.WorkerNudge`). Decision 0008. Source file (decision 0029): a migration applies it
-- with apply_sql("functions/fn_pgqueuer_changed.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION fn_pgqueuer_changed() RETURNS TRIGGER AS $$
DECLARE
    to_emit BOOLEAN := false;  -- Flag to decide whether to emit a notification
BEGIN

    -- Parley (migration 0011): an insert whose transaction asked for it does not notify; its
    -- caller wakes the workers itself, coalesced (`kit.jobs.WorkerNudge`).
    IF TG_OP = 'INSERT' AND current_setting('parley.enqueue_notify', true) = 'off' THEN
        RETURN NULL;
    END IF;
    -- Check operation type and set the emit flag accordingly
    IF TG_OP = 'UPDATE' AND OLD IS DISTINCT FROM NEW THEN
        to_emit := true;
    ELSIF TG_OP = 'DELETE' THEN
        to_emit := true;
    ELSIF TG_OP = 'INSERT' THEN
        to_emit := true;
    ELSIF TG_OP = 'TRUNCATE' THEN
        to_emit := true;
    END IF;

    -- Perform notification if the emit flag is set
    IF to_emit THEN
        PERFORM pg_notify(
            'ch_pgqueuer',
            json_build_object(
                'channel', 'ch_pgqueuer',
                'operation', lower(TG_OP),
                'sent_at', NOW(),
                'table', TG_TABLE_NAME,
                'type', 'table_changed_event'
            )::text
        );
    END IF;

    -- Return appropriate value based on the operation
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        RETURN NEW;
    ELSIF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSE
        RETURN NULL; -- For TRUNCATE and other non-row-specific contexts
    END IF;

END;
$$ LANGUAGE plpgsql;
