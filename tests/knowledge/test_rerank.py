"""The reranker port: the fused candidates reordered by a `/rerank` server (the local fake,
speaking Cohere's and Jina's wire format), and kept in the fusion's order, with a notice, when
that server fails. Keyword-only runtimes, so these run with or without pgvector."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.kit.db import TenantId
from parley.kit.runtime import Runtime
from parley.knowledge.rerank import BREAKER_FAILURES, scores_from
from parley.settings import Settings
from tests.conftest import make_settings, register
from tests.knowledge.test_retrieval import add_source, runtime_with, search

# BM25 puts the first above the second (more "refund", shorter); only the second has the
# question as a phrase, which the fake reranker rewards.
REPEATS = "Policy on refund: refund, refund, refund."
PHRASE = (
    "Our refund policy lets you return any unused item within thirty days of purchase, "
    "and we pay the refund to the card you used."
)
OTHERS = [
    "Shipping takes three to five business days within the country.",
    "Gift cards never expire and can be used online or in any store.",
]
QUERY = "refund policy"


def reranking(app: Any, data_dir: Path, fake_openai: Any, model: str = "fake-rerank") -> Runtime:
    return runtime_with(
        app,
        data_dir,
        parley_embeddings="none",
        parley_reranker="http",
        parley_reranker_base_url=fake_openai.base_url,
        parley_reranker_api_key="sk-rerank",
        parley_reranker_model=model,
    )


async def _tenant_with_docs(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> tuple[Runtime, TenantId, list[uuid.UUID]]:
    """A workspace with the documents above, and a keyword-only runtime with no reranker."""
    plain = runtime_with(app, data_dir, parley_embeddings="none")
    tenant = TenantId(uuid.UUID((await register(client)).tenant_id))
    _, ids = await add_source(plain, tenant, "Help", [REPEATS, PHRASE, *OTHERS])
    return plain, tenant, ids


async def test_the_reranker_reorders_the_fused_candidates_and_the_trace_shows_both_scores(
    client: httpx.AsyncClient, app: Any, data_dir: Path, fake_openai: Any
) -> None:
    plain, tenant, ids = await _tenant_with_docs(client, app, data_dir)
    before = await search(plain, tenant, QUERY, k=5)
    assert [h.chunk_id for h in before.items] == [ids[0], ids[1]]  # BM25's order
    assert "rerank" not in before.detail

    runtime = reranking(app, data_dir, fake_openai)
    after = await search(runtime, tenant, QUERY, k=5)
    assert [h.chunk_id for h in after.items] == [ids[1], ids[0]]
    top, second = after.items
    assert top.score == 1.0  # the reranker's: the phrase and both words
    assert second.score == 0.5  # both words, not the phrase
    assert top.fused_score == before.items[1].score  # the fusion's, kept for the trace
    assert second.fused_score == before.items[0].score
    assert after.detail["rerank"] == {"model": "fake-rerank", "candidates": 2}
    assert [h["fused"] for h in after.detail["hits"]] == [top.fused_score, second.fused_score]
    assert after.detail["notice"] is not None  # keyword-only: that notice stays

    sent = [c for c in fake_openai.calls if c.get("model") == "fake-rerank"][-1]
    assert sent["query"] == QUERY
    assert sent["documents"] == [REPEATS, PHRASE]  # the fused candidates, in that order
    assert sent["top_n"] == 2
    assert sent["_authorization"] == "Bearer sk-rerank"

    # `k` cuts after the reranking: the reranker still saw every candidate.
    one = await search(runtime, tenant, QUERY, k=1)
    assert [h.chunk_id for h in one.items] == [ids[1]]
    assert one.detail["rerank"]["candidates"] == 2
    # Deterministic, as retrieval is without a reranker.
    again = await search(runtime, tenant, QUERY, k=5)
    assert [(h.chunk_id, h.score) for h in again.items] == [
        (h.chunk_id, h.score) for h in after.items
    ]


@pytest.mark.parametrize(
    ("model", "said"),
    [("fake-rerank-500", "answered 500"), ("fake-rerank-garbage", "answer is unusable")],
)
async def test_a_failing_reranker_keeps_the_fusion_order_and_says_so(
    client: httpx.AsyncClient,
    app: Any,
    data_dir: Path,
    fake_openai: Any,
    model: str,
    said: str,
) -> None:
    _, tenant, ids = await _tenant_with_docs(client, app, data_dir)
    result = await search(reranking(app, data_dir, fake_openai, model), tenant, QUERY, k=5)
    assert [h.chunk_id for h in result.items] == [ids[0], ids[1]]
    assert all(h.fused_score is None for h in result.items)
    assert result.detail["rerank"] is None
    assert said in result.detail["notice"]
    assert "fusion's order" in result.detail["notice"]
    assert "keyword-only" in result.detail["notice"]  # the notice it had stays


async def test_a_reranker_that_keeps_failing_is_skipped_instead_of_called_every_time(
    client: httpx.AsyncClient, app: Any, data_dir: Path, fake_openai: Any
) -> None:
    _, tenant, ids = await _tenant_with_docs(client, app, data_dir)
    runtime = reranking(app, data_dir, fake_openai, "fake-rerank-500")
    before = len(fake_openai.calls_for("fake-rerank-500"))
    results = [await search(runtime, tenant, QUERY, k=5) for _ in range(BREAKER_FAILURES + 2)]
    assert len(fake_openai.calls_for("fake-rerank-500")) - before == BREAKER_FAILURES
    for result in results:  # every search still answers, in the fusion's order
        assert [h.chunk_id for h in result.items] == [ids[0], ids[1]]
    assert "answered 500" in results[BREAKER_FAILURES - 1].detail["notice"]
    assert "skipped for up to 30 s" in results[-1].detail["notice"]


async def test_a_passage_the_reranker_leaves_out_comes_after_the_ones_it_scored(
    client: httpx.AsyncClient, app: Any, data_dir: Path, fake_openai: Any
) -> None:
    _, tenant, ids = await _tenant_with_docs(client, app, data_dir)
    runtime = reranking(app, data_dir, fake_openai, "fake-rerank-partial")
    result = await search(runtime, tenant, QUERY, k=5)
    assert [h.chunk_id for h in result.items] == [ids[1], ids[0]]
    assert [h.score for h in result.items] == [1.0, 1.0]  # the lowest score it gave
    assert result.detail["rerank"] == {"model": "fake-rerank-partial", "candidates": 2}


async def test_an_unreachable_reranker_is_a_notice_not_an_error(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    _, tenant, ids = await _tenant_with_docs(client, app, data_dir)
    runtime = runtime_with(
        app,
        data_dir,
        parley_embeddings="none",
        parley_reranker="http",
        parley_reranker_base_url="http://127.0.0.1:9/v1",  # discard port: refused
    )
    result = await search(runtime, tenant, QUERY, k=5)
    assert [h.chunk_id for h in result.items] == [ids[0], ids[1]]
    assert "could not be reached" in result.detail["notice"]


async def test_the_search_endpoint_returns_the_reranked_order(
    client: httpx.AsyncClient,
    app: Any,
    data_dir: Path,
    fake_openai: Any,
) -> None:
    owner = await register(client, "rerank-api")
    runtime = reranking(app, data_dir, fake_openai)
    _, ids = await add_source(
        runtime, TenantId(uuid.UUID(owner.tenant_id)), "Help", [REPEATS, PHRASE]
    )
    served = app.state.runtime
    # Not monkeypatch: it cannot read a Starlette `State`'s attribute, and its undo would
    # delete the app's runtime instead of restoring it.
    app.state.runtime = runtime
    try:
        resp = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/search",
            json={"query": QUERY, "k": 5},
            headers=owner.headers,
        )
    finally:
        app.state.runtime = served
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [i["chunk_id"] for i in body["items"]] == [str(ids[1]), str(ids[0])]
    assert [i["score"] for i in body["items"]] == [1.0, 0.5]
    assert body["trace"]["rerank"] == {"model": "fake-rerank", "candidates": 2}
    assert set(body["trace"]["hits"][0]) == {"chunk_id", "score", "bm25", "vector", "fused"}


def test_scores_are_read_in_the_documents_order_from_each_known_answer_shape() -> None:
    cohere = {
        "results": [{"index": 2, "relevance_score": 0.8}, {"index": 0, "relevance_score": 0.1}]
    }
    assert scores_from(cohere, 3) == [0.1, -math.inf, 0.8]  # left out: behind the scored ones
    voyage = {"data": [{"index": 1, "relevance_score": 0.4}, {"index": 0, "relevance_score": 0.3}]}
    assert scores_from(voyage, 2) == [0.3, 0.4]
    bare = {"results": [{"index": 0, "score": 2.5}]}
    assert scores_from(bare, 1) == [2.5]
    for broken in (
        {"results": [{"index": 3, "relevance_score": 1.0}]},
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"results": [{"index": 0, "relevance_score": float("nan")}]},
        {"results": [{"index": True, "relevance_score": 1.0}]},
        {"results": [{"index": 0, "relevance_score": True}]},
        {"results": "none"},
        [{"index": 0, "score": 1.0}],
    ):
        with pytest.raises(ValueError, match=r"results|index|score|object"):
            scores_from(broken, 1)


def test_an_http_reranker_needs_its_server(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="PARLEY_RERANKER_BASE_URL"):
        make_settings(data_dir, parley_reranker="http")
    assert isinstance(make_settings(data_dir, parley_reranker="none"), Settings)
