"""LLM turns against a failing provider: retries, fallback models, circuit breaker, stalls."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from parley.llm.resilience import CircuitBreaker
from tests.conftest import (
    DatabaseUnderTest,
    assert_problem,
    create_widget,
    make_settings,
    parse_sse,
    register,
    widget_session,
)


def test_breaker_opens_then_half_opens_then_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(failure_threshold=2, reset_after=10, _clock=lambda: now[0])
    b.record_failure()
    assert b.allow()
    b.record_failure()
    assert b.state == "open"
    assert not b.allow()
    now[0] = 10.5
    assert b.state == "half_open"
    assert b.allow()
    b.record_failure()  # the trial call failed: open again for another cool-down
    assert not b.allow()
    now[0] = 21
    b.record_success()
    assert b.state == "closed"


async def test_fallback_model_answers_after_retries(
    client: httpx.AsyncClient, fake_openai: Any, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "fallback")
    w = await create_widget(
        client,
        owner,
        bot={"provider": "openai", "model": "fake-500", "fallback_models": ["fake-echo"]},
    )
    s = await widget_session(client, w.widget_key)
    marker = f"fb-{uuid.uuid4().hex[:8]}"
    resp = await client.post("/v1/widget/messages", json={"content": marker}, headers=s.headers)
    assert resp.status_code == 201
    assert resp.json()["reply"]["content"] == f"You said: {marker}"
    models = [c["model"] for c in fake_openai.calls_for(marker)]
    assert models == ["fake-500", "fake-500", "fake-echo"]  # one retry, then the fallback
    used = await admin_conn.fetchval(
        "SELECT model FROM llm_turns WHERE conversation_id = $1", uuid.UUID(s.conversation_id)
    )
    assert used == "fake-echo"


@pytest.fixture
async def strict_client(
    test_db: DatabaseUnderTest, data_dir: Any, fake_openai: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose breaker opens after 2 failed turns, with no retries and a 0.5 s stall limit."""
    from parley.app import create_app

    settings = make_settings(
        data_dir,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
        parley_llm_breaker_failures=2,
        parley_llm_breaker_reset_seconds=60,
        parley_llm_retries=0,
        parley_llm_stall_seconds=0.5,
        redis_url=None,
    )
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_breaker_stops_calling_a_failing_model(
    strict_client: httpx.AsyncClient, fake_openai: Any
) -> None:
    owner = await register(strict_client, "breaker")
    w = await create_widget(strict_client, owner, bot={"provider": "openai", "model": "fake-500"})
    s = await widget_session(strict_client, w.widget_key)
    marker = f"br-{uuid.uuid4().hex[:8]}"
    for i in range(2):
        r = await strict_client.post(
            "/v1/widget/messages", json={"content": f"{marker} {i}"}, headers=s.headers
        )
        assert_problem(r, 502, "provider_error")
    r = await strict_client.post(
        "/v1/widget/messages", json={"content": f"{marker} 2"}, headers=s.headers
    )
    assert_problem(r, 503, "provider_unavailable")
    assert len(fake_openai.calls_for(marker)) == 2  # the third turn never reached the provider


async def test_a_stalled_stream_ends_cleanly_and_is_recorded(
    strict_client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(strict_client, "stall")
    w = await create_widget(strict_client, owner, bot={"provider": "openai", "model": "fake-stall"})
    s = await widget_session(strict_client, w.widget_key)
    resp = await strict_client.post(
        "/v1/widget/messages",
        json={"content": "one two three four"},
        headers={**s.headers, "Accept": "text/event-stream"},
    )
    events = parse_sse(resp.text)
    assert [e[0] for e in events][:2] == ["message.created", "reply.delta"]
    assert events[-1][0] == "error"
    assert events[-1][1]["code"] == "provider_stalled"
    row = await admin_conn.fetchrow(
        "SELECT status, error FROM llm_turns WHERE conversation_id = $1",
        uuid.UUID(s.conversation_id),
    )
    assert (row["status"], row["error"]) == ("failed", "provider_stalled")


async def test_costs_per_bot_and_model(client: httpx.AsyncClient) -> None:
    owner = await register(client, "costs")
    w = await create_widget(client, owner, bot={"provider": "openai", "model": "gpt-4o-mini"})
    # The fake answers any model name; gpt-4o-mini is in the default price table.
    s = await widget_session(client, w.widget_key)
    for i in range(3):
        r = await client.post(
            "/v1/widget/messages", json={"content": f"price {i}"}, headers=s.headers
        )
        assert r.status_code == 201
    report = (
        await client.get(f"/v1/tenants/{owner.tenant_id}/llm-usage", headers=owner.headers)
    ).json()
    (row,) = report["items"]
    assert (row["bot_id"], row["model"], row["turns"]) == (w.bot_id, "gpt-4o-mini", 3)
    # fake usage: 11 prompt tokens and 4 completion tokens per turn ("You said: price N")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (33, 12)
    expected = (33 * 0.15 + 12 * 0.60) / 1_000_000
    assert abs(float(row["cost_usd"]) - expected) < 1e-6
    assert row["avg_ttft_ms"] is not None


@pytest.mark.parametrize("failing", ["fake-429", "fake-hang"])
async def test_fallback_on_rate_limit_and_timeout(
    strict_client: httpx.AsyncClient, fake_openai: Any, failing: str
) -> None:
    owner = await register(strict_client, f"fb-{failing}")
    w = await create_widget(
        strict_client,
        owner,
        bot={"provider": "openai", "model": failing, "fallback_models": ["fake-echo"]},
    )
    s = await widget_session(strict_client, w.widget_key)
    marker = f"fb2-{uuid.uuid4().hex[:8]}"
    r = await strict_client.post("/v1/widget/messages", json={"content": marker}, headers=s.headers)
    assert r.status_code == 201, r.text
    assert r.json()["reply"]["content"] == f"You said: {marker}"
    assert [c["model"] for c in fake_openai.calls_for(marker)] == [failing, "fake-echo"]


async def test_an_unexpected_failure_ends_cleanly_and_stays_retryable(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "garbage")
    w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-garbage"})
    s = await widget_session(client, w.widget_key)
    headers = {**s.headers, "Idempotency-Key": "garbage-1"}
    streamed = await client.post(
        "/v1/widget/messages",
        json={"content": "hi"},
        headers={**headers, "Accept": "text/event-stream"},
    )
    events = parse_sse(streamed.text)
    assert events[-1][0] == "error"
    assert events[-1][1]["code"] == "internal_error"
    row = await admin_conn.fetchrow(
        "SELECT status, error FROM llm_turns WHERE conversation_id = $1",
        uuid.UUID(s.conversation_id),
    )
    assert (row["status"], row["error"]) == ("failed", "internal_error")
    # Not stuck "in progress": fixed, the same key goes through at once, with one user message.
    await client.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}",
        json={"model": "fake-echo"},
        headers=owner.headers,
    )
    again = await client.post("/v1/widget/messages", json={"content": "hi"}, headers=headers)
    assert again.status_code == 201
    users = await admin_conn.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'user'",
        uuid.UUID(s.conversation_id),
    )
    assert users == 1
