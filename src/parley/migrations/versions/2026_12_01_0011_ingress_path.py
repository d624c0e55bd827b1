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


QUIET = """
    -- Parley (migration 0011): an insert whose transaction asked for it does not notify; its
    -- caller wakes the workers itself, coalesced (`kit.jobs.WorkerNudge`).
    IF TG_OP = 'INSERT' AND current_setting('parley.enqueue_notify', true) = 'off' THEN
        RETURN NULL;
    END IF;
"""


def _notify_function(*, quiet: bool) -> str:
    """pgqueuer's change-notification trigger function for the pinned version, with or
    without the guard above (first statement of its body)."""
    from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
    from pgqueuer.adapters.persistence.schema_ddl import render_function
    from pgqueuer.domain.schema.model import Function
    from pgqueuer.domain.schema.notify import notify_function, notify_function_body

    settings = QueryBuilderEnvironment().settings
    body = notify_function_body(settings.channel)
    if quiet:
        head, begin, rest = body.partition("BEGIN\n")
        if not begin:
            raise RuntimeError("pgqueuer's notify function changed shape; update 0011")
        body = head + begin + QUIET + rest
    name = notify_function(settings).name
    return render_function(Function(name=name, body=body), settings, replace=True)


def upgrade() -> None:
    execute_script(_notify_function(quiet=True))
    execute_script(RECEIVE)  # a plpgsql body: the simple-query path
    fn = f"FUNCTION parley_inbound_receive({RECEIVE_ARGS})"
    op.execute(f"REVOKE ALL ON {fn} FROM PUBLIC")
    grant("EXECUTE", fn)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION parley_inbound_receive({RECEIVE_ARGS})")
    execute_script(_notify_function(quiet=False))
