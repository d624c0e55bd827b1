"""Retrieval: the one function bots, the search endpoint and the quality check all call.

Today the keyword leg (BM25) ranks alone; the vector leg and the fusion plug in here, so the
console, the API and the bots always see the same ranking for the same query and index.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from parley.knowledge import bm25

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime

CANDIDATES = 100  # per leg, before fusion


@dataclass(frozen=True)
class Hit:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    title: str
    text: str
    score: float
    url: str | None = None
    page: int | None = None
    heading: str | None = None
    # 0..1: how much of the question the passage covers (BM25 coverage, see `bm25.Scored`);
    # below `service.RELEVANCE_THRESHOLD` a passage does not count as an answer.
    relevance: float = 0.0


@dataclass
class SearchResult:
    items: list[Hit]
    mode: str  # "keyword" or "hybrid"
    latency_ms: float
    detail: dict[str, Any] = field(default_factory=dict)


_HYDRATE = """
SELECT c.id, c.source_id, c.text, c.page, c.heading, s.title, s.url
FROM kb_chunks c JOIN kb_sources s ON s.tenant_id = c.tenant_id AND s.id = c.source_id
WHERE c.tenant_id = :tenant_id AND c.id = ANY(CAST(:ids AS uuid[]))
"""


async def hydrate(
    session: AsyncSession,
    tenant_id: TenantId,
    scored: list[tuple[uuid.UUID, float]],
    relevance: dict[uuid.UUID, float] | None = None,
) -> list[Hit]:
    """Chunk text and source title for ranked chunk ids, in the ranked order."""
    if not scored:
        return []
    rows = await session.execute(
        text(_HYDRATE), {"tenant_id": tenant_id, "ids": [cid for cid, _ in scored]}
    )
    by_id = {r.id: r for r in rows}
    hits: list[Hit] = []
    for chunk_id, score in scored:
        r = by_id.get(chunk_id)
        if r is None:
            continue
        hits.append(
            Hit(
                chunk_id=chunk_id,
                source_id=r.source_id,
                title=r.title,
                text=r.text,
                score=round(score, 6),
                url=r.url,
                page=r.page,
                heading=r.heading,
                relevance=(relevance or {}).get(chunk_id, 0.0),
            )
        )
    return hits


async def search(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    query: str,
    *,
    k: int,
    source_ids: list[uuid.UUID] | None = None,
) -> SearchResult:
    """The top `k` passages for `query` among the tenant's (or the given sources') chunks."""
    started = time.perf_counter()
    cfg = runtime.settings.parley_text_search_config
    keyword = await bm25.search(session, tenant_id, query, k=k, cfg=cfg, source_ids=source_ids)
    items = await hydrate(
        session,
        tenant_id,
        [(s.chunk_id, s.score) for s in keyword],
        {s.chunk_id: s.coverage for s in keyword},
    )
    return SearchResult(
        items=items,
        mode="keyword",
        latency_ms=(time.perf_counter() - started) * 1000,
        detail={"bm25": len(keyword), "notice": _notice(runtime)},
    )


def _notice(runtime: Runtime) -> str | None:
    if not runtime.pgvector:
        return "pgvector is not available: retrieval is keyword-only (BM25)."
    if runtime.settings.parley_embeddings == "none":
        return "No embeddings provider is configured: retrieval is keyword-only (BM25)."
    return None
