-- Hybrid knowledge search in one round trip: BM25 and vector legs, convex fusion, passages. Its
-- fusion has a Python twin (`knowledge.retrieval.fuse`), compared by
-- tests/knowledge/test_fusion_twin.py. Decision 0009, migration 0016. SECURITY INVOKER: the first statement
-- binds the tenant for the calling transaction, so the tenant policies (RLS) filter everything it
-- reads or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_kb_search.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_search(
    p_tenant uuid, p_query text, p_cfg text, p_sources uuid[], p_k integer,
    p_pool integer,            -- BM25 candidates before fusion
    p_vector_pool integer,     -- vector candidates before fusion
    p_k1 double precision, p_b double precision,
    p_vector text,             -- NULL: keyword-only (BM25 alone)
    p_dims integer, p_model text,
    p_weight double precision, -- the BM25 leg's weight in the convex fusion
    p_ef integer, p_max_tuples integer
) RETURNS TABLE (
    r_chunk_id uuid, r_source_id uuid, r_title text, r_url text, r_page integer,
    r_heading text, r_text text, r_score double precision, r_bm25 double precision,
    r_vector double precision, r_coverage double precision,
    r_bm25_candidates integer, r_vector_candidates integer
)
LANGUAGE plpgsql SECURITY INVOKER
-- Always the generic plan (migration 0016, decision 0013): every value is a tenant, lexeme or id
-- looked up through an index, so the values cannot change the plan's shape, and planning the
-- statement per call cost a seventh of a search's server time (P4).
SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    IF p_vector IS NULL THEN
        RETURN QUERY
        WITH kw AS MATERIALIZED (
            SELECT b.chunk_id, b.score, b.coverage
            FROM parley_kb_bm25(p_tenant, p_query, p_cfg, p_sources, p_k, p_k1, p_b) b
        )
        SELECT kw.chunk_id, c.source_id, s.title::text, s.url, c.page, c.heading, c.text,
               kw.score, kw.score, NULL::float8, kw.coverage,
               (SELECT count(*) FROM kw)::integer, 0
        FROM kw
        JOIN kb_chunks c ON c.tenant_id = p_tenant AND c.id = kw.chunk_id
        JOIN kb_sources s ON s.tenant_id = p_tenant AND s.id = c.source_id
        ORDER BY kw.score DESC, kw.chunk_id;
        RETURN;
    END IF;
    -- Local to this transaction: a pooled connection's reset can neither lose them
    -- mid-transaction nor leak them into the next one.
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', p_ef::text, true),
            set_config('hnsw.max_scan_tuples', p_max_tuples::text, true);
    RETURN QUERY
    WITH kw AS MATERIALIZED (
        SELECT b.chunk_id, b.score, b.coverage
        FROM parley_kb_bm25(p_tenant, p_query, p_cfg, p_sources, p_pool, p_k1, p_b) b
    ),
    vec AS MATERIALIZED (
        SELECT n.chunk_id, n.score
        FROM parley_kb_nearest(p_tenant, p_vector, p_dims, p_model, p_sources, p_vector_pool) n
    ),
    kw_range AS (SELECT max(score) AS top, min(score) AS bottom FROM kw),
    vec_range AS (SELECT max(score) AS top, min(score) AS bottom FROM vec),
    kw_norm AS (
        SELECT kw.chunk_id, kw.score, kw.coverage,
               CASE WHEN r.top = r.bottom THEN 1.0::float8
                    ELSE (kw.score - r.bottom) / (r.top - r.bottom) END AS norm
        FROM kw CROSS JOIN kw_range r
    ),
    vec_norm AS (
        SELECT vec.chunk_id, vec.score,
               CASE WHEN r.top = r.bottom THEN 1.0::float8
                    ELSE (vec.score - r.bottom) / (r.top - r.bottom) END AS norm
        FROM vec CROSS JOIN vec_range r
    ),
    fused AS (
        SELECT coalesce(k.chunk_id, v.chunk_id) AS chunk_id,
               p_weight * coalesce(k.norm, 0.0::float8)
                 + (1.0::float8 - p_weight) * coalesce(v.norm, 0.0::float8) AS score,
               k.score AS bm25, v.score AS vector, coalesce(k.coverage, 0.0::float8) AS coverage
        FROM kw_norm k FULL JOIN vec_norm v ON v.chunk_id = k.chunk_id
        ORDER BY 2 DESC, 1
        LIMIT p_k
    )
    SELECT f.chunk_id, c.source_id, s.title::text, s.url, c.page, c.heading, c.text,
           f.score, f.bm25, f.vector, f.coverage,
           (SELECT count(*) FROM kw)::integer, (SELECT count(*) FROM vec)::integer
    FROM fused f
    JOIN kb_chunks c ON c.tenant_id = p_tenant AND c.id = f.chunk_id
    JOIN kb_sources s ON s.tenant_id = p_tenant AND s.id = c.source_id
    ORDER BY f.score DESC, f.chunk_id;
END
$fn$;
