-- The keyword leg of a search plan (migration 0016). SECURITY INVOKER: the first statement binds
-- the tenant for the calling transaction, so the tenant policies (RLS) filter everything it reads
-- or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_kb_keyword_leg.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_keyword_leg(
    p_tenant uuid, p_query text, p_cfg text, p_sources uuid[], p_pool integer,
    p_k1 double precision, p_b double precision
) RETURNS TABLE (chunk_id uuid, score double precision, coverage double precision)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT b.chunk_id, b.score, b.coverage
    FROM parley_kb_bm25(p_tenant, p_query, p_cfg, p_sources, p_pool, p_k1, p_b) b;
END
$fn$;
