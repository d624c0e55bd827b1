"""Plan a knowledge search once per connection, not once per search; and each leg of it
on its own, so that an idle server can run the two at once.

`parley_kb_search`'s statement (both legs, the fusion and the passages) left PostgreSQL's plan
cache to choose between a plan made for each call's values and one generic plan. It chose the
former every time, and planning that statement cost about 0.9 ms, a seventh of a search's
server time (P4). Its generic plan is the same plan: every value it takes is a tenant, lexeme
or id looked up through an index, so the values cannot change the shape. The function now
always runs its generic plan.

The setting would reach the functions it calls. `parley_kb_nearest` keeps the planner's own
choice (`auto`): its HNSW query depends on the values (the shard, `LIMIT`), and a generic plan
for it was slower than the plan it gets now.

`parley_kb_keyword_leg`, `parley_kb_vector_leg` and `parley_kb_passages` are the three parts
of `parley_kb_search` as statements of their own, each binding the tenant first:
`knowledge.retrieval.search` runs the two legs at once on two connections when nothing else is
searching in the process, fuses them with `fuse()` (the same arithmetic) and fetches the
passages. A search then takes about as long as its slower leg rather than both. Under load it
runs the one statement, which costs less in all. See decision 0013.

Revision ID: 0016_search_plans
Revises: 0015_usage_thresholds
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parley.migrations.rls import bind_tenant_sql, execute_script, grant

revision: str = "0016_search_plans"
down_revision: str | None = "0015_usage_thresholds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_ARGS = (
    "uuid, text, text, uuid[], integer, integer, integer, double precision, double precision, "
    "text, integer, text, double precision, integer, integer"
)  # as migration 0012
NEAREST_ARGS = "uuid, text, integer, text, uuid[], integer"
KEYWORD_LEG_ARGS = "uuid, text, text, uuid[], integer, double precision, double precision"
VECTOR_LEG_ARGS = "uuid, text, integer, text, uuid[], integer, integer, integer"
PASSAGES_ARGS = "uuid, uuid[]"

KEYWORD_LEG = f"""
CREATE FUNCTION parley_kb_keyword_leg(
    p_tenant uuid, p_query text, p_cfg text, p_sources uuid[], p_pool integer,
    p_k1 double precision, p_b double precision
) RETURNS TABLE (chunk_id uuid, score double precision, coverage double precision)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
BEGIN
    {bind_tenant_sql("p_tenant")}
    RETURN QUERY
    SELECT b.chunk_id, b.score, b.coverage
    FROM parley_kb_bm25(p_tenant, p_query, p_cfg, p_sources, p_pool, p_k1, p_b) b;
END
$fn$;
"""

VECTOR_LEG = f"""
CREATE FUNCTION parley_kb_vector_leg(
    p_tenant uuid, p_vector text, p_dims integer, p_model text, p_sources uuid[],
    p_pool integer, p_ef integer, p_max_tuples integer
) RETURNS TABLE (chunk_id uuid, score double precision)
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
#variable_conflict use_column
BEGIN
    {bind_tenant_sql("p_tenant")}
    PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('hnsw.ef_search', p_ef::text, true),
            set_config('hnsw.max_scan_tuples', p_max_tuples::text, true);
    RETURN QUERY
    SELECT n.chunk_id, n.score
    FROM parley_kb_nearest(p_tenant, p_vector, p_dims, p_model, p_sources, p_pool) n;
END
$fn$;
"""

PASSAGES = f"""
CREATE FUNCTION parley_kb_passages(p_tenant uuid, p_ids uuid[])
RETURNS TABLE (
    r_chunk_id uuid, r_source_id uuid, r_title text, r_url text, r_page integer,
    r_heading text, r_text text
)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    {bind_tenant_sql("p_tenant")}
    RETURN QUERY
    SELECT c.id, c.source_id, s.title::text, s.url, c.page, c.heading, c.text
    FROM kb_chunks c
    JOIN kb_sources s ON s.tenant_id = p_tenant AND s.id = c.source_id
    WHERE c.tenant_id = p_tenant AND c.id = ANY(p_ids);
END
$fn$;
"""


def _create(script: str, signature: str) -> None:
    execute_script(script)
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    grant("EXECUTE", f"FUNCTION {signature}")


def _has_nearest() -> bool:
    found = op.get_bind().execute(
        sa.text(f"SELECT to_regprocedure('parley_kb_nearest({NEAREST_ARGS})') IS NOT NULL")
    )
    return bool(found.scalar())


def upgrade() -> None:
    op.execute(
        f"ALTER FUNCTION parley_kb_search({SEARCH_ARGS}) SET plan_cache_mode = force_generic_plan"
    )
    _create(KEYWORD_LEG, f"parley_kb_keyword_leg({KEYWORD_LEG_ARGS})")
    _create(PASSAGES, f"parley_kb_passages({PASSAGES_ARGS})")
    if _has_nearest():  # only where pgvector is (migration 0012)
        op.execute(f"ALTER FUNCTION parley_kb_nearest({NEAREST_ARGS}) SET plan_cache_mode = auto")
        _create(VECTOR_LEG, f"parley_kb_vector_leg({VECTOR_LEG_ARGS})")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS parley_kb_vector_leg({VECTOR_LEG_ARGS})")
    op.execute(f"DROP FUNCTION parley_kb_passages({PASSAGES_ARGS})")
    op.execute(f"DROP FUNCTION parley_kb_keyword_leg({KEYWORD_LEG_ARGS})")
    if _has_nearest():
        op.execute(f"ALTER FUNCTION parley_kb_nearest({NEAREST_ARGS}) RESET plan_cache_mode")
    op.execute(f"ALTER FUNCTION parley_kb_search({SEARCH_ARGS}) RESET plan_cache_mode")
