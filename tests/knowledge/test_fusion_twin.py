"""The one place the search fusion has two implementations, compared on generated inputs.

`parley_kb_search` fuses the two legs in SQL (one round trip); `retrieval.fuse` is the same
convex fusion in Python, used when the legs run at once on two connections and by the P5
benchmark. Rather than trusting that both were written alike, this runs the fusion text of
`src/parley/sql/functions/parley_kb_search.sql` itself on candidate lists Hypothesis draws
(ties, one-sided hits, single candidates, empty legs) and asserts the same ranking, scores,
raw leg scores and coverage as `fuse()` (decision 0029)."""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.kit.jobs import asyncpg_dsn
from parley.knowledge import retrieval
from parley.knowledge.bm25 import Scored
from parley.migrations.sqlsource import read_sql
from tests.conftest import DatabaseUnderTest


def _fusion_statement() -> str:
    """The fusion CTEs of `parley_kb_search`, verbatim, over the legs given as arrays."""
    text = read_sql("functions/parley_kb_search.sql")
    match = re.search(r"\n(\s*kw_range AS \(.*?LIMIT p_k\n\s*\))", text, re.S)
    assert match, "parley_kb_search.sql changed shape: update the fusion twin test"
    fusion = re.sub(r"\bp_weight\b", "$6::float8", match.group(1))
    fusion = re.sub(r"\bp_k\b", "$7::integer", fusion)
    return (
        "WITH kw AS (SELECT * FROM unnest($1::uuid[], $2::float8[], $3::float8[])"
        " AS t(chunk_id, score, coverage)),\n"
        "vec AS (SELECT * FROM unnest($4::uuid[], $5::float8[]) AS t(chunk_id, score)),\n"
        f"{fusion}\n"
        "SELECT chunk_id, score, bm25, vector, coverage FROM fused ORDER BY score DESC, chunk_id"
    )


IDS = [uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % (1 << 128)) for i in range(1, 13)]
SCORE = st.one_of(
    st.sampled_from([0.0, 1.0, 2.5]),  # ties on purpose
    st.floats(min_value=0.0, max_value=40.0, allow_nan=False, allow_subnormal=False),
)
COSINE = st.one_of(
    st.sampled_from([0.5, 0.25]),
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def legs(draw: st.DrawFn) -> tuple[list[Scored], list[Scored], float, int]:
    kw_ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=8))
    vec_ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=8))
    coverage = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    keyword = [Scored(cid, draw(SCORE), draw(coverage)) for cid in kw_ids]
    dense = [Scored(cid, draw(COSINE)) for cid in vec_ids]
    weight = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]) | st.floats(0.0, 1.0))
    return keyword, dense, weight, draw(st.integers(min_value=1, max_value=12))


async def _sql_fuse(
    url: str, keyword: list[Scored], dense: list[Scored], weight: float, k: int
) -> list[tuple[uuid.UUID, float, float | None, float | None, float]]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            _fusion_statement(),
            [s.chunk_id for s in keyword],
            [s.score for s in keyword],
            [s.coverage for s in keyword],
            [s.chunk_id for s in dense],
            [s.score for s in dense],
            weight,
            k,
        )
    finally:
        await conn.close()
    return [(r["chunk_id"], r["score"], r["bm25"], r["vector"], r["coverage"]) for r in rows]


def test_the_sql_fusion_and_fuse_agree_on_generated_legs(test_db: DatabaseUnderTest) -> None:
    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(legs())
    def agree(case: tuple[list[Scored], list[Scored], float, int]) -> None:
        keyword, dense, weight, k = case
        expected = [
            (f.chunk_id, f.score, f.bm25, f.vector, f.coverage)
            for f in retrieval.fuse(keyword, dense, weight=weight, how="minmax")[:k]
        ]
        assert asyncio.run(_sql_fuse(test_db.app_url, keyword, dense, weight, k)) == expected

    agree()
