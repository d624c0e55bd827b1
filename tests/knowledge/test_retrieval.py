"""Retrieval as a bot or the search endpoint sees it: BM25 alone, and hybrid with vectors from
an OpenAI-compatible `/embeddings` server (the local fake) or the packaged local model.

Chunks are written with SQL inside a tenant session and indexed through the product's own
`bm25.index_version` / `vectors.index_vectors`, as the ingestion job does."""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from parley.kit.db import TenantId, tenant_session
from parley.kit.runtime import Runtime
from parley.knowledge import bm25, retrieval, vectors
from parley.knowledge.embeddings import Embedder, EmbeddingsError, embedder_for
from tests.conftest import make_settings, register

CFG = "english"


def runtime_with(app: Any, data_dir: Path, **settings: Any) -> Runtime:
    base: Runtime = app.state.runtime
    return dataclasses.replace(base, settings=make_settings(data_dir, **settings), clients={})


def require_pgvector(app: Any) -> None:
    """The vector leg needs the `kb_vectors` table, which exists where pgvector does. The
    embedded server always has it (its absence fails); an external server under
    TEST_DATABASE_URL may not (the machine's PostgreSQL 15 in CI), and there the product runs
    keyword-only, which the keyword tests below and tests/knowledge/test_knowledge_api.py cover."""
    if app.state.runtime.pgvector:
        return
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("this external PostgreSQL has no pgvector: retrieval is keyword-only here")
    pytest.fail("the embedded PostgreSQL must have pgvector")


@pytest.fixture
def hybrid(app: Any, data_dir: Path, fake_openai: Any) -> Runtime:
    require_pgvector(app)
    return runtime_with(
        app,
        data_dir,
        parley_embeddings="openai",
        parley_embedding_model="fake-embed",
        parley_embeddings_base_url=fake_openai.base_url,
        parley_embeddings_api_key="sk-embed",
        parley_hybrid_bm25_weight=0.5,
    )


async def new_tenant(client: httpx.AsyncClient) -> TenantId:
    return TenantId(uuid.UUID((await register(client)).tenant_id))


