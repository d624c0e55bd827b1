"""The knowledge API end to end: sources of every kind ingested by a real worker into the real
BM25 index, searched exactly as the bots search, cited in answers, re-indexed, restored and
deleted without leftovers — and never visible to another workspace."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from parley.app import make_worker
from tests.conftest import (
    Account,
    assert_problem,
    create_widget,
    register,
    widget_session,
)

REFUNDS = (
    "# Refunds\n\nYou can return any unused item within 30 days of delivery for a full refund. "
    "Refunds go back to the original payment method within five business days.\n\n"
    "# Shipping\n\nStandard shipping takes three to five days. Express shipping arrives the "
    "next business day when ordered before noon."
)


@pytest.fixture(scope="module")
async def worker(app: Any) -> AsyncIterator[None]:
    """A real job worker on the app's runtime, for the whole module."""
    w = make_worker(app.state.runtime)
    w.dequeue_timeout = timedelta(seconds=0.2)
    task = asyncio.create_task(w.run())
    yield
    w.stop()
    await asyncio.wait_for(task, timeout=15)


async def wait_job(client: httpx.AsyncClient, owner: Account, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await client.get(
            f"/v1/tenants/{owner.tenant_id}/knowledge/jobs/{job_id}", headers=owner.headers
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def add_text(
    client: httpx.AsyncClient, owner: Account, title: str, text: str
) -> tuple[str, dict[str, Any]]:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": title, "text": text},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    job = await wait_job(client, owner, body["job"]["id"])
    return body["id"], job


async def search(
    client: httpx.AsyncClient, owner: Account, query: str, **extra: Any
) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/search",
        json={"query": query, **extra},
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_a_text_source_is_ingested_and_found_with_the_contract_shapes(
    client: httpx.AsyncClient, worker: None
) -> None:
    owner = await register(client, "kb-text")
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "Help centre", "text": REFUNDS},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert set(accepted["job"]) >= {"id", "status"}
    assert accepted["job"]["status"] == "queued"
    job = await wait_job(client, owner, accepted["job"]["id"])
    assert set(job) >= {"id", "status", "progress", "error"}
    assert (job["status"], job["progress"], job["error"]) == ("succeeded", 1.0, None)

    found = await search(client, owner, "how many days do I have to return an item?")
    assert found["items"], found
    top = found["items"][0]
    assert set(top) >= {"chunk_id", "source_id", "title", "text", "score"}
    assert top["source_id"] == accepted["id"]
    assert top["title"] == "Help centre"
    assert "30 days" in top["text"]
    assert found["mode"] == "keyword"
    # Deterministic: the same query on the same index, the same ranking and scores.
    again = await search(client, owner, "how many days do I have to return an item?")
    assert (again["items"], again["mode"]) == (found["items"], found["mode"])

    source = await client.get(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources/{accepted['id']}", headers=owner.headers
    )
    assert source.json()["status"] == "ready"
    assert source.json()["chunk_count"] >= 1


async def test_faq_pairs_are_answered_whole(client: httpx.AsyncClient, worker: None) -> None:
    owner = await register(client, "kb-faq")
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={
            "type": "faq",
            "pairs": [
                {"question": "Do you ship to Canada?", "answer": "Yes, in 7 to 10 days."},
                {"question": "Can I change my password?", "answer": "Use Settings › Security."},
            ],
        },
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    assert (await wait_job(client, owner, resp.json()["job"]["id"]))["status"] == "succeeded"
    top = (await search(client, owner, "shipping to canada"))["items"][0]
    assert "Do you ship to Canada?" in top["text"]
    assert "7 to 10 days" in top["text"]


async def test_a_sources_chunks_are_listed_in_order_a_page_at_a_time(
    client: httpx.AsyncClient, worker: None, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "kb-chunks")
    pairs = [
        {"question": f"Question number {i}?", "answer": f"Answer number {i}."} for i in range(5)
    ]
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "faq", "pairs": pairs},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    assert (await wait_job(client, owner, resp.json()["job"]["id"]))["status"] == "succeeded"
    url = f"/v1/tenants/{owner.tenant_id}/knowledge/sources/{resp.json()['id']}/chunks"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(url, params=params, headers=owner.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    stored = await admin_conn.fetch(
        "SELECT id, ordinal FROM kb_chunks WHERE source_id = $1 ORDER BY ordinal",
        uuid.UUID(resp.json()["id"]),
    )
    assert [(c["id"], c["ordinal"]) for c in seen] == [(str(r["id"]), r["ordinal"]) for r in stored]
    assert len(seen) == 5
    assert pages == 3
    assert "Question number 0?" in seen[0]["text"]
    bad = await client.get(url, params={"cursor": "not-a-cursor"}, headers=owner.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "invalid_cursor"


async def test_files_are_uploaded_extracted_and_refused_clearly(
    client: httpx.AsyncClient, worker: None, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "kb-file")
    url = f"/v1/tenants/{owner.tenant_id}/knowledge/sources"
    md = "# Warranty\n\nEvery kettle carries a two-year warranty against manufacturing faults.\n"
    resp = await client.post(
        url,
        files={"file": ("warranty.md", md.encode(), "text/markdown")},
        data={"title": "Warranty terms"},
        headers=owner.headers,
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["filename"] == "warranty.md"
    assert (await wait_job(client, owner, resp.json()["job"]["id"]))["status"] == "succeeded"
    top = (await search(client, owner, "kettle warranty"))["items"][0]
    assert top["title"] == "Warranty terms"
    stored = await admin_conn.fetchval(
        "SELECT storage_key FROM kb_sources WHERE id = $1",
        uuid.UUID(resp.json()["id"]),
    )
    assert stored is not None

    # A PDF that is not one: accepted (it looks like a PDF), then the job fails with a reason.
    broken = await client.post(
        url,
        files={"file": ("manual.pdf", b"%PDF-1.7\n1 0 obj <<", "application/pdf")},
        headers=owner.headers,
    )
    assert broken.status_code == 202, broken.text
    job = await wait_job(client, owner, broken.json()["job"]["id"])
    assert job["status"] == "failed"
    assert job["error"]
    source = await client.get(f"{url}/{broken.json()['id']}", headers=owner.headers)
    assert source.json()["status"] == "failed"

    # A program is refused at once; so is an empty file.
    exe = await client.post(
        url,
        files={"file": ("setup.exe", b"MZ\x90\x00" + b"\x00" * 64, "application/octet-stream")},
        headers=owner.headers,
    )
    assert_problem(exe, 422, "unsupported_file_type")
    empty = await client.post(
        url, files={"file": ("empty.txt", b"", "text/plain")}, headers=owner.headers
    )
    assert_problem(empty, 422, "empty_file")
    missing = await client.post(url, files={"title": (None, "no file")}, headers=owner.headers)
    assert_problem(missing, 422, "validation_failed")
    wrong_type = await client.post(
        url, content=b"type=text", headers={**owner.headers, "content-type": "text/plain"}
    )
    assert_problem(wrong_type, 415, "unsupported_media_type")


async def test_an_upload_over_the_limit_is_refused_before_it_is_stored(
    app: Any, client: httpx.AsyncClient
) -> None:
    owner = await register(client, "kb-big")
    limit = app.state.runtime.settings.parley_knowledge_max_file_bytes
    big = io.BytesIO(b"a " * (limit // 2 + 10))
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        files={"file": ("big.txt", big, "text/plain")},
        headers=owner.headers,
    )
    assert resp.status_code == 413, resp.text
    listed = await client.get(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources", headers=owner.headers
    )
    assert listed.json()["items"] == []


async def test_private_urls_are_refused_when_creating_a_url_source(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client, "kb-ssrf")
    for hostile in (
        "http://127.0.0.1:8000/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
        "http://0x7f000001/",
    ):
        resp = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={"type": "url", "url": hostile},
            headers=owner.headers,
        )
        assert_problem(resp, 422, "unsafe_url")


async def _index_state(admin_conn: asyncpg.Connection, tenant_id: str) -> tuple[int, int, int]:
    t = uuid.UUID(tenant_id)
    postings = await admin_conn.fetchval("SELECT count(*) FROM kb_postings WHERE tenant_id = $1", t)
    chunks = await admin_conn.fetchval("SELECT count(*) FROM kb_chunks WHERE tenant_id = $1", t)
    stats = await admin_conn.fetchval("SELECT chunks FROM kb_stats WHERE tenant_id = $1", t)
    return int(postings), int(chunks), int(stats or 0)


async def test_reindex_swaps_atomically_restore_brings_the_old_version_back_delete_leaves_nothing(
    app: Any, client: httpx.AsyncClient, worker: None, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "kb-versions")
    base = f"/v1/tenants/{owner.tenant_id}/knowledge/sources"
    source_id, _ = await add_text(client, owner, "Policies", REFUNDS)
    before = await search(client, owner, "express shipping noon")
    first_ids = {i["chunk_id"] for i in before["items"]}
    postings_v1, _, stats_v1 = await _index_state(admin_conn, owner.tenant_id)

    job = await client.post(f"{base}/{source_id}/reindex", headers=owner.headers)
    assert job.status_code == 202, job.text
    again_job = await client.post(f"{base}/{source_id}/reindex", headers=owner.headers)
    done = await wait_job(client, owner, job.json()["id"])
    assert done["status"] == "succeeded"
    # Asking again while the build was pending returned that build, not a second one.
    assert again_job.status_code == 202
    if again_job.json()["id"] != job.json()["id"]:  # the first had already finished
        assert (await wait_job(client, owner, again_job.json()["id"]))["status"] == "succeeded"
    src = (await client.get(f"{base}/{source_id}", headers=owner.headers)).json()
    assert src["previous_version"] is not None
    assert src["active_version"] > src["previous_version"]
    after = await search(client, owner, "express shipping noon")
    assert {i["chunk_id"] for i in after["items"]}.isdisjoint(first_ids)
    assert [i["text"] for i in after["items"]] == [i["text"] for i in before["items"]]
    # The index holds one version only: same postings, same corpus size.
    postings_v2, chunks_v2, stats_v2 = await _index_state(admin_conn, owner.tenant_id)
    assert (postings_v2, stats_v2) == (postings_v1, stats_v1)
    assert chunks_v2 == 2 * stats_v1  # the active and the previous version are kept

    restored = await client.post(f"{base}/{source_id}/restore", headers=owner.headers)
    assert restored.status_code == 200, restored.text
    actions = await admin_conn.fetch(
        "SELECT action FROM audit_log WHERE tenant_id = $1 AND target_id = $2 ORDER BY seq",
        uuid.UUID(owner.tenant_id),
        source_id,
    )
    assert [a["action"] for a in actions] == [
        "knowledge_source.created",
        "knowledge_source.reindexed",
        "knowledge_source.restored",
    ]
    assert restored.json()["active_version"] == src["previous_version"]
    again = await search(client, owner, "express shipping noon")
    assert {i["chunk_id"] for i in again["items"]} == first_ids

    # Delete: rows, postings, statistics and the file are gone; search finds nothing.
    key = await admin_conn.fetchval(
        "SELECT storage_key FROM kb_sources WHERE id = $1", uuid.UUID(source_id)
    )
    path = app.state.runtime.settings.data_dir / "files" / key
    assert path.exists()
    gone = await client.delete(f"{base}/{source_id}", headers=owner.headers)
    assert gone.status_code == 204
    assert (await search(client, owner, "express shipping noon"))["items"] == []
    assert await _index_state(admin_conn, owner.tenant_id) == (0, 0, 0)
    deadline = time.monotonic() + 20
    while path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not path.exists(), "the original file was not removed"
    missing = await client.get(f"{base}/{source_id}", headers=owner.headers)
    assert_problem(missing, 404, "knowledge_source_not_found")
    nothing = await client.post(f"{base}/{source_id}/restore", headers=owner.headers)
    assert_problem(nothing, 404)


async def test_a_bot_only_searches_its_own_sources(client: httpx.AsyncClient, worker: None) -> None:
    owner = await register(client, "kb-filter")
    shipping, _ = await add_text(client, owner, "Shipping", "Parcels leave the warehouse daily.")
    await add_text(client, owner, "Warehouse tour", "The warehouse tour runs on Fridays.")
    bot = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots",
        json={"name": "Shipping bot"},
        headers=owner.headers,
    )
    bot_id = bot.json()["id"]
    patched = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{bot_id}",
        json={"knowledge_source_ids": [shipping]},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    foreign = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{bot_id}",
        json={"knowledge_source_ids": [shipping, str(uuid.uuid4())]},
        headers=owner.headers,
    )
    assert_problem(foreign, 422, "unknown_knowledge_source")
    everything = await search(client, owner, "warehouse")
    assert len({i["source_id"] for i in everything["items"]}) == 2
    filtered = await search(client, owner, "warehouse", bot_id=bot_id)
    assert {i["source_id"] for i in filtered["items"]} == {shipping}


async def test_the_extractive_bot_answers_from_knowledge_with_citations_and_a_trace(
    client: httpx.AsyncClient, worker: None, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "kb-answer")
    source_id, _ = await add_text(client, owner, "Help centre", REFUNDS)
    w = await create_widget(client, owner)
    session = await widget_session(client, w.widget_key)
    sent = await client.post(
        "/v1/widget/messages",
        json={"content": "When will my refund reach my payment method?"},
        headers={**session.headers, "Idempotency-Key": "kb-answer-1"},
    )
    assert sent.status_code == 201, sent.text
    reply = sent.json()["reply"]
    assert "five business days" in reply["content"]
    assert reply["citations"], reply
    citation = reply["citations"][0]
    assert set(citation) >= {"source_id", "title", "snippet"}
    assert (citation["source_id"], citation["title"]) == (source_id, "Help centre")

    # The trace: what was retrieved, in order, with scores, for this message.
    log = await admin_conn.fetchrow(
        "SELECT query, mode, chunk_ids, scores, bot_version_id FROM kb_retrieval_logs "
        "WHERE tenant_id = $1 AND message_id = $2",
        uuid.UUID(owner.tenant_id),
        uuid.UUID(sent.json()["message"]["id"]),
    )
    assert log is not None
    assert log["query"] == "When will my refund reach my payment method?"
    assert log["chunk_ids"]
    assert list(log["scores"]) == sorted(log["scores"], reverse=True)
    assert log["bot_version_id"] is not None

    # Nothing relevant: the bot says so (its fallback text), cites nothing.
    other = await client.post(
        "/v1/widget/messages",
        json={"content": "Which planet has the most moons?"},
        headers={**session.headers, "Idempotency-Key": "kb-answer-2"},
    )
    assert other.status_code == 201, other.text
    assert other.json()["reply"]["citations"] == []
    bot = await client.get(f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}", headers=owner.headers)
    assert other.json()["reply"]["content"] == bot.json()["config"]["fallback_text"]


async def test_the_quality_check_reports_what_was_not_found(
    client: httpx.AsyncClient, worker: None
) -> None:
    owner = await register(client, "kb-quality")
    await add_text(client, owner, "Help centre", REFUNDS)
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/quality-check",
        json={
            "questions": [
                "How long does standard shipping take?",
                "Can I get a refund?",
                "Do you sell gift cards?",
            ]
        },
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["found"] == 2
    assert body["not_found"] == ["Do you sell gift cards?"]
    assert body["results"][0]["items"][0]["title"] == "Help centre"


async def test_another_workspace_never_sees_the_knowledge(
    client: httpx.AsyncClient, worker: None
) -> None:
    a = await register(client, "kb-iso-a")
    b = await register(client, "kb-iso-b")
    source_id, _ = await add_text(client, a, "Secret plans", "The zeppelin launches at dawn.")
    assert (await search(client, a, "zeppelin"))["items"]
    assert (await search(client, b, "zeppelin"))["items"] == []
    # B's credentials on A's paths, and A's ids on B's paths: 404 both ways.
    resp = await client.get(
        f"/v1/tenants/{a.tenant_id}/knowledge/sources/{source_id}", headers=b.headers
    )
    assert_problem(resp, 404)
    resp = await client.get(
        f"/v1/tenants/{b.tenant_id}/knowledge/sources/{source_id}", headers=b.headers
    )
    assert_problem(resp, 404, "knowledge_source_not_found")
    resp = await client.post(
        f"/v1/tenants/{b.tenant_id}/knowledge/search",
        json={"query": "zeppelin", "bot_id": str(uuid.uuid4())},
        headers=b.headers,
    )
    assert_problem(resp, 404)


async def test_a_search_postgresql_cannot_read_is_a_422_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    """The search runs on the driver pool: a query text PostgreSQL refuses (a NUL character)
    is answered as the rest of the API answers it, a 422 problem, not a 500."""
    owner = await register(client, "kb-search-nul")
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/search",
        json={"query": "refund\u0000policy"},
        headers=owner.headers,
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    quality = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/quality-check",
        json={"questions": ["refund\u0000policy"]},
        headers=owner.headers,
    )
    assert quality.status_code == 422, quality.text
