-- BM25 over a workspace's chunks (the keyword leg's scorer). Decision 0009. Source file (decision
-- 0029): a migration applies it with apply_sql("functions/parley_kb_bm25.sql"); edit it only
-- together with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_bm25(
    p_tenant uuid, p_query text, p_cfg text, p_sources uuid[], p_k integer,
    p_k1 double precision, p_b double precision
) RETURNS TABLE (chunk_id uuid, score double precision, coverage double precision)
LANGUAGE sql STABLE SECURITY INVOKER AS $fn$
WITH q AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector(CAST(p_cfg AS regconfig), p_query))
),
s AS (
    SELECT chunks::float8 AS n,
           greatest(total_length::float8 / greatest(chunks, 1)::float8, 1.0::float8) AS avgdl
    FROM kb_stats WHERE tenant_id = p_tenant
),
w AS (
    SELECT q.lexeme, coalesce(t.df, 0) AS df,
           ln(1.0::float8 + (s.n - coalesce(t.df, 0)::float8 + 0.5::float8)
                          / (coalesce(t.df, 0)::float8 + 0.5::float8)) AS idf
    FROM q CROSS JOIN s
    LEFT JOIN kb_terms t ON t.tenant_id = p_tenant AND t.lexeme = q.lexeme
),
ceiling AS (
    SELECT greatest(sum(idf), 1e-9::float8) AS c FROM w
),
scored AS (
    SELECT p.chunk_id,
           sum(w.idf * p.tf::float8 * (p_k1 + 1.0::float8)
               / (p.tf::float8 + p_k1 * (1.0::float8 - p_b + p_b * p.dl::float8 / s.avgdl)))
             AS score
    FROM w
    JOIN kb_postings p ON p.tenant_id = p_tenant AND p.lexeme = w.lexeme
    CROSS JOIN s
    WHERE w.df > 0 AND (p_sources IS NULL OR p.source_id = ANY(p_sources))
    GROUP BY p.chunk_id
)
SELECT scored.chunk_id, scored.score, least(scored.score / ceiling.c, 1.0::float8)
FROM scored CROSS JOIN ceiling
ORDER BY scored.score DESC, scored.chunk_id
LIMIT p_k
$fn$;
