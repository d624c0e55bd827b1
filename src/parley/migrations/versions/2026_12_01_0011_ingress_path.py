"""Channel ingress in one round trip: `parley_inbound_receive` checks that the channel still
has the secret the delivery was verified with and that its workspace is active, stores the
event (deduplicated per channel) and, only when it is new, enqueues its processing job — one
statement, so one transaction with its durable commit.

SECURITY INVOKER: it runs as the application role under the tenant policies, and its first
statement sets the tenant context, so RLS filters everything it reads or writes. The tenant id
it is given comes from the channel door (`parley_channel_tenant`, decision 0002), never from the
request. See docs/decisions/0008-ingress-path.md.

Revision ID: 0011_ingress_path
Revises: 0010_send_path
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from parley.migrations.rls import bind_tenant_sql, execute_script, grant

revision: str = "0011_ingress_path"
down_revision: str | None = "0010_send_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECEIVE_ARGS = "uuid, uuid, text, text, uuid, text, text, text, jsonb, text"

RECEIVE = f"""
CREATE FUNCTION parley_inbound_receive(
    p_tenant uuid, p_channel uuid, p_type text,
    p_secret text,    -- the ciphertext of the secret the delivery was verified with
    p_event uuid, p_dedupe text, p_user text,
    p_text text,      -- NULL: a verified delivery with nothing to store (ignored update)
    p_payload jsonb, p_job text
) RETURNS text
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_secret text;
    v_status text;
BEGIN
    {bind_tenant_sql("p_tenant")}
    SELECT c.secret_encrypted, t.status INTO v_secret, v_status
    FROM channels c JOIN tenants t ON t.id = c.tenant_id
    WHERE c.tenant_id = p_tenant AND c.id = p_channel AND c.type = p_type;
    IF NOT FOUND OR v_secret IS NULL THEN
        RETURN 'not_found';
    END IF;
    -- The caller verified with a cached secret: a rotated or re-encrypted one is refused
    -- here, and the caller reloads it and verifies again.
    IF v_secret IS DISTINCT FROM p_secret THEN
        RETURN 'stale';
    END IF;
    IF v_status IS DISTINCT FROM 'active' THEN
        RETURN 'suspended';
    END IF;
    IF p_text IS NULL THEN
        RETURN 'ignored';
    END IF;

    INSERT INTO inbound_events (tenant_id, id, channel_id, dedupe_key, external_user_id, text,
                                payload, status)
    VALUES (p_tenant, p_event, p_channel, p_dedupe, p_user, p_text, p_payload, 'received')
    ON CONFLICT (tenant_id, channel_id, dedupe_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;

    -- The processing job, in this same transaction: a stored event always has its job.
    -- Without pgqueuer's per-insert NOTIFY (`parley.enqueue_notify`, see notify_body()): a
    -- transaction that notifies holds a database-wide lock through its commit's WAL flush,
    -- which serialises every such commit; the caller wakes the workers, coalesced, instead.
    PERFORM set_config('parley.enqueue_notify', 'off', true);
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        VALUES (0, p_job, convert_to(jsonb_build_object(
                    'tenant_id', p_tenant, 'event_id', p_event)::text, 'UTF8'),
                now(), 'queued')
        RETURNING id, entrypoint, priority
    )
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, 'queued', entrypoint, priority FROM job;
    RETURN 'accepted';
END
$fn$;
"""


# pgqueuer 1.6.0's change-notification trigger function with Parley's guard as the first
# statement of its body: an insert whose transaction set `parley.enqueue_notify = off` does not
# notify; its caller wakes the workers itself, coalesced (`kit.jobs.WorkerNudge`).
# Frozen (issue 16, decision 0029): the text this migration produced when it was written,
# kept literally so it depends on no other migration; history, never edited. The current
# definition lives in src/parley/sql/.
NOTIFY_QUIET = """CREATE OR REPLACE FUNCTION fn_pgqueuer_changed() RETURNS TRIGGER AS $$
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
$$ LANGUAGE plpgsql;"""

# pgqueuer 1.6.0's function as the library installs it (the downgrade).
NOTIFY_PLAIN = """CREATE OR REPLACE FUNCTION fn_pgqueuer_changed() RETURNS TRIGGER AS $$
DECLARE
    to_emit BOOLEAN := false;  -- Flag to decide whether to emit a notification
BEGIN
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
$$ LANGUAGE plpgsql;"""


def upgrade() -> None:
    execute_script(NOTIFY_QUIET)
    execute_script(RECEIVE)  # a plpgsql body: the simple-query path
    fn = f"FUNCTION parley_inbound_receive({RECEIVE_ARGS})"
    op.execute(f"REVOKE ALL ON {fn} FROM PUBLIC")
    grant("EXECUTE", fn)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION parley_inbound_receive({RECEIVE_ARGS})")
    execute_script(NOTIFY_PLAIN)
