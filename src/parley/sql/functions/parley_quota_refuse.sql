CREATE OR REPLACE FUNCTION parley_quota_refuse(
    p_tenant uuid, p_status integer, p_code text, p_metric text, p_limit bigint, p_used bigint,
    p_reset timestamptz
) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- Refuse the work in progress: raise SQLSTATE PQ402 or PQ429 with the problem's members as
-- JSON in DETAIL. The exception aborts the caller's statement, so whatever it had written
-- (the idempotency claim, the message, the row) is undone with it; `kit.errors` turns it into
-- an RFC 9457 problem (402/429, with Retry-After for 429). Migration 0025, decision 0035.
DECLARE
    v_message text;
BEGIN
    SELECT quota_message INTO v_message FROM tenants WHERE id = p_tenant;
    RAISE EXCEPTION USING
        ERRCODE = CASE WHEN p_status = 429 THEN 'PQ429' ELSE 'PQ402' END,
        MESSAGE = p_code || ' ' || p_metric,
        DETAIL = jsonb_build_object(
            'code', p_code, 'metric', p_metric, 'limit', p_limit, 'used', p_used,
            'reset_at', p_reset,
            'retry_after', CASE WHEN p_reset IS NULL THEN NULL
                                ELSE greatest(1, ceil(extract(epoch FROM p_reset - clock_timestamp())))::bigint END,
            'message', v_message)::text;
END
$fn$;
