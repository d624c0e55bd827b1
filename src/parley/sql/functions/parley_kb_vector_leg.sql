-- The vector leg of a search plan (migration 0016). SECURITY INVOKER: the first statement binds the
-- tenant for the calling transaction, so the tenant policies (RLS) filter everything it reads or
-- writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_kb_vector_leg.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_vector_leg(
    p_tenant uuid, p_vector text, p_dims integer, p_model text, p_sources uuid[],
    p_pool integer, p_ef integer, p_max_tuples integer
) RETURNS TABLE (chunk_id uuid, score double precision)
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', p_ef::text, true),
            set_config('hnsw.max_scan_tuples', p_max_tuples::text, true);
    RETURN QUERY
    SELECT n.chunk_id, n.score
    FROM parley_kb_nearest(p_tenant, p_vector, p_dims, p_model, p_sources, p_pool) n;
END
$fn$;
