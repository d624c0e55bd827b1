CREATE OR REPLACE FUNCTION parley_plan_limit(p_tenant uuid, p_metric text, p_now timestamptz)
RETURNS bigint
LANGUAGE sql STABLE SECURITY INVOKER AS $fn$
-- The workspace's limit on `p_metric` (a key of its plan's `limits`) plus the overages a
-- platform admin granted that have not expired; NULL: unlimited (no such plan, or no such
-- key). Migration 0025, decision 0035.
    SELECT CASE WHEN p.limits ? p_metric AND jsonb_typeof(p.limits -> p_metric) = 'number'
                THEN (p.limits ->> p_metric)::bigint
                     + coalesce((SELECT sum(o.extra) FROM plan_overages o
                                 WHERE o.tenant_id = p_tenant AND o.metric = p_metric
                                   AND o.expires_at > p_now), 0)::bigint
           END
    FROM tenants t LEFT JOIN plans p ON p.name = t.plan
    WHERE t.id = p_tenant
$fn$;
