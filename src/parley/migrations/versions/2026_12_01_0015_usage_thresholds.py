"""Usage grows → a usage check is queued, for workspaces that listen to `usage.threshold`.

`parley_usage_check_request(p_tenant)` enqueues one `usage.check_thresholds` job for the
workspace when it has an enabled endpoint subscribed to `usage.threshold` or an enabled rule on
it, and no such job is queued or running yet (pgqueuer's dedupe key, unique among queued and
picked jobs: `usage.check_thresholds:<tenant>`). The job waits a second before it may run, so a
burst of messages is counted by one check. It is enqueued without pgqueuer's per-insert NOTIFY
(the `parley.enqueue_notify` guard of 0011, restored afterwards so the caller's own jobs notify
as before): a transaction that notifies holds a database-wide lock through its commit, and a
usage alert does not need waking a worker; the workers' poll finds it.

`parley_enqueue_event` (0010), which both chat writers call for every `message.created` inside
their one statement, is replaced with 0010's body unchanged plus a last `PERFORM` of the new
function, so the check rides in the send and reply statements (no round trip more). A workspace
that does not listen pays two index probes; one that listens and has a check queued pays three.
Conversations are counted when they start: `webhooks.service.emit` of `conversation.started`
calls the function too. See docs/decisions/0012-usage-thresholds.md.

SECURITY INVOKER: the caller has bound the tenant; RLS filters the reads.

Revision ID: 0015_usage_thresholds
Revises: 0014_emitted_events
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from parley.migrations.rls import execute_script, grant

revision: str = "0015_usage_thresholds"
down_revision: str | None = "0014_emitted_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK_ARGS = "uuid"
CHECK_JOB = "usage.check_thresholds"  # parley.usage.tasks registers it under this name


# The predicate of pgqueuer's unique dedupe-key index (pgqueuer 1.6.0), restated so PostgreSQL
# infers the ON CONFLICT arbiter (as pgqueuer's own enqueue does). Frozen (issue 16): the text
# pgqueuer rendered when this migration was written, not read from the installed library.
DEDUPE_ARBITER = (
    "((status = ANY (ARRAY['queued'::pgqueuer_status, 'picked'::pgqueuer_status])) "
    "AND (dedupe_key IS NOT NULL))"
)


def _check_function() -> str:
    return f"""
CREATE FUNCTION parley_usage_check_request(p_tenant uuid) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_key text;
    v_notify text;
BEGIN
    IF NOT (EXISTS (SELECT 1 FROM webhook_endpoints
                    WHERE tenant_id = p_tenant AND enabled
                      AND 'usage.threshold' = ANY(events))
            OR EXISTS (SELECT 1 FROM automation_rules
                       WHERE tenant_id = p_tenant AND enabled
                         AND event = 'usage.threshold')) THEN
        RETURN;
    END IF;
    v_key := '{CHECK_JOB}:' || p_tenant::text;
    -- A check already waiting or running: it (or the next usage) counts this one too.
    IF EXISTS (SELECT 1 FROM pgqueuer
               WHERE dedupe_key = v_key AND status IN ('queued', 'picked')) THEN
        RETURN;
    END IF;
    v_notify := current_setting('parley.enqueue_notify', true);
    PERFORM set_config('parley.enqueue_notify', 'off', true);
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status, dedupe_key)
        VALUES (0, '{CHECK_JOB}',
                convert_to(jsonb_build_object('tenant_id', p_tenant)::text, 'UTF8'),
                now() + interval '1 second', 'queued', v_key)
        ON CONFLICT (dedupe_key) WHERE {DEDUPE_ARBITER} DO NOTHING
        RETURNING id, entrypoint, priority
    )
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, 'queued', entrypoint, priority FROM job;
    PERFORM set_config('parley.enqueue_notify', coalesce(v_notify, ''), true);
END
$fn$;
"""


# Frozen (issue 16, decision 0029): the text this migration produced when it was written,
# kept literally so it depends on no other migration; history, never edited. The current
# definition lives in src/parley/sql/.
EVENT = """
CREATE OR REPLACE FUNCTION parley_enqueue_event(
    p_tenant uuid, p_event text, p_message uuid, p_fallback boolean
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    -- The caller has bound the tenant; RLS filters these reads too.
    IF EXISTS (SELECT 1 FROM webhook_endpoints
               WHERE tenant_id = p_tenant AND enabled AND p_event = ANY(events))
       OR EXISTS (SELECT 1 FROM automation_rules
                  WHERE tenant_id = p_tenant AND enabled AND event = p_event) THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, 'webhooks.emit_message', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'event', p_event, 'message_id', p_message,
                        'fallback', p_fallback)::text, 'UTF8'),
                    now(), 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
    END IF;
    -- Usage may have grown (migration 0015): a usage.threshold check, if anyone listens.
    PERFORM parley_usage_check_request(p_tenant);
END
$fn$;
"""

# 0010's function (the downgrade).
EVENT_BEFORE = """
CREATE OR REPLACE FUNCTION parley_enqueue_event(
    p_tenant uuid, p_event text, p_message uuid, p_fallback boolean
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    -- The caller has bound the tenant; RLS filters these reads too.
    IF EXISTS (SELECT 1 FROM webhook_endpoints
               WHERE tenant_id = p_tenant AND enabled AND p_event = ANY(events))
       OR EXISTS (SELECT 1 FROM automation_rules
                  WHERE tenant_id = p_tenant AND enabled AND event = p_event) THEN
        WITH job AS (
            INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
            VALUES (0, 'webhooks.emit_message', convert_to(jsonb_build_object(
                        'tenant_id', p_tenant, 'event', p_event, 'message_id', p_message,
                        'fallback', p_fallback)::text, 'UTF8'),
                    now(), 'queued')
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job;
    END IF;
END
$fn$;
"""


def upgrade() -> None:
    execute_script(_check_function())  # a plpgsql body: the simple-query path
    fn = f"FUNCTION parley_usage_check_request({CHECK_ARGS})"
    op.execute(f"REVOKE ALL ON {fn} FROM PUBLIC")
    grant("EXECUTE", fn)
    execute_script(EVENT)


def downgrade() -> None:
    execute_script(EVENT_BEFORE)
    op.execute(f"DROP FUNCTION parley_usage_check_request({CHECK_ARGS})")
