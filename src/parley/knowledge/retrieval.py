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

import asyncio
import dataclasses
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog

from parley.kit.db import Database, driver_statement
from parley.knowledge import bm25, vectors
from parley.knowledge.bm25 import Scored
from parley.knowledge.embeddings import EmbeddingsError, embedder_for
from parley.knowledge.rerank import Reranker, RerankError, reranker_for

if TYPE_CHECKING:
    from collections.abc import Mapping

    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)

CANDIDATES = 100  # BM25 candidates before fusion (its cost hardly depends on this)
# Vector candidates before fusion: the HNSW walk's cost grows with it (ef_search ≥ this).
VECTOR_CANDIDATES = 50

Normalisation = Literal["minmax", "max"]
# Per-leg score normalisation before the convex combination; min-max won on SciFact train
# (bench P5 reports both).
NORMALISATION: Normalisation = "minmax"
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
    # With a reranker: the fusion's score (then `score` is the reranker's, which orders).
    fused_score: float | None = None
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
        return relevance(self.coverage, self.vector)


def relevance(coverage: float, cosine: float | None) -> float:
    """`Hit.relevance`: the keyword coverage or the scaled cosine, whichever is higher."""
    return round(min(1.0, max(coverage, (cosine or 0.0) * VECTOR_RELEVANCE_SCALE)), 6)


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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


_PARAMS = (
    "tenant_id",
    "query",
    "cfg",
    "sources",
    "k",
    "pool",
    "vector_pool",
    "k1",
    "b",
    "vector",
    "dims",
    "model",
    "weight",
    "ef",
    "max_tuples",
)  # fmt: skip  (parley_kb_search's arguments, in order)
_SEARCH = (
    "SELECT * FROM parley_kb_search($1, $2, $3, $4::uuid[], $5, $6, $7, $8, $9, $10, $11, $12, "
    "$13, $14, $15)"
)
_KEYWORD_LEG = (
    "SELECT chunk_id, score, coverage FROM parley_kb_keyword_leg($1, $2, $3, $4, $5, $6, $7)"
)
_VECTOR_LEG = "SELECT chunk_id, score FROM parley_kb_vector_leg($1, $2, $3, $4, $5, $6, $7, $8)"
_PASSAGES = "SELECT * FROM parley_kb_passages($1, $2)"
_searching = 0  # searches running in this process (see `_in_parallel`)


async def search(
    db: Database,
    runtime: Runtime,
    tenant_id: TenantId,
    query: str,
    *,
    k: int,
    source_ids: list[uuid.UUID] | None = None,
    parallel: bool | None = None,
) -> SearchResult:
    """The top `k` passages for `query` among the tenant's (or the given sources') chunks.

    One round trip: `parley_kb_search` (migration 0012) runs both legs, fuses them with the
    arithmetic of `fuse()` and returns the passages. It binds the tenant itself and reads only
    committed data, so it runs outside any transaction, on the hot paths' driver pool
    (`kit.db.driver_statement`: a quarter of the Python time of a SQLAlchemy statement, P4).
    A hybrid search runs its two legs at once instead when `parallel` says so, or by default
    when no other search is running in the process (`_in_parallel`). With a reranker, the
    first `PARLEY_RERANK_CANDIDATES` fused passages are reordered by its scores (`_rerank`)."""
    started = time.perf_counter()
    settings = runtime.settings
    notice = _notice(runtime)
    embedder = embedder_for(runtime)
    query_vector: list[float] | None = None
    if embedder is not None and query.strip():
        try:
            query_vector = (await embedder.embed([query]))[0]
        except EmbeddingsError as exc:
            log.warning("knowledge.search.embeddings_failed", tenant_id=str(tenant_id))
            notice = f"{exc.detail} Retrieval fell back to keyword-only (BM25)."
    hybrid = query_vector is not None and embedder is not None
    reranker = reranker_for(runtime) if query.strip() else None
    fetched = max(k, settings.parley_rerank_candidates) if reranker is not None else k
    pool = max(fetched, CANDIDATES)
    vector_pool = max(k, VECTOR_CANDIDATES)
    weight = settings.parley_hybrid_bm25_weight
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "query": query,
        "cfg": settings.parley_text_search_config,
        "sources": source_ids,
        "k": fetched,
        "pool": pool,
        "vector_pool": vector_pool,
        "k1": bm25.K1,
        "b": bm25.B,
        "vector": vectors.literal(query_vector) if query_vector is not None else None,
        "dims": len(query_vector) if query_vector is not None else None,
        "model": embedder.model if embedder is not None else None,
        "weight": weight,
        "ef": vectors.ef_search(vector_pool),
        "max_tuples": vectors.MAX_SCAN_TUPLES,
    }
    global _searching
    two_legs = hybrid and (_searching == 0 if parallel is None else parallel)
    _searching += 1
    try:
        rows = await (_in_parallel(db, params) if two_legs else _one_statement(db, params))
    finally:
        _searching -= 1
    items = [
        Hit(
            chunk_id=r["r_chunk_id"],
            source_id=r["r_source_id"],
            title=r["r_title"],
            text=r["r_text"],
            score=round(r["r_score"], 6),
            url=r["r_url"],
            page=r["r_page"],
            heading=r["r_heading"],
            bm25_score=_rounded(r["r_bm25"]),
            vector_score=_rounded(r["r_vector"]),
            relevance=relevance(r["r_coverage"], r["r_vector"]),
        )
        for r in rows
    ]
    reranked: dict[str, Any] | None = None
    if reranker is not None and items:
        try:
            items = await _rerank(reranker, query, items)
            reranked = {"model": reranker.model, "candidates": len(items)}
        except RerankError as exc:
            log.warning("knowledge.search.rerank_failed", tenant_id=str(tenant_id))
            failed = f"{exc.detail} The results are in the fusion's order."
            notice = f"{notice} {failed}" if notice else failed
    items = items[:k]
    keyword_candidates = rows[0]["r_bm25_candidates"] if rows else 0
    detail: dict[str, Any]
    if hybrid and embedder is not None:
        detail = {
            "mode": "hybrid",
            "fusion": {"method": "convex", "normalisation": NORMALISATION, "bm25_weight": weight},
            "candidates": {
                "bm25": keyword_candidates,
                "vector": rows[0]["r_vector_candidates"] if rows else 0,
                "fused": len(items),
            },
            "embedder": {"name": embedder.name, "model": embedder.model},
            "notice": notice,  # hybrid: None unless the reranker failed
        }
    else:
        detail = {"mode": "keyword", "candidates": {"bm25": keyword_candidates}, "notice": notice}
    if reranker is not None:
        detail["rerank"] = reranked  # None: the reranker failed (see the notice)
    detail["hits"] = [
        {
            "chunk_id": str(h.chunk_id),
            "score": h.score,
            "bm25": h.bm25_score,
            "vector": h.vector_score,
            **({"fused": h.fused_score} if reranked is not None else {}),
        }
        for h in items
    ]
    return SearchResult(
        items=items,
        mode=str(detail["mode"]),
        latency_ms=(time.perf_counter() - started) * 1000,
        detail=detail,
    )


