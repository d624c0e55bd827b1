"""Retrieval: the one function bots, the search endpoint and the quality check all call.

Two legs: BM25 over our own postings (`bm25.py`) and, when pgvector and an embeddings
provider are configured, cosine nearest neighbours through HNSW (`vectors.py`). Each leg
proposes its top `CANDIDATES` chunks; the fusion is a convex combination of the legs'
normalised scores, `w·bm25 + (1−w)·vector` with `w = PARLEY_HYBRID_BM25_WEIGHT` (tuned on
SciFact's train split, `bench/p5_retrieval_quality.py`). A chunk one leg did not propose
gets 0 from that leg. Everything is deterministic — both legs order ties by chunk id, HNSW
walks the same graph the same way, and the fusion is plain arithmetic — so the console, the
API and the bots see the same ranking and scores for the same query and index.

Without pgvector or embeddings, or if the embeddings provider fails, the BM25 leg ranks alone
and the result says so (`mode = "keyword"`, `detail["notice"]`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog
from sqlalchemy import text

from parley.knowledge import bm25, vectors
from parley.knowledge.bm25 import Scored
from parley.knowledge.embeddings import EmbeddingsError, embedder_for

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)

CANDIDATES = 100  # per leg, before fusion

Normalisation = Literal["minmax", "max"]
# Per-leg score normalisation before the convex combination; min-max won on SciFact train
# (bench P5 reports both).
NORMALISATION: Normalisation = "minmax"
RRF_K = 60  # reciprocal rank fusion's constant: compared in the benchmark only
# Cosine similarity times this is the vector leg's relevance: 0.5 (a close paraphrase with
# all-MiniLM-L6-v2) reaches the 0.35 "answerable" threshold.
VECTOR_RELEVANCE_SCALE = 0.7


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
    bm25_score: float | None = None  # the leg's raw score; None when that leg missed it
    vector_score: float | None = None  # cosine similarity
    # 0..1: how well the passage answers the question — its BM25 coverage of the question's
    # terms (`bm25.Scored.coverage`) or its scaled cosine similarity, whichever is higher.
    # `knowledge.service.RELEVANCE_THRESHOLD` decides "answerable".
    relevance: float = 0.0


@dataclass
class SearchResult:
    items: list[Hit]
    mode: str  # "keyword" or "hybrid"
    latency_ms: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fused:
    chunk_id: uuid.UUID
    score: float
    bm25: float | None = None
    vector: float | None = None
    coverage: float = 0.0  # the keyword leg's coverage of the question (0 when it missed)

    @property
    def relevance(self) -> float:
        semantic = (self.vector or 0.0) * VECTOR_RELEVANCE_SCALE
        return round(min(1.0, max(self.coverage, semantic)), 6)


def normalised(scores: list[float], how: Normalisation) -> list[float]:
    """Scale one leg's candidate scores to [0, 1] so the two legs can be added."""
    if not scores:
        return []
    top, bottom = max(scores), min(scores)
    if how == "max":
        return [s / top if top > 0 else 0.0 for s in scores]
    if top == bottom:
        return [1.0 for _ in scores]
    return [(s - bottom) / (top - bottom) for s in scores]


def fuse(
    keyword: list[Scored],
    dense: list[Scored],
    *,
    weight: float,
    how: Normalisation = NORMALISATION,
) -> list[Fused]:
    """Convex fusion: `weight·norm(bm25) + (1−weight)·norm(cosine)`, best first, ties by id."""
    kw = dict(
        zip([s.chunk_id for s in keyword], normalised([s.score for s in keyword], how), strict=True)
    )
    vec = dict(
        zip([s.chunk_id for s in dense], normalised([s.score for s in dense], how), strict=True)
    )
    raw_kw = {s.chunk_id: s.score for s in keyword}
    raw_vec = {s.chunk_id: s.score for s in dense}
    coverage = {s.chunk_id: s.coverage for s in keyword}
    fused = [
        Fused(
            chunk_id=cid,
            score=weight * kw.get(cid, 0.0) + (1.0 - weight) * vec.get(cid, 0.0),
            bm25=raw_kw.get(cid),
            vector=raw_vec.get(cid),
            coverage=coverage.get(cid, 0.0),
        )
        for cid in kw.keys() | vec.keys()
    ]
    fused.sort(key=lambda f: (-f.score, f.chunk_id))
    return fused


