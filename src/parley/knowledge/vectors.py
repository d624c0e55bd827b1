"""The vector leg: chunk embeddings in pgvector, searched through a per-dimension HNSW index.

`kb_vectors` exists only where pgvector does (migration 0007). It is partitioned by the
workspace's `tenants.vector_shard` (migration 0012), so a search walks only its shard's graph
rather than every workspace's. Each partition has one partial HNSW index per supported
dimension, on `embedding::vector(D)` where `dims = D`; the search function
`parley_kb_nearest` has one static query per dimension with exactly that expression and
predicate, so the planner takes the index. Each vector carries its model's name: vectors of
another model are never compared with the query.

What the shard does not separate (workspaces sharing a shard, a bot's source filter) is
filtered on the HNSW scan's output. Plain HNSW stops after `ef_search` candidates, so a small
workspace would get few or no rows; pgvector ≥ 0.8's iterative scan keeps walking the graph
until `k` rows pass the filter. Both settings are `SET LOCAL`: asyncpg's pool reset
(`RESET ALL`) would silently drop session settings.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import text

from parley.knowledge.bm25 import Scored

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.kit.db import TenantId
    from parley.knowledge.embeddings import Embedder

INDEXED_DIMS = (384, 768, 1024, 1536)  # migration 0007's partial HNSW indexes
# The candidate list per graph walk. A search for more rows than this raises it to that
# number (`ef_search`); the iterative scan walks on when a filter drops rows. Over P4's 100k
# chunks, recall@10 inside a workspace's shard against an exact search is 0.92 at 40 (pgvector's
# default), 0.94 at 64 and 0.97 at 100, for 0.7 ms more per walk than 64; 200 costs twice that.
# A lone hybrid search walks while its BM25 leg runs (decision 0014).
EF_SEARCH = 100
MAX_SCAN_TUPLES = 40_000  # how far an iterative scan may walk before giving up
INSERT_ROWS = 256  # vectors per INSERT statement

_CHUNKS = """
SELECT id, coalesce(heading, '') AS heading, text
FROM kb_chunks
WHERE tenant_id = :tenant_id AND source_id = :source_id AND index_version = :version
ORDER BY ordinal, id
"""

_INSERT = """
INSERT INTO kb_vectors (shard, tenant_id, chunk_id, source_id, model, dims, embedding)
SELECT (SELECT vector_shard FROM tenants WHERE id = :tenant_id),
       :tenant_id, v.chunk_id, :source_id, :model, :dims, CAST(v.embedding AS vector)
FROM unnest(CAST(:ids AS uuid[]), CAST(:vectors AS text[])) AS v(chunk_id, embedding)
ON CONFLICT (tenant_id, chunk_id, shard) DO UPDATE
SET model = excluded.model, dims = excluded.dims, embedding = excluded.embedding
"""

_DROP = """
DELETE FROM kb_vectors v
USING kb_chunks c
WHERE v.shard = (SELECT vector_shard FROM tenants WHERE id = :tenant_id)
  AND v.tenant_id = :tenant_id AND c.tenant_id = :tenant_id AND v.chunk_id = c.id
  AND c.source_id = :source_id AND c.index_version = :version
