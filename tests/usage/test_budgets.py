"""Per-visitor daily budgets, set per channel: one visitor cannot spend the workspace's
budget. The widget, the webhook channel and the OpenAI-compatible API apply them; the refused
message stores nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.channels.helpers import make_channel, message_body, signed_headers, wait_for
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    assert_problem,
    create_api_key,
    create_widget,
    make_settings,
    register,
    serve_app,
    widget_session,
)
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.usage.conftest import count


async def _budget(c: httpx.AsyncClient, owner: Any, channel_id: str, **budget: int) -> None:
    resp = await c.put(
        f"/v1/tenants/{owner.tenant_id}/channels/{channel_id}/visitor-budget",
        json=budget,
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "channel_id": channel_id,
        "messages_per_day": budget.get("messages_per_day"),
        "tokens_per_day": budget.get("tokens_per_day"),
    }


def _over(resp: httpx.Response, metric: str, limit: int, used: int) -> dict[str, Any]:
    body = assert_problem(resp, 429, "visitor_budget_exceeded")
    assert (body["metric"], body["limit"], body["used"]) == (metric, limit, used)
    # Read the day when the answer came, not when the module was imported (a run crosses midnight).
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert datetime.fromisoformat(body["reset_at"]) == datetime(
        tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC
    )
    assert 1 <= int(resp.headers["Retry-After"]) <= 86_400
    return body


async def _say(c: httpx.AsyncClient, s: Any, text: str, key: str) -> httpx.Response:
    return await c.post(
        "/v1/widget/messages",
        json={"content": text},
        headers={**s.headers, "Idempotency-Key": key},
    )


async def test_widget_visitor_messages_per_day(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "budget-msgs")
    w = await create_widget(pclient, owner)
    other = await create_widget(pclient, owner)
    await _budget(pclient, owner, w.channel_id, messages_per_day=2)
    await pclient.put(
        f"/v1/tenants/{owner.tenant_id}/usage/settings",
        json={"quota_message": "That's all for today."},
        headers=owner.headers,
    )
    ada = await widget_session(pclient, w.widget_key)
    for i in range(2):
        assert (await _say(pclient, ada, f"q{i}", f"ada-{i}")).status_code == 201
    stored = await count(admin_conn, "messages", owner.tenant_id)
    keys = await count(admin_conn, "idempotency_keys", owner.tenant_id)
    refused = await _say(pclient, ada, "q2", "ada-2")
    body = _over(refused, "visitor_messages_per_day", 2, 2)
    assert body["message"] == "That's all for today."
    assert await count(admin_conn, "messages", owner.tenant_id) == stored
    assert await count(admin_conn, "idempotency_keys", owner.tenant_id) == keys
    # A retry of an accepted message is a replay, not a new message of the budget.
    assert (await _say(pclient, ada, "q0", "ada-0")).status_code in (200, 201)
    # Another visitor of the channel, and a visitor of a channel without a budget: unaffected.
    bob = await widget_session(pclient, w.widget_key)
    assert (await _say(pclient, bob, "hello", "bob-0")).status_code == 201
    cy = await widget_session(pclient, other.widget_key)
    for i in range(3):
        assert (await _say(pclient, cy, f"c{i}", f"cy-{i}")).status_code == 201
    used = await admin_conn.fetchval(
        "SELECT messages FROM visitor_usage u JOIN conversations c "
        "ON c.tenant_id = u.tenant_id AND c.visitor_id = u.visitor_id WHERE c.id = $1::uuid",
        ada.conversation_id,
    )
    assert used == 2
    # Removing the budget lets Ada go on.
    await _budget(pclient, owner, w.channel_id)
    assert (await _say(pclient, ada, "q2", "ada-2")).status_code == 201


async def test_widget_visitor_tokens_per_day(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "budget-tokens")
    w = await create_widget(pclient, owner, bot={"provider": "openai", "model": "fake-echo"})
    await _budget(pclient, owner, w.channel_id, tokens_per_day=5)
    s = await widget_session(pclient, w.widget_key)
    assert (await _say(pclient, s, "spend", "t-0")).status_code == 201
    spent = await admin_conn.fetchval(
        "SELECT tokens FROM visitor_usage WHERE tenant_id = $1::uuid", owner.tenant_id
    )
    assert spent > 5
    _over(await _say(pclient, s, "more", "t-1"), "visitor_tokens_per_day", 5, spent)


async def test_a_budget_needs_an_admin_and_a_channel_of_the_workspace(
    pclient: httpx.AsyncClient,
) -> None:
    owner = await register(pclient, "budget-auth")
    other = await register(pclient, "budget-other")
    w = await create_widget(pclient, other)
    resp = await pclient.put(
        f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}/visitor-budget",
        json={"messages_per_day": 1},
        headers=owner.headers,
    )
    assert_problem(resp, 404, "channel_not_found")
    bad = await pclient.put(
        f"/v1/tenants/{other.tenant_id}/channels/{w.channel_id}/visitor-budget",
        json={"messages_per_day": 0},
        headers=other.headers,
    )
    assert_problem(bad, 422)


@pytest.fixture(scope="module")
def channel_server(
    data_dir: Path, test_db: DatabaseUnderTest, fake_openai: Any
) -> Iterator[LiveServer]:
    """The app over real HTTP with its in-process worker, allowed to reach the callback_receiver."""
    settings = make_settings(
        data_dir,
        parley_outbound_allow_private=True,
        parley_worker_in_process=True,
        parley_job_heartbeat_timeout_seconds=5,
        parley_channel_send_timeout_seconds=1.0,
        parley_rate_limits="off",
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


async def test_webhook_channel_contact_over_budget_gets_the_message_and_nothing_is_stored(
    channel_server: LiveServer, callback_receiver: WebhookReceiver, admin_conn: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=channel_server.base_url, timeout=30) as http:
        owner = await register(http, "budget-hook")
        path = f"budget-{uuid.uuid4().hex[:8]}"
        ch = await make_channel(
            http,
            owner,
            "webhook",
            {"callback_url": callback_receiver.url(path)},
            fallback_text="Hi.",
        )
        await _budget(http, owner, ch.channel_id, messages_per_day=1)
        await http.put(
            f"/v1/tenants/{owner.tenant_id}/usage/settings",
            json={"quota_message": "Come back tomorrow."},
            headers=owner.headers,
        )
        for text in ("first", "second"):
            body = message_body("customer-9", text)
            resp = await http.post(
                ch.inbound_path, content=body, headers=signed_headers(ch.secret, body)
            )
            assert resp.status_code == 200, resp.text

            async def arrived(n: int = 1 if text == "first" else 2) -> bool:
                return len(callback_receiver.for_path(path)) >= n

            await wait_for(arrived, what=f"reply to {text}")
    texts = [d.json()["data"]["text"] for d in callback_receiver.for_path(path)]
    assert texts == ["Hi.", "Come back tomorrow."]
    users = await admin_conn.fetch(
        "SELECT content FROM messages WHERE tenant_id = $1::uuid AND role = 'user'",
        owner.tenant_id,
    )
    assert [r["content"] for r in users] == ["first"]
    statuses = await admin_conn.fetch(
        "SELECT status, error FROM inbound_events WHERE tenant_id = $1::uuid ORDER BY id",
        owner.tenant_id,
    )
    assert [tuple(r) for r in statuses] == [("done", None), ("failed", "visitor_budget_exceeded")]
    # Both deliveries were metered as webhook events; only the first as a message.
    metered = await admin_conn.fetch(
        "SELECT type, count(*) AS n FROM usage_events WHERE tenant_id = $1::uuid GROUP BY type",
        owner.tenant_id,
    )
    by_type = {r["type"]: r["n"] for r in metered}
    assert (by_type["webhook_events"], by_type["messages_processed"]) == (2, 1)


async def test_compat_api_user_is_the_visitor(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "budget-compat")
    w = await create_widget(pclient, owner)
    key = (await create_api_key(pclient, owner, ["chat"]))["key"]
    auth = {"Authorization": f"Bearer {key}"}

    async def ask(user: str) -> httpx.Response:
        return await pclient.post(
            "/v1/compat/chat/completions",
            json={"model": w.bot_id, "user": user, "messages": [{"role": "user", "content": "hi"}]},
            headers=auth,
        )

    assert (await ask("ann")).status_code == 200
    channels = await pclient.get(f"/v1/tenants/{owner.tenant_id}/channels", headers=owner.headers)
    api = next(c for c in channels.json()["items"] if c["type"] == "api")
    await _budget(pclient, owner, api["id"], messages_per_day=1)
    assert (await ask("ben")).status_code == 200
    _over(await ask("ben"), "visitor_messages_per_day", 1, 1)
    assert (await ask("cat")).status_code == 200