def rrf(keyword: list[Scored], dense: list[Scored], *, k: int = RRF_K) -> list[Fused]:
    """Reciprocal rank fusion (`Σ 1/(k + rank)`), the usual alternative; benchmark only."""
    scores: dict[uuid.UUID, float] = {}
    for leg in (keyword, dense):
        for rank, s in enumerate(leg, start=1):
            scores[s.chunk_id] = scores.get(s.chunk_id, 0.0) + 1.0 / (k + rank)
    raw_kw = {s.chunk_id: s.score for s in keyword}
    raw_vec = {s.chunk_id: s.score for s in dense}
    fused = [Fused(cid, sc, raw_kw.get(cid), raw_vec.get(cid)) for cid, sc in scores.items()]
    fused.sort(key=lambda f: (-f.score, f.chunk_id))
    return fused


_HYDRATE = """
SELECT c.id, c.source_id, c.text, c.page, c.heading, s.title, s.url
FROM kb_chunks c JOIN kb_sources s ON s.tenant_id = c.tenant_id AND s.id = c.source_id
WHERE c.tenant_id = :tenant_id AND c.id = ANY(CAST(:ids AS uuid[]))
"""


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


async def hydrate(session: AsyncSession, tenant_id: TenantId, ranked: list[Fused]) -> list[Hit]:
    """Chunk text and source title for ranked chunk ids, in the ranked order."""
    if not ranked:
        return []
    rows = await session.execute(
        text(_HYDRATE), {"tenant_id": tenant_id, "ids": [f.chunk_id for f in ranked]}
    )
    by_id = {r.id: r for r in rows}
    hits: list[Hit] = []
    for f in ranked:
        r = by_id.get(f.chunk_id)
        if r is None:
            continue
        hits.append(
            Hit(
                chunk_id=f.chunk_id,
                source_id=r.source_id,
                title=r.title,
                text=r.text,
                score=round(f.score, 6),
                url=r.url,
                page=r.page,
                heading=r.heading,
                bm25_score=_rounded(f.bm25),
                vector_score=_rounded(f.vector),
                relevance=f.relevance,
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
    settings = runtime.settings
    cfg = settings.parley_text_search_config
    notice = _notice(runtime)
    embedder = embedder_for(runtime)
    query_vector: list[float] | None = None
    if embedder is not None and query.strip():
        try:
            query_vector = (await embedder.embed([query]))[0]
        except EmbeddingsError as exc:
            log.warning("knowledge.search.embeddings_failed", tenant_id=str(tenant_id))
            notice = f"{exc.detail} Retrieval fell back to keyword-only (BM25)."
    detail: dict[str, Any]
    if query_vector is None or embedder is None:
        keyword = await bm25.search(session, tenant_id, query, k=k, cfg=cfg, source_ids=source_ids)
        ranked = [Fused(s.chunk_id, s.score, bm25=s.score, coverage=s.coverage) for s in keyword]
        mode = "keyword"
        detail = {"mode": mode, "candidates": {"bm25": len(keyword)}, "notice": notice}
    else:
        pool = max(k, CANDIDATES)
        keyword = await bm25.search(
            session, tenant_id, query, k=pool, cfg=cfg, source_ids=source_ids
        )
        dense = await vectors.search(
            session, tenant_id, query_vector, k=pool, model=embedder.model, source_ids=source_ids
        )
        weight = settings.parley_hybrid_bm25_weight
        ranked = fuse(keyword, dense, weight=weight)[:k]
        mode = "hybrid"
        detail = {
            "mode": mode,
            "fusion": {"method": "convex", "normalisation": NORMALISATION, "bm25_weight": weight},
            "candidates": {"bm25": len(keyword), "vector": len(dense), "fused": len(ranked)},
            "embedder": {"name": embedder.name, "model": embedder.model},
            "notice": None,
        }
    items = await hydrate(session, tenant_id, ranked)
    detail["hits"] = [
        {
            "chunk_id": str(h.chunk_id),
            "score": h.score,
            "bm25": h.bm25_score,
            "vector": h.vector_score,
        }
        for h in items
    ]
    return SearchResult(
        items=items,
        mode=mode,
        latency_ms=(time.perf_counter() - started) * 1000,
        detail=detail,
    )


def _notice(runtime: Runtime) -> str | None:
    if not runtime.pgvector:
        return "pgvector is not available: retrieval is keyword-only (BM25)."
    if runtime.settings.parley_embeddings == "none":
        return "No embeddings provider is configured: retrieval is keyword-only (BM25)."
    return None
