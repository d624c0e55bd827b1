-- Channel ingress in one round trip: secret and workspace checks, the deduplicated event and its
-- processing job (quiet: the caller nudges the workers). Decision 0008. SECURITY INVOKER: the
-- first statement binds the tenant for the calling transaction, so the tenant policies (RLS)
-- filter everything it reads or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_inbound_receive.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_inbound_receive(
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
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
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
