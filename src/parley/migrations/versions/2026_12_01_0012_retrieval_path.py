"""Retrieval in one round trip, and a vector table sharded by tenant.

* `tenants.vector_shard`: each workspace gets one of `SHARDS` shards, round robin in order of
  creation (a sequence), so workspaces spread evenly over them.
* `kb_vectors` becomes a table LIST-partitioned by that shard, with the per-dimension HNSW
  indexes on every partition. A tenant's vector search then walks only its own shard's graph:
  with as many shards as workspaces, the tenant filter costs nothing and recall is that of an
  unfiltered search; with more workspaces than shards, the filter only has to skip the few
  workspaces sharing a shard instead of all of them. (Hash partitioning on the tenant id would
  need no new column, but puts random ids unevenly: in our benchmark four of ten workspaces
  landed in one of sixteen partitions.)
* `parley_kb_bm25` (the BM25 leg), `parley_kb_nearest` (the vector leg, one static query per
  indexed dimension so each uses its partial index) and `parley_kb_search`, which binds the
  tenant, sets the HNSW scan settings for its transaction, runs both legs, fuses them (convex
  combination of min-max normalised scores, ties by chunk id, the same arithmetic as
  `knowledge.retrieval.fuse`) and returns the top `k` with their chunk and source fields.

All SECURITY INVOKER: they run as the application role under the tenant policies.
See docs/decisions/0009-retrieval-path.md.

Revision ID: 0012_retrieval_path
Revises: 0011_ingress_path
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import bind_tenant_sql, enable_tenant_rls, execute_script, grant

revision: str = "0012_retrieval_path"
down_revision: str | None = "0011_ingress_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 16
VECTOR_DIMS = (384, 768, 1024, 1536)  # as migration 0007
BM25_ARGS = "uuid, text, text, uuid[], integer, double precision, double precision"
NEAREST_ARGS = "uuid, text, integer, text, uuid[], integer"
SEARCH_ARGS = (
    "uuid, text, text, uuid[], integer, integer, integer, double precision, double precision, "
    "text, integer, text, double precision, integer, integer"
)

BM25 = """
CREATE FUNCTION parley_kb_bm25(
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
"""

_NEAREST_BRANCH = """
    {keyword} p_dims = {dims} THEN
        RETURN QUERY
        SELECT n.chunk_id, 1.0::float8 - n.distance
        FROM (
            SELECT v.chunk_id,
                   v.embedding::vector({dims}) <=> CAST(p_vector AS vector({dims})) AS distance
            FROM kb_vectors v
            WHERE v.shard = v_shard AND v.tenant_id = p_tenant AND v.dims = {dims}
              AND v.model = p_model AND (p_sources IS NULL OR v.source_id = ANY(p_sources))
            ORDER BY v.embedding::vector({dims}) <=> CAST(p_vector AS vector({dims}))
            LIMIT p_k
        ) n
        ORDER BY n.distance, n.chunk_id;"""


def _nearest() -> str:
    branches = "".join(
        _NEAREST_BRANCH.format(keyword="IF" if i == 0 else "ELSIF", dims=dims)
        for i, dims in enumerate(VECTOR_DIMS)
    )
    return f"""
CREATE FUNCTION parley_kb_nearest(
    p_tenant uuid, p_vector text, p_dims integer, p_model text, p_sources uuid[], p_k integer
) RETURNS TABLE (chunk_id uuid, score double precision)
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $fn$
#variable_conflict use_column
DECLARE
    v_shard smallint;
BEGIN
    -- The caller has bound the tenant (and, for HNSW, set the scan settings).
    SELECT t.vector_shard INTO v_shard FROM tenants t WHERE t.id = p_tenant;{branches}
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
"""


SEARCH = f"""
CREATE FUNCTION parley_kb_search(
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
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
BEGIN
    {bind_tenant_sql("p_tenant")}
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
"""

_COLUMNS = "tenant_id, chunk_id, source_id, model, dims, embedding"


def _vector_table(name: str, *, sharded: bool) -> str:
    shard = "shard smallint NOT NULL," if sharded else ""
    key = "tenant_id, chunk_id, shard" if sharded else "tenant_id, chunk_id"
    tail = " PARTITION BY LIST (shard)" if sharded else ""
    return f"""
        CREATE TABLE {name} (
            {shard}
            tenant_id uuid NOT NULL,
            chunk_id uuid NOT NULL,
            source_id uuid NOT NULL,
            model text NOT NULL,
            dims integer NOT NULL,
            embedding vector NOT NULL,
            CONSTRAINT pk_kb_vectors PRIMARY KEY ({key}),
            CONSTRAINT fk_kb_vectors_chunk FOREIGN KEY (tenant_id, chunk_id)
                REFERENCES kb_chunks (tenant_id, id) ON DELETE CASCADE,
            CONSTRAINT ck_kb_vectors_dims CHECK (vector_dims(embedding) = dims)
        ){tail}
    """


def _hnsw_indexes() -> None:
    for dims in VECTOR_DIMS:
        op.execute(
            f"CREATE INDEX ix_kb_vectors_hnsw_{dims} ON kb_vectors USING hnsw "
            f"((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
        )


def _has_vectors() -> bool:
    found = op.get_bind().execute(sa.text("SELECT to_regclass('kb_vectors') IS NOT NULL"))
    return bool(found.scalar())


def upgrade() -> None:
    op.execute("CREATE SEQUENCE tenant_vector_shard_seq AS bigint MINVALUE 0 START 0")
    op.execute(
        "ALTER TABLE tenants ADD COLUMN vector_shard smallint NOT NULL "
        f"DEFAULT (nextval('tenant_vector_shard_seq') % {SHARDS})"
    )
    grant("USAGE", "SEQUENCE tenant_vector_shard_seq")  # tenants are created as the app role
    if _has_vectors():
        op.execute("ALTER TABLE kb_vectors RENAME TO kb_vectors_unsharded")
        for constraint in ("pk_kb_vectors", "fk_kb_vectors_chunk", "ck_kb_vectors_dims"):
            op.execute(
                f"ALTER TABLE kb_vectors_unsharded RENAME CONSTRAINT {constraint} "
                f"TO {constraint}_unsharded"
            )
        for dims in VECTOR_DIMS:
            op.execute(f"DROP INDEX ix_kb_vectors_hnsw_{dims}")
        op.execute(_vector_table("kb_vectors", sharded=True))
        for shard in range(SHARDS):
            part = f"kb_vectors_s{shard:02d}"
            op.execute(f"CREATE TABLE {part} PARTITION OF kb_vectors FOR VALUES IN ({shard})")
            # Never reached by the application (it has no privilege on a partition), but
            # forced like every tenant table, in case it ever is.
            enable_tenant_rls(part)
        op.execute(
            f"INSERT INTO kb_vectors (shard, {_COLUMNS}) "
            f"SELECT t.vector_shard, {', '.join('v.' + c for c in _COLUMNS.split(', '))} "
            "FROM kb_vectors_unsharded v JOIN tenants t ON t.id = v.tenant_id"
        )
        op.execute("DROP TABLE kb_vectors_unsharded")
        _hnsw_indexes()
        enable_tenant_rls("kb_vectors")
        grant("SELECT, INSERT, UPDATE, DELETE", "kb_vectors")
        execute_script(_nearest())
        op.execute(f"REVOKE ALL ON FUNCTION parley_kb_nearest({NEAREST_ARGS}) FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION parley_kb_nearest({NEAREST_ARGS})")
    execute_script(BM25)
    execute_script(SEARCH)
    for fn in (f"parley_kb_bm25({BM25_ARGS})", f"parley_kb_search({SEARCH_ARGS})"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        grant("EXECUTE", f"FUNCTION {fn}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION parley_kb_search({SEARCH_ARGS})")
    op.execute(f"DROP FUNCTION parley_kb_bm25({BM25_ARGS})")
    if _has_vectors():
        op.execute(f"DROP FUNCTION parley_kb_nearest({NEAREST_ARGS})")
        op.execute("ALTER TABLE kb_vectors RENAME TO kb_vectors_sharded")
        for constraint in ("pk_kb_vectors", "fk_kb_vectors_chunk", "ck_kb_vectors_dims"):
            op.execute(
                f"ALTER TABLE kb_vectors_sharded RENAME CONSTRAINT {constraint} "
                f"TO {constraint}_sharded"
            )
        for dims in VECTOR_DIMS:
            op.execute(f"DROP INDEX ix_kb_vectors_hnsw_{dims}")
        op.execute(_vector_table("kb_vectors", sharded=False))
        op.execute(f"INSERT INTO kb_vectors ({_COLUMNS}) SELECT {_COLUMNS} FROM kb_vectors_sharded")
        op.execute("DROP TABLE kb_vectors_sharded")
        _hnsw_indexes()
        enable_tenant_rls("kb_vectors")
        grant("SELECT, INSERT, UPDATE, DELETE", "kb_vectors")
    op.execute("ALTER TABLE tenants DROP COLUMN vector_shard")
    op.execute("DROP SEQUENCE tenant_vector_shard_seq")
