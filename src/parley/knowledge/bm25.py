"""True BM25 in PostgreSQL, from our own term statistics (SPEC C6: not `ts_rank`).

Lexemes come from `to_tsvector` with the configured text-search configuration (stemming and
stop words per language). The index (see `parley.models.knowledge`) is maintained by
`index_version()` / `drop_version()` inside the ingestion job's transaction, and scored in one
statement, the SQL function `parley_kb_bm25` (migration 0012), that reads the postings' primary
key only. Constants are float8: a decimal literal would make PostgreSQL compute in `numeric`,
several times slower.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId

# Anserini's flat BM25 defaults, which reach 0.679 nDCG@10 on SciFact.
K1 = 0.9
B = 0.4


_INDEX = """
WITH lex AS (
    SELECT c.id AS chunk_id, c.source_id, t.lexeme,
           coalesce(array_length(t.positions, 1), 1) AS tf
    FROM kb_chunks c,
         unnest(to_tsvector(CAST(:cfg AS regconfig), coalesce(c.heading, '') || ' ' || c.text)) t
    WHERE c.tenant_id = :tenant_id AND c.source_id = :source_id AND c.index_version = :version
),
lengths AS (SELECT chunk_id, sum(tf)::int AS dl FROM lex GROUP BY chunk_id),
postings AS (
    INSERT INTO kb_postings (tenant_id, lexeme, chunk_id, source_id, tf, dl)
    SELECT :tenant_id, lex.lexeme, lex.chunk_id, lex.source_id, lex.tf, lengths.dl
    FROM lex JOIN lengths USING (chunk_id)
    RETURNING lexeme
),
terms AS (
    INSERT INTO kb_terms (tenant_id, lexeme, df)
    SELECT :tenant_id, lexeme, count(*) FROM postings GROUP BY lexeme ORDER BY lexeme
    ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = kb_terms.df + excluded.df
    RETURNING 1
)
INSERT INTO kb_stats (tenant_id, chunks, total_length)
SELECT :tenant_id, count(*), coalesce(sum(dl), 0) FROM lengths
ON CONFLICT (tenant_id) DO UPDATE
SET chunks = kb_stats.chunks + excluded.chunks,
    total_length = kb_stats.total_length + excluded.total_length
RETURNING (SELECT count(*) FROM terms) AS terms, (SELECT count(*) FROM lengths) AS chunks
"""

_DROP = """
WITH gone AS (
    DELETE FROM kb_postings p
    USING kb_chunks c
    WHERE p.tenant_id = :tenant_id AND c.tenant_id = :tenant_id AND p.chunk_id = c.id
      AND c.source_id = :source_id AND c.index_version = :version
    RETURNING p.lexeme, p.chunk_id, p.dl
),
terms AS (
    UPDATE kb_terms t SET df = t.df - g.n
    FROM (SELECT lexeme, count(*) AS n FROM gone GROUP BY lexeme ORDER BY lexeme) g
    WHERE t.tenant_id = :tenant_id AND t.lexeme = g.lexeme
    RETURNING 1
),
lengths AS (SELECT DISTINCT chunk_id, dl FROM gone)
UPDATE kb_stats SET
    chunks = chunks - (SELECT count(*) FROM lengths),
    total_length = total_length - (SELECT coalesce(sum(dl), 0) FROM lengths)
WHERE tenant_id = :tenant_id AND (SELECT count(*) FROM terms) >= 0
"""

# The scoring statement is the SQL function `parley_kb_bm25` (migration 0012), shared with
# `parley_kb_search`, which runs it as the keyword leg of a hybrid search.
_SEARCH = """
SELECT chunk_id, score, coverage
FROM parley_kb_bm25(:tenant_id, :query, :cfg, CAST(:sources AS uuid[]), :k, :k1, :b)
"""


@dataclass(frozen=True)
class Scored:
    chunk_id: uuid.UUID
    score: float
    # The score over the sum of the query terms' idf (unseen terms at the highest idf), capped
    # at 1: about how much of the question this chunk covers (1 = every term, once, in a chunk
    # of average length). Used to tell "nothing relevant" apart from a weak match.
    coverage: float = 0.0


async def index_version(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID, version: int, *, cfg: str
) -> int:
    """Add one version of a source's chunks to the index; returns the number of chunks."""
    row = (
        await session.execute(
            text(_INDEX),
            {"tenant_id": tenant_id, "source_id": source_id, "version": version, "cfg": cfg},
        )
    ).one_or_none()
    return int(row.chunks) if row is not None else 0


async def drop_version(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID, version: int
) -> None:
    """Take one version of a source's chunks out of the index (the chunks themselves stay).
    Terms whose frequency drops to 0 are kept (and skipped by `search`): deleting them would
    scan the tenant's vocabulary on every removal."""
    await session.execute(
        text(_DROP), {"tenant_id": tenant_id, "source_id": source_id, "version": version}
    )


async def search(
    session: AsyncSession,
    tenant_id: TenantId,
    query: str,
    *,
    k: int,
    cfg: str,
    source_ids: list[uuid.UUID] | None = None,
    k1: float = K1,
    b: float = B,
) -> list[Scored]:
    """The top `k` active chunks by BM25, ties broken by chunk id (deterministic)."""
    rows = await session.execute(
        text(_SEARCH),
        {
            "tenant_id": tenant_id,
            "query": query,
            "cfg": cfg,
            "k": k,
            "k1": float(k1),
            "b": float(b),
            "sources": source_ids,
        },
    )
    return [Scored(r.chunk_id, float(r.score), float(r.coverage)) for r in rows]