async def _rerank(reranker: Reranker, query: str, items: list[Hit]) -> list[Hit]:
    """The fused candidates in the reranker's order, each scored by it; ties keep the fusion's
    order, so the ranking stays deterministic."""
    scores = await reranker.rerank(
        query, [vectors.chunk_text(h.heading or "", h.text) for h in items]
    )
    order = sorted(range(len(items)), key=lambda i: (-scores[i], i))
    # A passage the server left out sorts last and shows the lowest score it gave.
    floor = min((x for x in scores if math.isfinite(x)), default=0.0)
    return [
        dataclasses.replace(
            items[i],
            score=round(scores[i] if math.isfinite(scores[i]) else floor, 6),
            fused_score=items[i].score,
        )
        for i in order
    ]


async def _one_statement(db: Database, params: dict[str, Any]) -> list[Mapping[str, Any]]:
    async with driver_statement(db) as conn:
        return list(await conn.fetch(_SEARCH, *(params[p] for p in _PARAMS)))


async def _in_parallel(db: Database, params: dict[str, Any]) -> list[Mapping[str, Any]]:
    """`parley_kb_search` in three statements: both legs at once on two connections, fused here
    with `fuse()` (the statement's arithmetic, `test_the_database_fuses_exactly_as_fuse_does`),
    then the passages of the top `k`. When the process runs no other search, its second core
    (or the database's) is idle, and a search then takes about as long as its slower leg
    instead of both (P4's latency). Under load the one statement is cheaper in all, so
    `search` runs that whenever another search is in flight. Same rows as the statement."""
    p = params

    async def keyword() -> list[Scored]:
        async with driver_statement(db) as conn:
            found = await conn.fetch(
                _KEYWORD_LEG, p["tenant_id"], p["query"], p["cfg"], p["sources"], p["pool"],
                p["k1"], p["b"],
            )  # fmt: skip
        return [Scored(r["chunk_id"], r["score"], r["coverage"]) for r in found]

    async def dense() -> list[Scored]:
        async with driver_statement(db) as conn:
            found = await conn.fetch(
                _VECTOR_LEG, p["tenant_id"], p["vector"], p["dims"], p["model"], p["sources"],
                p["vector_pool"], p["ef"], p["max_tuples"],
            )  # fmt: skip
        return [Scored(r["chunk_id"], r["score"]) for r in found]

    kw, vec = await asyncio.gather(keyword(), dense())
    top = fuse(kw, vec, weight=p["weight"])[: p["k"]]
    async with driver_statement(db) as conn:
        found = await conn.fetch(_PASSAGES, p["tenant_id"], [f.chunk_id for f in top])
    passages = {r["r_chunk_id"]: r for r in found}
    return [
        {
            **passages[f.chunk_id],
            "r_score": f.score,
            "r_bm25": f.bm25,
            "r_vector": f.vector,
            "r_coverage": f.coverage,
            "r_bm25_candidates": len(kw),
            "r_vector_candidates": len(vec),
        }
        for f in top
        if f.chunk_id in passages  # a source deleted meanwhile: as the statement's join
    ]


def _notice(runtime: Runtime) -> str | None:
    if not runtime.pgvector:
        return "pgvector is not available: retrieval is keyword-only (BM25)."
    if runtime.settings.embeddings == "none":
        return "No embeddings provider is configured: retrieval is keyword-only (BM25)."
    return None
