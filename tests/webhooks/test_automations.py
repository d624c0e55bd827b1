"""Automation rules: message conditions → tag, handoff request (once) and a webhook call to an
endpoint not subscribed to the event; CRUD, validation and tenant isolation of the rules."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.conftest import (
    Account,
    assert_problem,
    create_api_key,
    create_widget,
    register,
    widget_session,
)
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import deliveries, make_hook
from tests.webhooks.receiver import Receiver


async def _rule(client: httpx.AsyncClient, owner: Account, **body: Any) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/automations",
        json={"name": "r", "event": "message.created", **body},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def test_rules_tag_request_handoff_once_and_call_a_webhook(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "auto")
    handoffs = await make_hook(wh_client, owner, receiver.url("/handoffs"), ["handoff.requested"])
    called = await make_hook(wh_client, owner, receiver.url("/called"), ["usage.threshold"])
    await _rule(
        wh_client,
        owner,
        condition={"type": "message_contains", "value": "refund"},
        action={"type": "tag_conversation", "tag": "refund"},
    )
    await _rule(
        wh_client,
        owner,
        condition={"type": "visitor_left_email"},
        action={"type": "request_handoff"},
    )
    await _rule(
        wh_client,
        owner,
        condition={"type": "bot_could_not_answer"},
        action={"type": "call_webhook", "webhook_id": called["id"]},
    )
    w = await create_widget(wh_client, owner)  # extractive bot, no knowledge: it falls back
    s = await widget_session(wh_client, w.widget_key)
    for text in (
        "Hello there",
        "I want a REFUND please",
        "refund again",
        "write to jane.doe@example.com",
        "or jane@example.org",
    ):
        sent = await wh_client.post(
            "/v1/widget/messages", json={"content": text}, headers=s.headers
        )
        assert sent.status_code == 201, sent.text

    # message.created reaches the rules through a job the send enqueued with the message.
    async with worker():
        await wait_for(lambda: _all_delivered(wh_client, owner, called["id"], 5))
        await wait_for(lambda: _all_delivered(wh_client, owner, handoffs["id"], 1))
    row = await admin_conn.fetchrow(
        "SELECT tags, handoff_requested_at FROM conversations WHERE id = $1",
        uuid.UUID(s.conversation_id),
    )
    assert list(row["tags"]) == ["refund"]  # matched twice, tagged once
    assert row["handoff_requested_at"] is not None

    (handoff,) = await deliveries(wh_client, owner, handoffs["id"])  # two emails, one request
    assert handoff["event_type"] == "handoff.requested"
    assert handoff["payload"]["data"]["conversation_id"] == s.conversation_id
    assert handoff["payload"]["data"]["reason"] == "automation"

    calls = await deliveries(wh_client, owner, called["id"])
    assert len(calls) == 5  # one per fallback reply, though the endpoint never subscribed
    assert {c["payload"]["data"]["role"] for c in calls} == {"assistant"}
    assert all(c["payload"]["data"]["fallback"] for c in calls)
    assert len(receiver.at("/called")) == 5
    assert len(receiver.at("/handoffs")) == 1


async def _all_delivered(client: httpx.AsyncClient, owner: Account, hook: str, n: int) -> bool:
    return len(await deliveries(client, owner, hook, "delivered")) == n


async def test_subscribed_events_and_a_disabled_endpoint(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "auto-subs")
    hook = await make_hook(wh_client, owner, receiver.url("/msgs"), ["message.created"])
    w = await create_widget(wh_client, owner)
    s = await widget_session(wh_client, w.widget_key)  # conversation.started: not subscribed
    assert await deliveries(wh_client, owner, hook["id"]) == []
    await wh_client.post("/v1/widget/messages", json={"content": "hi"}, headers=s.headers)

    async def two() -> bool:
        return len(await deliveries(wh_client, owner, hook["id"])) == 2

    async with worker():  # the send enqueued message.created with each message
        await wait_for(two)
    items = await deliveries(wh_client, owner, hook["id"])
    assert sorted(d["payload"]["data"]["role"] for d in items) == ["assistant", "user"]
    page = await wh_client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}/deliveries?limit=1",
        headers=owner.headers,
    )
    assert len(page.json()["items"]) == 1
    nxt = await wh_client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}/deliveries",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=owner.headers,
    )
    assert nxt.json()["items"][0]["id"] == items[1]["id"]
    assert nxt.json()["next_cursor"] is None
    off = await wh_client.patch(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}",
        json={"enabled": False},
        headers=owner.headers,
    )
    assert off.json()["enabled"] is False
    await wh_client.post("/v1/widget/messages", json={"content": "again"}, headers=s.headers)
    async with worker():
        await asyncio.sleep(1.0)  # nothing was enqueued for a disabled endpoint
    assert len(await deliveries(wh_client, owner, hook["id"])) == 2


async def test_rule_crud_validation_and_tenant_isolation(client: httpx.AsyncClient) -> None:
    a = await register(client, "auto-a")
    b = await register(client, "auto-b")
    b_hook = await make_hook(client, b, "https://93.184.215.14/b", ["usage.threshold"])
    base = f"/v1/tenants/{a.tenant_id}/automations"
    # Another tenant's webhook id in the body does not exist here.
    resp = await client.post(
        base,
        json={
            "name": "x",
            "event": "message.created",
            "condition": {"type": "always"},
            "action": {"type": "call_webhook", "webhook_id": b_hook["id"]},
        },
        headers=a.headers,
    )
    assert_problem(resp, 404, "webhook_not_found")
    bad = await client.post(
        base,
        json={
            "name": "x",
            "event": "message.created",
            "condition": {"type": "sentiment_is", "value": "angry"},
            "action": {"type": "request_handoff"},
        },
        headers=a.headers,
    )
    assert_problem(bad, 422)
    rule = await _rule(
        client, a, condition={"type": "always"}, action={"type": "tag_conversation", "tag": "all"}
    )
    patched = await client.patch(
        f"{base}/{rule['id']}", json={"enabled": False, "name": "off"}, headers=a.headers
    )
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    assert patched.json()["condition"] == {"type": "always"}
    listed = (await client.get(base, headers=a.headers)).json()
    assert [r["id"] for r in listed["items"]] == [rule["id"]]
    # B cannot see or change A's rule; A's rule id under B's tenant is absent.
    b_rule = await _rule(
        client, b, condition={"type": "always"}, action={"type": "request_handoff"}
    )
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method,
            f"{base}/{b_rule['id']}",
            json={"name": "stolen"} if method == "PATCH" else None,
            headers=a.headers,
        )
        assert_problem(resp, 404, "automation_not_found")
    gone = await client.delete(f"{base}/{rule['id']}", headers=a.headers)
    assert gone.status_code == 204
    assert_problem(await client.get(f"{base}/{rule['id']}", headers=a.headers), 404)


async def test_another_tenants_webhook_and_delivery_ids_are_404(
    wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    a = await register(wh_client, "wh-iso-a")
    b = await register(wh_client, "wh-iso-b")
    a_hook = await make_hook(wh_client, a, receiver.url("/a"), ["conversation.started"])
    b_hook = await make_hook(wh_client, b, receiver.url("/b"), ["conversation.started"])
    w = await create_widget(wh_client, b)
    await widget_session(wh_client, w.widget_key)
    (b_delivery,) = await deliveries(wh_client, b, b_hook["id"])
    base = f"/v1/tenants/{a.tenant_id}/webhooks"
    for method, path, body in (
        ("GET", f"{base}/{b_hook['id']}", None),
        ("PATCH", f"{base}/{b_hook['id']}", {"enabled": False}),
        ("DELETE", f"{base}/{b_hook['id']}", None),
        ("POST", f"{base}/{b_hook['id']}/rotate-secret", None),
        ("GET", f"{base}/{b_hook['id']}/deliveries", None),
        ("GET", f"{base}/{a_hook['id']}/deliveries/{b_delivery['id']}", None),
        ("POST", f"{base}/{a_hook['id']}/deliveries/{b_delivery['id']}/retry", None),
        ("POST", f"{base}/{b_hook['id']}/deliveries/{b_delivery['id']}/retry", None),
    ):
        resp = await wh_client.request(method, path, json=body, headers=a.headers)
        problem = assert_problem(resp, 404)
        assert b_hook["id"] not in str(problem.get("detail"))
    dlq = await wh_client.get(f"{base}/dead-letters", headers=a.headers)
    assert dlq.json()["items"] == []
    # B's webhook is untouched.
    got = await wh_client.get(
        f"/v1/tenants/{b.tenant_id}/webhooks/{b_hook['id']}", headers=b.headers
    )
    assert got.json()["enabled"] is True


async def test_the_compat_api_emits_the_same_events(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-compat")
    hook = await make_hook(
        wh_client, owner, receiver.url("/compat"), ["conversation.started", "message.created"]
    )
    bot = await wh_client.post(
        f"/v1/tenants/{owner.tenant_id}/bots", json={"name": "api"}, headers=owner.headers
    )
    key = (await create_api_key(wh_client, owner, ["chat"]))["key"]
    resp = await wh_client.post(
        "/v1/compat/chat/completions",
        json={"model": bot.json()["id"], "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status_code == 200, resp.text

    async def three() -> bool:
        return len(await deliveries(wh_client, owner, hook["id"])) == 3

    async with worker():  # message.created travels through a job enqueued with each message
        await wait_for(three)
    items = await deliveries(wh_client, owner, hook["id"])
    assert sorted((d["event_type"], d["payload"]["data"].get("role")) for d in items) == [
        ("conversation.started", None),
        ("message.created", "assistant"),
        ("message.created", "user"),
    ]


async def test_a_rerun_emit_job_applies_the_rules_once(
    wh_client: httpx.AsyncClient, wh_app: Any, receiver: Receiver, admin_conn: asyncpg.Connection
) -> None:
    """The job that turns a stored message into `message.created` deliveries and rule actions
    can run again after a crash between its commit and its acknowledgement: the
    `emitted_events` row written in the same transaction as the actions stops the second run."""
    from parley.conversations.tasks import EMIT_MESSAGE_JOB, emit_message
    from parley.kit.jobs import JobContext

    owner = await register(wh_client, "auto-rerun")
    called = await make_hook(wh_client, owner, receiver.url("/called"), ["usage.threshold"])
    await _rule(
        wh_client,
        owner,
        condition={"type": "message_contains", "value": "refund"},
        action={"type": "call_webhook", "webhook_id": called["id"]},
    )
    await _rule(
        wh_client,
        owner,
        condition={"type": "message_contains", "value": "refund"},
        action={"type": "request_handoff"},
    )
    w = await create_widget(wh_client, owner)
    s = await widget_session(wh_client, w.widget_key)
    sent = await wh_client.post(
        "/v1/widget/messages", json={"content": "a refund please"}, headers=s.headers
    )
    assert sent.status_code == 201, sent.text
    payload = {
        "tenant_id": owner.tenant_id,
        "event": "message.created",
        "message_id": sent.json()["message"]["id"],
        "fallback": False,
    }
    runtime = wh_app.state.runtime
    for attempt in range(2):  # the first run, then the re-run of the same job
        await emit_message(
            JobContext(
                db=runtime.db,
                job_id=0,
                entrypoint=EMIT_MESSAGE_JOB,
                attempt=attempt,
                payload=payload,
                runtime_=runtime,
            )
        )
    tid = uuid.UUID(owner.tenant_id)
    rows = await admin_conn.fetch(
        "SELECT endpoint_id, event_type FROM webhook_deliveries WHERE tenant_id = $1", tid
    )
    # The rule's call: one delivery of the triggering event to the endpoint, not two.
    assert [(str(r["endpoint_id"]), r["event_type"]) for r in rows] == [
        (called["id"], "message.created")
    ]
    handoff = await admin_conn.fetchval(
        "SELECT handoff_requested_at FROM conversations WHERE tenant_id = $1", tid
    )
    assert handoff is not None
    emitted = await admin_conn.fetchval(
        "SELECT count(*) FROM emitted_events WHERE tenant_id = $1 AND subject_id = $2",
        tid,
        uuid.UUID(payload["message_id"]),
    )
    assert emitted == 1