"""


_SEARCH = text(
    "SELECT chunk_id, score FROM parley_kb_nearest(:tenant_id, :q, :dims, :model, "
    "CAST(:sources AS uuid[]), :k)"
)


# SET LOCAL, in one round trip: local to this transaction, so a pooled connection's reset can
# neither lose them mid-transaction nor leak them into the next one.
_SETTINGS = text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
    " set_config('hnsw.ef_search', :ef, true),"
    " set_config('hnsw.max_scan_tuples', :tuples, true)"
)


def ef_search(k: int) -> int:
    """The HNSW candidate list for a search of `k` rows (pgvector accepts 1..1000)."""
    return min(1000, max(EF_SEARCH, k))


@lru_cache(maxsize=16)
def _format(dims: int) -> str:
    return "[" + ",".join(["%.9g"] * dims) + "]"


def literal(vector: list[float]) -> str:
    """pgvector's text form. pgvector stores single precision, so each value is rounded to it
    first and written with the 9 significant digits that identify a float32 exactly: the server
    stores what `repr` of the double would have given it, and the text is made in one C-level
    formatting call (a quarter of the time `repr` per value took: it was the largest Python
    cost of a hybrid search)."""
    values = np.asarray(vector, dtype=np.float32).tolist()
    return _format(len(values)) % tuple(values)


def chunk_text(heading: str, body: str) -> str:
    """What is embedded for a chunk: its heading (context) and its text, as BM25 indexes it."""
    return f"{heading}\n{body}" if heading else body


async def embed_texts(embedder: Embedder, texts: list[str]) -> dict[str, list[float]]:
    """Vectors of the distinct `texts`, asked for `embedder.batch_size` at a time (so a chat's
    query waits for one slice at most, and concurrent jobs' slices share the model's batches)."""
    unique = list(dict.fromkeys(texts))
    out: dict[str, list[float]] = {}
    step = max(1, embedder.batch_size)
    for start in range(0, len(unique), step):
        part = unique[start : start + step]
        out.update(zip(part, await embedder.embed(part), strict=True))
    return out


async def index_vectors(
    session: AsyncSession,
    embedder: Embedder,
    tenant_id: TenantId,
    source_id: uuid.UUID,
    version: int,
    known: dict[str, list[float]] | None = None,
) -> int:
    """Store the vectors of one version of a source's chunks (heading + text) in `kb_vectors`;
    returns the number written. `known` holds vectors computed before the transaction (an
    ingestion job embeds before it locks anything); the rest are embedded here. Idempotent: a
    retried job overwrites its rows."""
    rows = (
        await session.execute(
            text(_CHUNKS), {"tenant_id": tenant_id, "source_id": source_id, "version": version}
        )
    ).all()
    texts = [chunk_text(r.heading, r.text) for r in rows]
    found = dict(known or {})
    missing = [t for t in texts if t not in found]
    if missing:
        found.update(await embed_texts(embedder, missing))
    for start in range(0, len(rows), INSERT_ROWS):
        batch = rows[start : start + INSERT_ROWS]
        batch_vectors = [found[t] for t in texts[start : start + INSERT_ROWS]]
        await session.execute(
            text(_INSERT),
            {
                "tenant_id": tenant_id,
                "source_id": source_id,
                "model": embedder.model,
                "dims": len(batch_vectors[0]),
                "ids": [r.id for r in batch],
                "vectors": [literal(v) for v in batch_vectors],
            },
        )
    return len(rows)


async def drop_vectors(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID, version: int
) -> None:
    """Remove the vectors of one version of a source (its chunks stay, for a restore)."""
    await session.execute(
        text(_DROP), {"tenant_id": tenant_id, "source_id": source_id, "version": version}
    )


async def search(
    session: AsyncSession,
    tenant_id: TenantId,
    query_vector: list[float],
    *,
    k: int,
    model: str,
    source_ids: list[uuid.UUID] | None = None,
    dims: int | None = None,
) -> list[Scored]:
    """The `k` chunks nearest to `query_vector` by cosine (score = 1 − distance), ties broken
    by chunk id. Must run inside the caller's transaction (the `SET LOCAL`s live there)."""
    dims = dims or len(query_vector)
    if len(query_vector) != dims:
        raise ValueError(f"query vector has {len(query_vector)} dimensions, expected {dims}")
    params = {
        "tenant_id": tenant_id,
        "q": literal(query_vector),
        "k": k,
        "model": model,
        "sources": source_ids,
        "dims": dims,
    }
    if dims in INDEXED_DIMS:  # otherwise no HNSW index for this length: an exact scan
        await session.execute(_SETTINGS, {"ef": str(ef_search(k)), "tuples": str(MAX_SCAN_TUPLES)})
    rows = await session.execute(_SEARCH, params)
    return [Scored(r.chunk_id, float(r.score)) for r in rows]