async def add_source(
    runtime: Runtime, tenant: TenantId, title: str, chunks: list[str]
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A ready source with `chunks` at version 1, indexed like the ingestion job does."""
    source_id = uuid.uuid4()
    ids = [uuid.uuid4() for _ in chunks]
    async with tenant_session(runtime.db, tenant) as s:
        await s.execute(
            text(
                "INSERT INTO kb_sources (tenant_id, id, type, title, status, active_version) "
                "VALUES (:t, :id, 'text', :title, 'ready', 1)"
            ),
            {"t": tenant, "id": source_id, "title": title},
        )
        await s.execute(
            text(
                "INSERT INTO kb_chunks (tenant_id, id, source_id, index_version, ordinal, text, "
                "token_count) SELECT :t, c.id, :source, 1, c.n, c.body, 10 "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:texts AS text[])) "
                "WITH ORDINALITY AS c(id, body, n)"
            ),
            {"t": tenant, "source": source_id, "ids": ids, "texts": chunks},
        )
        await bm25.index_version(s, tenant, source_id, 1, cfg=CFG)
        embedder = embedder_for(runtime)
        if embedder is not None:
            written = await vectors.index_vectors(s, embedder, tenant, source_id, 1)
            assert written == len(chunks)
    return source_id, ids


def letters(n: int) -> str:
    """A distinct word per number (the fake model ignores digits)."""
    word = ""
    while True:
        n, r = divmod(n, 26)
        word += chr(ord("a") + r)
        if n == 0:
            return "x" + word


async def search(
    runtime: Runtime, tenant: TenantId, query: str, k: int = 5, **kw: Any
) -> retrieval.SearchResult:
    return await retrieval.search(runtime.db, runtime, tenant, query, k=k, **kw)


DOCS = [
    "Refunds: we give your refund within 30 days of purchase if the item is unused.",
    "Shipping takes three to five business days within the country.",
    "Our support team answers email on weekdays from nine to five.",
    "Gift cards never expire and can be used online or in any store.",
]


async def test_hybrid_finds_a_paraphrase_that_bm25_alone_misses(
    client: httpx.AsyncClient, hybrid: Runtime, app: Any, data_dir: Path, fake_openai: Any
) -> None:
    tenant = await new_tenant(client)
    _, ids = await add_source(hybrid, tenant, "Policies", DOCS)
    async with tenant_session(hybrid.db, tenant) as s:
        stored = (
            await s.execute(
                text("SELECT model, dims FROM kb_vectors WHERE tenant_id = :t"), {"t": tenant}
            )
        ).all()
    assert sorted(stored) == [("fake-embed", 384)] * len(DOCS)
    indexing = [c for c in fake_openai.calls if c.get("input") == DOCS]
    assert indexing, "the chunks were embedded in one batch through /v1/embeddings"
    assert indexing[-1]["model"] == "fake-embed"
    assert indexing[-1]["_authorization"] == "Bearer sk-embed"

    query = "how do I get reimbursement"  # no stem in common with the refund chunk
    keyword_only = runtime_with(app, data_dir, parley_embeddings="none")
    kw = await search(keyword_only, tenant, query)
    assert kw.mode == "keyword"
    assert ids[0] not in [h.chunk_id for h in kw.items]

    hy = await search(hybrid, tenant, query)
    assert hy.mode == "hybrid"
    assert hy.items[0].chunk_id == ids[0]
    assert hy.items[0].title == "Policies"
    assert hy.items[0].bm25_score is None  # found by the vector leg alone
    assert hy.items[0].vector_score is not None
    assert hy.items[0].vector_score == max(h.vector_score or -1.0 for h in hy.items)
    assert hy.detail["candidates"]["vector"] == len(DOCS)
    assert hy.detail["fusion"] == {
        "method": "convex",
        "normalisation": "minmax",
        "bm25_weight": 0.5,
    }
    assert hy.detail["hits"][0] == {
        "chunk_id": str(ids[0]),
        "score": hy.items[0].score,
        "bm25": None,
        "vector": hy.items[0].vector_score,
    }
    assert hy.detail["notice"] is None


async def test_a_chunk_both_legs_find_outranks_one_only_one_leg_finds(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    tenant = await new_tenant(client)
    _, ids = await add_source(hybrid, tenant, "Policies", DOCS)
    result = await search(hybrid, tenant, "refund for an unused item")
    top = result.items[0]
    assert top.chunk_id == ids[0]
    assert top.bm25_score is not None
    assert top.vector_score is not None
    assert top.score == 1.0  # best of both legs, min-max normalised


async def test_same_query_same_index_same_ranking_and_scores(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    tenant = await new_tenant(client)
    # Ties on purpose: identical chunks score identically and must still come out in one order.
    await add_source(hybrid, tenant, "A", [*DOCS, DOCS[1], DOCS[1]])
    await add_source(hybrid, tenant, "B", [DOCS[1], "Delivery of a parcel by car or vehicle."])
    first = await search(hybrid, tenant, "shipping days by automobile", k=10)
    second = await search(hybrid, tenant, "shipping days by automobile", k=10)
    assert [(h.chunk_id, h.score, h.bm25_score, h.vector_score) for h in first.items] == [
        (h.chunk_id, h.score, h.bm25_score, h.vector_score) for h in second.items
    ]
    assert first.detail["hits"] == second.detail["hits"]
    tied = [h for h in first.items if h.text == DOCS[1]]
    assert len(tied) == 4
    assert len({h.score for h in tied}) == 1
    assert [h.chunk_id for h in tied] == sorted(h.chunk_id for h in tied)  # ties by chunk id


async def test_source_filter_is_honoured_by_both_legs(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    tenant = await new_tenant(client)
    a, a_ids = await add_source(hybrid, tenant, "A", DOCS)
    b, _ = await add_source(hybrid, tenant, "B", [d.replace("30", "60") for d in DOCS])
    query = "refund within days"
    everything = await search(hybrid, tenant, query, k=20)
    assert {h.source_id for h in everything.items} == {a, b}

    only_a = await search(hybrid, tenant, query, k=20, source_ids=[a])
    assert {h.source_id for h in only_a.items} == {a}
    assert only_a.detail["candidates"]["vector"] == len(DOCS)
    assert only_a.items[0].chunk_id == a_ids[0]
    embedder = embedder_for(hybrid)
    assert embedder is not None
    qv = (await embedder.embed([query]))[0]
    async with tenant_session(hybrid.db, tenant) as s:
        kw = await bm25.search(s, tenant, query, k=20, cfg=CFG, source_ids=[a])
        dense = await vectors.search(s, tenant, qv, k=20, model=embedder.model, source_ids=[a])
    assert kw
    assert dense
    assert {x.chunk_id for x in kw} | {x.chunk_id for x in dense} <= set(a_ids)


async def test_workspaces_spread_over_the_vector_shards(
    client: httpx.AsyncClient, hybrid: Runtime, admin_conn: asyncpg.Connection
) -> None:
    """Workspaces created one after another get different shards (round robin), and each
    one's vectors live in its own shard's partition only."""
    tenants = [await new_tenant(client) for _ in range(4)]
    shards = [
        await admin_conn.fetchval("SELECT vector_shard FROM tenants WHERE id = $1", t)
        for t in tenants
    ]
    assert len(set(shards)) == 4
    assert all(0 <= s < 16 for s in shards)
    await add_source(hybrid, tenants[0], "Policies", DOCS)
    rows = await admin_conn.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) AS n FROM kb_vectors "
        "WHERE tenant_id = $1 GROUP BY 1",
        tenants[0],
    )
    assert [(r["part"], r["n"]) for r in rows] == [(f"kb_vectors_s{shards[0]:02d}", len(DOCS))]


async def test_small_tenant_among_a_large_one_gets_its_own_chunks_only(
    client: httpx.AsyncClient, hybrid: Runtime, admin_conn: asyncpg.Connection
) -> None:
    """Two workspaces in one shard (more workspaces than shards): the large one's vectors fill
    the HNSW candidate list for this query; the iterative scan must keep walking until the
    small tenant's chunks are found, and the other tenant's rows must never come back. (For so
    small a tenant the planner would rather read its rows by key and sort them;
    `enable_sort = off` makes it walk the HNSW graph, the plan a small tenant gets once the
    large ones make key reads costlier.)"""
    large, small = await new_tenant(client), await new_tenant(client)
    shard = await admin_conn.fetchval("SELECT vector_shard FROM tenants WHERE id = $1", large)
    await admin_conn.execute("UPDATE tenants SET vector_shard = $1 WHERE id = $2", shard, small)
    filler = [f"Refund policy {letters(i)} for a car {letters(i * 7 + 3)}" for i in range(1500)]
    await add_source(hybrid, large, "Large", filler)
    _, small_ids = await add_source(
        hybrid,
        small,
        "Small",
        ["A kitten needs a refund.", "The dog saw a physician.", "Car weather report."],
    )
    embedder = embedder_for(hybrid)
    assert embedder is not None
    qv = (await embedder.embed(["refund policy for a car or a dog"]))[0]
    async with tenant_session(hybrid.db, small) as s:
        await s.execute(text("SET LOCAL enable_sort = off"))
        dense = await vectors.search(s, small, qv, k=10, model=embedder.model)
        plan = "\n".join(
            r[0]
            for r in await s.execute(
                text(
                    "EXPLAIN SELECT chunk_id FROM kb_vectors WHERE shard = :shard "
                    "AND tenant_id = :t AND dims = 384 AND model = :m "
                    "ORDER BY embedding::vector(384) <=> CAST(:q AS vector(384)) LIMIT 10"
                ),
                {"shard": shard, "t": small, "m": embedder.model, "q": vectors.literal(qv)},
            )
        )
    assert sorted(d.chunk_id for d in dense) == sorted(small_ids)
    # The filtered query walks the shard's HNSW index (an index scan ordered by distance).
    assert f"on kb_vectors_s{shard:02d}" in plan
    assert "Order By: ((embedding)::vector(384) <=>" in plan, plan
    result = await search(hybrid, small, "refund policy for a car or a dog", k=10)
    assert {h.chunk_id for h in result.items} <= set(small_ids)
    assert result.items[0].chunk_id == small_ids[0]


async def test_keyword_only_when_embeddings_are_off_with_the_notice(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    # As where pgvector exists (the notice for a missing extension is checked below); keyword
    # mode never reads the vector table.
    runtime = dataclasses.replace(
        runtime_with(app, data_dir, parley_embeddings="none"), pgvector=True
    )
    assert embedder_for(runtime) is None
    tenant = await new_tenant(client)
    _, ids = await add_source(runtime, tenant, "Policies", DOCS)
    result = await search(runtime, tenant, "refund days")
    assert result.mode == "keyword"
    assert result.items[0].chunk_id == ids[0]
    assert result.items[0].vector_score is None
    assert result.detail["notice"] == (
        "No embeddings provider is configured: retrieval is keyword-only (BM25)."
    )
    no_vector = dataclasses.replace(runtime, pgvector=False)
    without = await search(no_vector, tenant, "refund days")
    assert without.mode == "keyword"
    assert (
        without.detail["notice"] == "pgvector is not available: retrieval is keyword-only (BM25)."
    )


async def test_a_failing_embeddings_server_degrades_to_keyword_with_a_notice(
    client: httpx.AsyncClient, app: Any, data_dir: Path, fake_openai: Any
) -> None:
    runtime = dataclasses.replace(
        runtime_with(
            app,
            data_dir,
            parley_embeddings="openai",
            parley_embedding_model="fake-embed-500",
            parley_embeddings_base_url=fake_openai.base_url,
        ),
        pgvector=True,  # the failing query embedding falls back before any vector read
    )
    embedder = embedder_for(runtime)
    assert embedder is not None
    with pytest.raises(EmbeddingsError, match="answered 500"):
        await embedder.embed(["anything"])
    tenant = await new_tenant(client)
    keyword_runtime = runtime_with(app, data_dir, parley_embeddings="none")
    _, ids = await add_source(keyword_runtime, tenant, "Policies", DOCS)
    result = await search(runtime, tenant, "refund days")
    assert result.mode == "keyword"
    assert result.items[0].chunk_id == ids[0]
    assert "answered 500" in result.detail["notice"]
    assert "keyword-only" in result.detail["notice"]


async def test_local_sentence_transformers_embedder_runs_offline(
    app: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The model itself needs no database: as on a server with pgvector.
    runtime = dataclasses.replace(
        runtime_with(app, data_dir, parley_embeddings="local"), pgvector=True
    )
    embedder = embedder_for(runtime)
    assert isinstance(embedder, Embedder)
    assert embedder.name == "local"
    assert embedder_for(runtime) is embedder  # one model per process
    texts = [
        "How do I get my money back?",
        "What is your refund policy?",
        "The mitochondria is the powerhouse of the cell.",
    ]
    vecs = await embedder.embed(texts)
    assert embedder.dims == 384
    assert [len(v) for v in vecs] == [384, 384, 384]
    for v in vecs:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5)

    def cos(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.2
    again = await embedder.embed([texts[0]])
    assert again[0] == pytest.approx(vecs[0], abs=1e-5)


async def test_the_database_fuses_exactly_as_fuse_does(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    """`parley_kb_search` fuses in SQL (one round trip); `retrieval.fuse` is the same
    arithmetic in Python, which the P5 benchmark tunes. Both must rank and score alike."""
    tenant = await new_tenant(client)
    texts = DOCS + [f"Refund {letters(i)} shipping {letters(i * 3)} gift" for i in range(40)]
    await add_source(hybrid, tenant, "Policies", texts)
    embedder = embedder_for(hybrid)
    assert embedder is not None
    weight = hybrid.settings.parley_hybrid_bm25_weight
    for query in ("refund within days", "gift card shipping", "email support weekdays"):
        qv = (await embedder.embed([query]))[0]
        async with tenant_session(hybrid.db, tenant) as s:
            keyword = await bm25.search(s, tenant, query, k=retrieval.CANDIDATES, cfg=CFG)
            dense = await vectors.search(
                s, tenant, qv, k=retrieval.CANDIDATES, model=embedder.model
            )
        expected = retrieval.fuse(keyword, dense, weight=weight)[:10]
        result = await search(hybrid, tenant, query, k=10)
        assert [(h.chunk_id, h.score) for h in result.items] == [
            (f.chunk_id, round(f.score, 6)) for f in expected
        ]
        assert [h.relevance for h in result.items] == [f.relevance for f in expected]
        assert result.detail["candidates"] == {
            "bm25": len(keyword),
            "vector": len(dense),
            "fused": 10,
        }


async def test_a_search_runs_its_generic_plan_and_the_vector_leg_its_own(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    """Migration 0016: the search statement is planned once per connection (planning it for
    every call was a seventh of a search's server time); the HNSW query keeps the planner's
    choice. Results stay those the tests above check."""
    tenant = await new_tenant(client)
    await add_source(hybrid, tenant, "Policies", DOCS)
    first = await search(hybrid, tenant, "refund for an unused item")
    async with tenant_session(hybrid.db, tenant) as s:
        rows = (
            await s.execute(
                text(
                    "SELECT proname, proconfig FROM pg_proc "
                    "WHERE proname IN ('parley_kb_search', 'parley_kb_nearest')"
                )
            )
        ).all()
    config = {r.proname: r.proconfig for r in rows}
    assert config["parley_kb_search"] == ["plan_cache_mode=force_generic_plan"]
    assert config["parley_kb_nearest"] == ["plan_cache_mode=auto"]
    again = [await search(hybrid, tenant, "refund for an unused item") for _ in range(6)]
    assert all([h.chunk_id for h in r.items] == [h.chunk_id for h in first.items] for r in again)


async def test_a_search_finds_the_same_as_one_statement_or_as_two_legs_at_once(
    client: httpx.AsyncClient, hybrid: Runtime
) -> None:
    """On the driver pool a search is one statement, or its two legs at once on two
    connections fused in Python: same passages, scores and trace either way, ties and source
    filters included, and still only the tenant's."""
    tenant = await new_tenant(client)
    other = await new_tenant(client)
    # Ties on purpose (identical chunks): the Python fusion must order them as the statement.
    a, _ = await add_source(hybrid, tenant, "A", [*DOCS, DOCS[0], DOCS[0]])
    b, _ = await add_source(hybrid, tenant, "B", [d.replace("30", "60") for d in DOCS])
    await add_source(hybrid, other, "Other", DOCS)
    for sources in (None, [a]):
        for k in (3, 10):
            one = await search(
                hybrid, tenant, "refund within days", k=k, source_ids=sources, parallel=False
            )
            assert len(one.items) == min(k, 6 if sources else 10)  # A has 6, B 4
            for parallel in (True, None):
                two = await search(
                    hybrid, tenant, "refund within days", k=k, source_ids=sources,
                    parallel=parallel,
                )  # fmt: skip
                assert two.mode == one.mode == "hybrid"
                assert [dataclasses.asdict(h) for h in two.items] == [
                    dataclasses.asdict(h) for h in one.items
                ], (sources, k, parallel)
                assert two.detail["hits"] == one.detail["hits"]
                assert two.detail["candidates"] == one.detail["candidates"]
                assert {h.source_id for h in two.items} <= ({a} if sources else {a, b})
                assert all(isinstance(h.chunk_id, uuid.UUID) for h in two.items)
