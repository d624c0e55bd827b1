"""Asynchronous sends (`Prefer: respond-async`): 202 with the stored message, the turn run by a
job, the reply on the conversation's events stream and in history; idempotent replays; a
retried job never calls the provider twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley.conversations.turn import TURN_JOB
from parley.kit.db import TenantId, create_database, tenant_session
from parley.kit.jobs import asyncpg_dsn, enqueue
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    create_widget,
    make_settings,
    register,
    serve_app,
    widget_session,
)
from tests.widget.test_widget_live import _read_events

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def worker_server(
    data_dir: Path, test_db: DatabaseUnderTest, fake_openai: Any
) -> Iterator[LiveServer]:
    """The app over real HTTP with its in-process job worker, which runs the queued turns."""
    settings = make_settings(
        data_dir,
        parley_worker_in_process=True,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


async def _history(client: httpx.AsyncClient, s: Any) -> list[dict[str, Any]]:
    r = await client.get(
        f"/v1/widget/conversations/{s.conversation_id}/messages", headers=s.headers
    )
    assert r.status_code == 200
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _until_replied(client: httpx.AsyncClient, s: Any, n_replies: int) -> list[dict[str, Any]]:
    for _ in range(200):
        items = await _history(client, s)
        if sum(m["role"] == "assistant" for m in items) >= n_replies:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("the queued turn was never answered")


async def test_async_send_is_accepted_and_the_reply_arrives_on_the_events_stream(
    worker_server: LiveServer, fake_openai: Any
) -> None:
    async with httpx.AsyncClient(base_url=worker_server.base_url, timeout=20) as client:
        owner = await register(client, "async")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-echo"})
        s = await widget_session(client, w.widget_key)
        url = f"/v1/widget/conversations/{s.conversation_id}/events"
        listener = asyncio.create_task(_read_events(client, url, s.headers, want=2))
        await asyncio.sleep(0.3)  # let the stream subscribe
        text = f"queued question {uuid.uuid4().hex[:8]}"
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": text},
            headers={**s.headers, **ASYNC, "Idempotency-Key": "async-1"},
        )
        assert sent.status_code == 202, sent.text
        assert sent.headers["preference-applied"] == "respond-async"
        body = sent.json()
        assert body["reply"] is None
        assert body["message"]["role"] == "user"
        assert body["message"]["content"] == text
        uuid.UUID(body["operation_id"])

        events = await listener
        assert [(e[0], e[1]["role"]) for e in events] == [
            ("message.created", "user"),
            ("message.created", "assistant"),
        ]
        assert events[0][1]["id"] == body["message"]["id"]
        assert events[1][1]["content"] == f"You said: {text}"
        items = await _history(client, s)
        assert [m["id"] for m in items] == [body["message"]["id"], events[1][1]["id"]]
        assert len(fake_openai.calls_for(text)) == 1


async def test_async_replay_returns_the_same_stored_result(
    worker_server: LiveServer, fake_openai: Any
) -> None:
    async with httpx.AsyncClient(base_url=worker_server.base_url, timeout=20) as client:
        owner = await register(client, "async-replay")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-echo"})
        s = await widget_session(client, w.widget_key)
        text = f"replayed question {uuid.uuid4().hex[:8]}"
        headers = {**s.headers, **ASYNC, "Idempotency-Key": "async-replay"}
        first = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
        again = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json()["message"] == first.json()["message"]
        assert again.json()["operation_id"] == first.json()["operation_id"]

        items = await _until_replied(client, s, 1)
        reply = items[-1]
        late = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
        assert late.status_code == 202
        assert late.json() == {**first.json(), "reply": reply}
        # The same key without the preference answers synchronously, from the same result.
        sync = await client.post(
            "/v1/widget/messages",
            json={"content": text},
            headers={**s.headers, "Idempotency-Key": "async-replay"},
        )
        assert sync.status_code == 201
        assert sync.json() == {"message": first.json()["message"], "reply": reply}
        assert len(await _history(client, s)) == 2
        assert len(fake_openai.calls_for(text)) == 1
        other = await client.post(
            "/v1/widget/messages", json={"content": "another text"}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency_key_reused"


async def test_a_retried_turn_job_never_calls_the_provider_twice(
    worker_server: LiveServer,
    fake_openai: Any,
    test_db: DatabaseUnderTest,
    admin_conn: asyncpg.Connection,
) -> None:
    async with httpx.AsyncClient(base_url=worker_server.base_url, timeout=20) as client:
        owner = await register(client, "async-retry")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-echo"})
        s = await widget_session(client, w.widget_key)
        who = (await client.get("/v1/widget/whoami", headers=s.headers)).json()
        text = f"retried question {uuid.uuid4().hex[:8]}"
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": text},
            headers={**s.headers, **ASYNC, "Idempotency-Key": "async-retry"},
        )
        assert sent.status_code == 202
        await _until_replied(client, s, 1)

        # The job runs again (as after a worker died between storing the reply and
        # acknowledging the job): same payload, through the real queue and worker.
        payload = {
            "tenant_id": owner.tenant_id,
            "operation_id": sent.json()["operation_id"],
            "scope": f"widget:{who['visitor_id']}",
            "key": "async-retry",
            "conversation_id": s.conversation_id,
            "bot_id": w.bot_id,
            "message_id": sent.json()["message"]["id"],
        }
        db = create_database(test_db.app_url, pool_size=1)
        try:
            async with tenant_session(db, TenantId(uuid.UUID(owner.tenant_id))) as session:
                job_id = await enqueue(session, TURN_JOB, payload)
        finally:
            await db.dispose()
        for _ in range(200):
            done = await admin_conn.fetchval(
                "SELECT count(*) FROM pgqueuer_log WHERE job_id = $1 AND status = 'successful'",
                job_id,
            )
            if done:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the retried job did not run")
        items = await _history(client, s)
        assert [m["role"] for m in items] == ["user", "assistant"]
        assert len(fake_openai.calls_for(text)) == 1
        turns = await admin_conn.fetch(
            "SELECT status FROM llm_turns WHERE operation_id = $1",
            uuid.UUID(sent.json()["operation_id"]),
        )
        assert [t["status"] for t in turns] == ["succeeded"]


async def test_a_failed_queued_turn_is_reported_on_the_events_stream(
    worker_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=worker_server.base_url, timeout=20) as client:
        owner = await register(client, "async-fail")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-500"})
        s = await widget_session(client, w.widget_key)
        url = f"/v1/widget/conversations/{s.conversation_id}/events"
        listener = asyncio.create_task(_read_events(client, url, s.headers, want=2))
        await asyncio.sleep(0.3)
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": "this will fail"},
            headers={**s.headers, **ASYNC, "Idempotency-Key": "async-fail"},
        )
        assert sent.status_code == 202
        events = await listener
        assert events[0][0] == "message.created"
        assert events[1][0] == "reply.failed"
        assert events[1][1]["operation_id"] == sent.json()["operation_id"]
        assert events[1][1]["error"]["code"] == "provider_error"
        assert json.dumps(events[1][1]).count("this will fail") == 0  # no message text echoed


async def test_a_key_left_open_after_its_turn_succeeded_is_answered_from_the_ledger(
    worker_server: LiveServer, fake_openai: Any, admin_conn: asyncpg.Connection
) -> None:
    """A process that died after storing the reply but before closing the key: once the
    lease runs out, the retry takes the operation over and gets the stored reply."""
    async with httpx.AsyncClient(base_url=worker_server.base_url, timeout=20) as client:
        owner = await register(client, "takeover")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-echo"})
        s = await widget_session(client, w.widget_key)
        text = f"taken over {uuid.uuid4().hex[:8]}"
        headers = {**s.headers, "Idempotency-Key": "takeover-1"}
        first = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
        assert first.status_code == 201
        await admin_conn.execute(
            "UPDATE idempotency_keys SET state = 'in_progress', response = NULL, "
            "lease_expires_at = now() - interval '1 second' WHERE key = 'takeover-1' "
            "AND tenant_id = $1",
            uuid.UUID(owner.tenant_id),
        )
        again = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
        assert again.status_code == 201
        assert again.json() == first.json()
        state = await admin_conn.fetchval(
            "SELECT state FROM idempotency_keys WHERE key = 'takeover-1' AND tenant_id = $1",
            uuid.UUID(owner.tenant_id),
        )
        assert state == "completed"
        assert len(await _history(client, s)) == 2
        assert len(fake_openai.calls_for(text)) == 1


async def test_an_async_send_wakes_the_workers_once_without_a_notify_per_insert(
    client: httpx.AsyncClient, test_db: DatabaseUnderTest, admin_conn: asyncpg.Connection
) -> None:
    """The send's transaction enqueues its turn quietly (a notifying commit holds a
    database-wide lock through its WAL flush: decision 0008, migration 0013); the API then
    wakes the workers with one nudge. pgqueuer's per-insert trigger would add a second
    insert notification."""
    from pgqueuer.domain.settings import db_settings

    owner = await register(client, "async-quiet")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    conn = await asyncpg.connect(asyncpg_dsn(test_db.app_url))
    try:
        await conn.add_listener(
            db_settings().channel, lambda *args: received.put_nowait(json.loads(str(args[-1])))
        )
        # Other tests' workers share this database: start from a quiet channel.
        for _ in range(50):
            try:
                await asyncio.wait_for(received.get(), timeout=0.3)
            except TimeoutError:
                break
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": "a quiet question"},
            headers={**s.headers, **ASYNC, "Idempotency-Key": "quiet-1"},
        )
        assert sent.status_code == 202, sent.text
        first = await asyncio.wait_for(received.get(), timeout=5)
        await asyncio.sleep(0.5)  # anything else the send caused has arrived by now
        later = [received.get_nowait() for _ in range(received.qsize())]
    finally:
        await conn.close()
    inserts = [n for n in [first, *later] if n.get("operation") == "insert"]
    assert len(inserts) == 1, [first, *later]
    # The turn was enqueued all the same (still queued, or already taken by a worker).
    jobs = await admin_conn.fetchval(
        "SELECT count(*) FROM pgqueuer_log WHERE entrypoint = $1 AND status = 'queued' "
        "AND created > now() - interval '1 minute'",
        TURN_JOB,
    )
    assert jobs >= 1
