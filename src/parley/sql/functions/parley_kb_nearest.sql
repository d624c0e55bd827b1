-- Nearest chunks by embedding (HNSW) for a workspace; exists only where pgvector does. Decision
-- 0009. Source file (decision 0029):
-- a migration applies it with apply_sql("functions/parley_kb_nearest.sql"); edit it only together
-- with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_nearest(
    p_tenant uuid, p_vector text, p_dims integer, p_model text, p_sources uuid[], p_k integer
) RETURNS TABLE (chunk_id uuid, score double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER
-- The planner's own choice, not the generic plan `parley_kb_search` would pass down (migration
-- 0016): the HNSW query depends on the values (the shard, LIMIT).
SET plan_cache_mode = auto
AS $fn$
#variable_conflict use_column
DECLARE
    v_shard smallint;
BEGIN
    -- The caller has bound the tenant (and, for HNSW, set the scan settings).
    SELECT t.vector_shard INTO v_shard FROM tenants t WHERE t.id = p_tenant;
    IF p_dims = 384 THEN
        RETURN QUERY
        SELECT n.chunk_id, 1.0::float8 - n.distance
        FROM (
            SELECT v.chunk_id,
                   v.embedding::vector(384) <=> CAST(p_vector AS vector(384)) AS distance
            FROM kb_vectors v
            WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = 384
              AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
            ORDER BY v.embedding::vector(384) <=> CAST(p_vector AS vector(384))
            LIMIT p_k
        ) n
        ORDER BY n.distance, n.chunk_id;
    ELSIF p_dims = 768 THEN
        RETURN QUERY
        SELECT n.chunk_id, 1.0::float8 - n.distance
        FROM (
            SELECT v.chunk_id,
                   v.embedding::vector(768) <=> CAST(p_vector AS vector(768)) AS distance
            FROM kb_vectors v
            WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = 768
              AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
            ORDER BY v.embedding::vector(768) <=> CAST(p_vector AS vector(768))
            LIMIT p_k
        ) n
        ORDER BY n.distance, n.chunk_id;
    ELSIF p_dims = 1024 THEN
        RETURN QUERY
        SELECT n.chunk_id, 1.0::float8 - n.distance
        FROM (
            SELECT v.chunk_id,
                   v.embedding::vector(1024) <=> CAST(p_vector AS vector(1024)) AS distance
            FROM kb_vectors v
            WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = 1024
              AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
            ORDER BY v.embedding::vector(1024) <=> CAST(p_vector AS vector(1024))
            LIMIT p_k
        ) n
        ORDER BY n.distance, n.chunk_id;
    ELSIF p_dims = 1536 THEN
        RETURN QUERY
        SELECT n.chunk_id, 1.0::float8 - n.distance
        FROM (
            SELECT v.chunk_id,
                   v.embedding::vector(1536) <=> CAST(p_vector AS vector(1536)) AS distance
            FROM kb_vectors v
            WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = 1536
              AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
            ORDER BY v.embedding::vector(1536) <=> CAST(p_vector AS vector(1536))
            LIMIT p_k
        ) n
        ORDER BY n.distance, n.chunk_id;
    ELSE  -- no HNSW index for this length: an exact scan of the tenant's vectors
        RETURN QUERY
        SELECT v.chunk_id, 1.0::float8 - (v.embedding <=> CAST(p_vector AS vector))
        FROM kb_vectors v
        WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = p_dims
          AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
        ORDER BY v.embedding <=> CAST(p_vector AS vector), v.chunk_id
        LIMIT p_k;
    END IF;
END
$fn$;
