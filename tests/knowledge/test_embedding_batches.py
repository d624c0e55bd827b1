"""`CoalescingEmbedder`: concurrent ingestion jobs share the model's batches, a chat query
goes before queued documents, and a failure reaches every caller of its batch. The model is
stood in for by a recorder of the batches it is given (the wrapper is what is tested)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.knowledge.embeddings import CACHE_KEY, Embedder, embedder_for
from parley.knowledge.embeddings.batching import CoalescingEmbedder
from tests.knowledge.test_retrieval import require_pgvector, runtime_with


class Model:
    """Embeds a text as [its length]; holds each call until released, and records it."""

    name = "local"
    model = "recorder"
    batch_size = 32
    dims = 1

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [[float(len(t))] for t in texts]


async def test_concurrent_jobs_share_batches_and_each_gets_its_own_vectors() -> None:
    model = Model()
    embedder = CoalescingEmbedder(model, max_texts=100)
    assert isinstance(embedder, Embedder)
    first = asyncio.create_task(embedder.embed(["a" * 1] * 10))
    await asyncio.sleep(0)
    others = [asyncio.create_task(embedder.embed([f"{'b' * (j + 2)}"] * 30)) for j in range(4)]
    await asyncio.sleep(0)
    model.gate.set()
    assert await first == [[1.0]] * 10
    results = await asyncio.gather(*others)
    for j, vectors in enumerate(results):
        assert vectors == [[float(j + 2)]] * 30
    # The first call ran alone; the four that waited went as batches of at most 100 texts.
    assert [len(c) for c in model.calls] == [10, 90, 30]


async def test_a_query_goes_before_queued_documents() -> None:
    model = Model()
    embedder = CoalescingEmbedder(model, max_texts=40)
    running = asyncio.create_task(embedder.embed(["doc"] * 40))
    await asyncio.sleep(0)
    queued = asyncio.create_task(embedder.embed(["doc"] * 40))
    query = asyncio.create_task(embedder.embed(["where is my order?"]))
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(running, queued, query)
    assert model.calls[1][0] == "where is my order?"


async def test_an_urgent_request_goes_before_queued_documents_and_after_earlier_queries() -> None:
    """The extractive answer's sentences (many texts, a visitor waiting) are urgent: they go
    ahead of the documents queued before them, but not ahead of a query already waiting."""
    model = Model()
    embedder = CoalescingEmbedder(model, max_texts=40)
    running = asyncio.create_task(embedder.embed(["doc"] * 40))
    await asyncio.sleep(0)
    queued = asyncio.create_task(embedder.embed(["doc"] * 40))
    query = asyncio.create_task(embedder.embed(["where is my order?"]))
    answer = asyncio.create_task(embedder.embed(["sentence one", "sentence two"], urgent=True))
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(running, queued, query, answer)
    assert model.calls[1][:3] == ["where is my order?", "sentence one", "sentence two"]
    assert model.calls[2] == ["doc"] * 40
    assert await answer == [[12.0], [12.0]]


async def test_a_failure_reaches_every_caller_of_the_batch_and_the_next_batch_runs() -> None:
    model = Model()
    embedder = CoalescingEmbedder(model, max_texts=100)
    model.fail = RuntimeError("model broke")
    first = asyncio.create_task(embedder.embed(["x"]))
    await asyncio.sleep(0)
    second = asyncio.create_task(embedder.embed(["y", "z"]))
    third = asyncio.create_task(embedder.embed(["w"]))
    await asyncio.sleep(0)
    model.gate.set()
    for task in (first, second, third):
        with pytest.raises(RuntimeError, match="model broke"):
            await task
    model.fail = None
    assert await embedder.embed(["ok"]) == [[2.0]]


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    model = Model()
    embedder = CoalescingEmbedder(model, max_texts=100)
    first = asyncio.create_task(embedder.embed(["a"]))
    await asyncio.sleep(0)
    gone = asyncio.create_task(embedder.embed(["bb"] * 5))
    kept = asyncio.create_task(embedder.embed(["ccc"] * 5))
    await asyncio.sleep(0)
    gone.cancel()
    model.gate.set()
    assert await first == [[1.0]]
    assert await kept == [[3.0]] * 5
    assert model.calls[1] == ["ccc"] * 5
    assert await embedder.embed([]) == []


async def test_an_ingestion_job_embeds_before_its_transaction_and_stores_every_vector(
    app: Any, client: Any, data_dir: Any, fake_openai: Any
) -> None:
    """Through the real job, with the OpenAI-compatible fake as the embedder: every chunk gets
    its vector, computed by the job before it opens the transaction that swaps the version in
    (so the BM25 index's locks are not held while a model runs)."""
    from sqlalchemy import text

    from parley.kit.db import tenant_session
    from parley.kit.jobs import JobContext
    from parley.knowledge import ingest
    from tests.conftest import register

    owner = await register(client, "embed-job")
    body = "\n\n".join(f"Paragraph {i} says refunds take {i} days by post." for i in range(40))
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "Refunds", "text": body},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    require_pgvector(app)
    hybrid = runtime_with(
        app,
        data_dir,
        parley_embeddings="openai",
        parley_embedding_model="fake-embed",
        parley_embeddings_base_url=fake_openai.base_url,
        parley_embeddings_api_key="sk-embed",
    )
    seen: list[bool] = []
    inner = embedder_for(hybrid)
    assert inner is not None

    class Watch:
        """Records whether a transaction of the job was open when the model was called."""

        name, model, batch_size = inner.name, inner.model, inner.batch_size
        dims = inner.dims

        async def embed(self, texts: list[str]) -> list[list[float]]:
            async with tenant_session(hybrid.db, owner.tenant_id) as s:
                locked = await s.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                        "WHERE a.state = 'idle in transaction' AND l.relation = "
                        "'kb_chunks'::regclass"
                    )
                )
            seen.append(bool(locked))
            return await inner.embed(texts)

    hybrid.clients[CACHE_KEY] = Watch()
    ctx = JobContext(
        db=hybrid.db,
        job_id=0,
        entrypoint="knowledge.ingest",
        attempt=0,
        payload={"tenant_id": owner.tenant_id, "job_id": resp.json()["job"]["id"]},
        runtime_=hybrid,
        max_attempts=1,
    )
    await ingest.run(ctx)
    assert seen
    assert not any(seen)
    async with tenant_session(hybrid.db, owner.tenant_id) as s:
        chunks = await s.scalar(text("SELECT count(*) FROM kb_chunks"))
        stored = await s.scalar(text("SELECT count(*) FROM kb_vectors"))
    assert chunks
    assert stored == chunks
