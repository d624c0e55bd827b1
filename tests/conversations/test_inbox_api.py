"""The staff inbox through the API (ASGI): handoff by phrase, taking over, the bot's silence,
operator replies (idempotent), hand back, resolve/reopen, notes, tags, search, filters, the
conversation page, the timeline and the service figures; the other handoff triggers; another
workspace's ids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from parley.conversations.tasks import EMIT_MESSAGE_JOB, emit_message
from parley.kit.ids import id_floor
from parley.kit.jobs import JobContext
from parley.webhooks.tasks import EMIT_EVENT_JOB, emit_event
from tests.conftest import assert_problem, parse_sse, register, widget_session
from tests.conversations.helpers import inbox_workspace
from tests.webhooks.helpers import deliveries, make_hook


async def _send(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> httpx.Response:
    resp = await client.post("/v1/widget/messages", json={"content": text}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp


async def test_handoff_take_over_reply_hand_back(client: httpx.AsyncClient) -> None:
    box = await inbox_workspace(client)
    hook = await make_hook(
        client,
        box.owner,
        "https://93.184.215.14/inbox",
        ["conversation.assigned", "conversation.resolved", "message.created"],
    )
    s = await widget_session(client, box.widget.widget_key, page_url="https://shop.example/p/1")
    conv = s.conversation_id
    first = await _send(client, s.headers, "hello there, zebra crossing")
    assert first.json()["reply"]["role"] == "assistant"

    # The phrase rule: no turn; the visitor is told (nobody online: the offline message).
    asked = await _send(client, s.headers, "Can I TALK TO A PERSON please?")
    body = asked.json()
    assert body["handoff_status"] == "waiting"
    assert body["ask_email"] is True
    assert body["reply"]["content"].startswith("Nobody from our team is available")
    left = await client.post(
        "/v1/widget/contact", json={"email": "v@example.com"}, headers=s.headers
    )
    assert left.status_code == 204

    waiting = await client.get(
        box.staff("/conversations"), params={"status": "waiting"}, headers=box.agent.headers
    )
    assert [c["id"] for c in waiting.json()["items"]] == [conv]

    # The agent takes it; the bot falls silent.
    taken = await client.post(box.conv(conv, "/assign"), headers=box.agent.headers)
    assert taken.status_code == 200, taken.text
    assert (taken.json()["handoff_status"], taken.json()["assignee_id"]) == (
        "assigned",
        box.agent.user_id,
    )
    quiet = await _send(client, s.headers, "are you there?")
    assert quiet.json()["reply"] is None
    assert quiet.json()["handoff_status"] == "assigned"
    streamed = await client.post(
        "/v1/widget/messages",
        json={"content": "still there?"},
        headers={**s.headers, "Accept": "text/event-stream"},
    )
    names = [e[0] for e in parse_sse(streamed.text)]
    assert names == ["message.created", "conversation.status"]

    # The operator's reply, idempotent like a visitor's send.
    path = box.conv(conv, "/messages")
    key = {**box.agent.headers, "Idempotency-Key": "reply-1"}
    r1 = await client.post(path, json={"content": "Hi, Ann here."}, headers=key)
    assert r1.status_code == 201, r1.text
    r2 = await client.post(path, json={"content": "Hi, Ann here."}, headers=key)
    assert r2.status_code == 201
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert r2.json()["message"]["id"] == r1.json()["message"]["id"]
    assert_problem(
        await client.post(path, json={"content": "Something else"}, headers=key),
        422,
        "idempotency_key_reused",
    )
    history = await client.get(f"/v1/widget/conversations/{conv}/messages", headers=s.headers)
    operator = [m for m in history.json()["items"] if m["role"] == "operator"]
    assert [m["content"] for m in operator] == ["Hi, Ann here."]

    # Hand back: the bot answers again.
    back = await client.post(box.conv(conv, "/handback"), headers=box.agent.headers)
    assert back.json()["handoff_status"] == "bot"
    again = await _send(client, s.headers, "and now?")
    assert again.json()["reply"]["role"] == "assistant"

    # Resolve and reopen.
    resolved = await client.post(box.conv(conv, "/resolve"), headers=box.agent.headers)
    assert (resolved.json()["handoff_status"], resolved.json()["status"]) == ("resolved", "closed")
    assert_problem(
        await client.post(box.conv(conv, "/unassign"), headers=box.agent.headers),
        409,
        "invalid_status_transition",
    )
    reopened = await client.post(box.conv(conv, "/reopen"), headers=box.agent.headers)
    assert (reopened.json()["handoff_status"], reopened.json()["status"]) == ("bot", "open")

    # The conversation's page.
    page = (await client.get(box.conv(conv), headers=box.owner.headers)).json()
    assert page["contact"]["page_url"] == "https://shop.example/p/1"
    assert page["contact"]["email"] == "v@example.com"
    assert page["contact"]["channel_type"] == "widget"
    steps = [(e["from_status"], e["to_status"], e["reason"]) for e in page["timeline"]]
    assert steps == [
        ("bot", "waiting", "phrase"),
        ("waiting", "assigned", "assign"),
        ("assigned", "bot", "hand_back"),
        ("bot", "resolved", "resolve"),
        ("resolved", "bot", "reopen"),
    ]
    assert page["timeline"][1]["actor"] == f"user:{box.agent.user_id}"
    figures = page["figures"]
    assert figures["first_bot_reply_ms"] is not None
    assert figures["first_human_reply_ms"] is not None
    assert figures["resolution_ms"] is not None

    # The transcript: every answer with its turn ledger.
    transcript = (await client.get(box.conv(conv, "/messages"), headers=box.owner.headers)).json()
    roles = [m["role"] for m in transcript["items"]]
    assert roles.count("operator") == 1
    answers = [m for m in transcript["items"] if m["role"] == "assistant" and m["turn"]]
    assert len(answers) == 2
    assert {"model", "prompt_tokens", "cost_usd", "latency_ms", "fallback", "error"} <= set(
        answers[0]["turn"]
    )
    assert next(m for m in transcript["items"] if m["role"] == "operator")["author_id"] == (
        box.agent.user_id
    )

    # Audited as the person's action; webhooks for integrators.
    audit = await client.get(box.staff("/audit-log"), headers=box.owner.headers)
    actions = {(e["action"], e["actor"]) for e in audit.json()["items"]}
    assert ("conversation.reply", f"user:{box.agent.user_id}") in actions
    # The reply's entry is chained in SQL; the chain still verifies (hash over Python's JSON).
    chain = await client.get(box.staff("/audit-log/verify"), headers=box.owner.headers)
    assert chain.json() == {"intact": True, "broken_seqs": []}
    # The operator's message.created was enqueued in the reply's own transaction (an outbox
    # job, once although the reply was sent twice); a worker turns it into the delivery, and a
    # second run of the same job delivers nothing more.
    jobs = await _take_queued(client, box.owner.tenant_id, EMIT_EVENT_JOB)
    assert [j[1]["event"] for j in jobs] == ["message.created"]
    assert jobs[0][1]["data"]["author_id"] == box.agent.user_id
    for _ in range(2):
        await _run_jobs(client, jobs, EMIT_EVENT_JOB, emit_event)
    events = [d["event_type"] for d in await deliveries(client, box.owner, hook["id"])]
    assert "conversation.assigned" in events
    assert "conversation.resolved" in events
    assert events.count("message.created") == 1


async def test_a_reply_takes_the_conversation_once_under_concurrent_retries(
    client: httpx.AsyncClient,
) -> None:
    """Replying to a conversation the bot holds assigns it to the author in the same statement
    (timeline reason `reply`, `conversation.assigned` through the outbox); five concurrent
    copies of one request store one message."""
    box = await inbox_workspace(client, "inbox-reply-takes")
    hook = await make_hook(
        client, box.owner, "https://93.184.215.14/inbox", ["conversation.assigned"]
    )
    s = await widget_session(client, box.widget.widget_key)
    await _send(client, s.headers, "hello")
    path = box.conv(s.conversation_id, "/messages")
    key = {**box.agent.headers, "Idempotency-Key": "same-reply"}
    answers = await asyncio.gather(
        *(client.post(path, json={"content": "Ann here, ça va ?"}, headers=key) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    assert answers[0].json()["message"]["content"] == "Ann here, ça va ?"

    page = (await client.get(box.conv(s.conversation_id), headers=box.agent.headers)).json()
    assert (page["handoff_status"], page["assignee_id"]) == ("assigned", box.agent.user_id)
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in page["timeline"]] == [
        ("bot", "assigned", "reply")
    ]
    assert page["figures"]["first_human_reply_ms"] is not None
    transcript = (await client.get(path, headers=box.agent.headers)).json()["items"]
    assert [m["role"] for m in transcript].count("operator") == 1

    jobs = await _take_queued(client, box.owner.tenant_id, EMIT_EVENT_JOB)
    assert [j[1]["event"] for j in jobs] == ["conversation.assigned"]
    await _run_jobs(client, jobs, EMIT_EVENT_JOB, emit_event)
    delivered = await deliveries(client, box.owner, hook["id"])
    assert [d["event_type"] for d in delivered] == ["conversation.assigned"]
    chain = await client.get(box.staff("/audit-log/verify"), headers=box.owner.headers)
    assert chain.json() == {"intact": True, "broken_seqs": []}

    # Another conversation's id, or none at all: 404, nothing stored.
    missing = await client.post(
        box.conv("0190a000-0000-7000-8000-000000000000", "/messages"),
        json={"content": "hi"},
        headers=box.agent.headers,
    )
    assert_problem(missing, 404, "conversation_not_found")


async def test_notes_tags_search_and_filters(client: httpx.AsyncClient) -> None:
    box = await inbox_workspace(client, "inbox-search")
    a = await widget_session(client, box.widget.widget_key)
    b = await widget_session(client, box.widget.widget_key)
    await _send(client, a.headers, "my parcel to Reykjavik is late")
    await _send(client, b.headers, "question about invoices")
    h = box.agent.headers

    found = await client.get(box.staff("/conversations"), params={"q": "reykjavik"}, headers=h)
    assert [c["id"] for c in found.json()["items"]] == [a.conversation_id]
    phrase = await client.get(
        box.staff("/conversations"), params={"q": '"parcel to reykjavik"'}, headers=h
    )
    assert [c["id"] for c in phrase.json()["items"]] == [a.conversation_id]
    assert (
        await client.get(box.staff("/conversations"), params={"q": "nowhere"}, headers=h)
    ).json()["items"] == []

    assert (await client.put(box.conv(b.conversation_id, "/tags/vip"), headers=h)).json() == ["vip"]
    tagged = await client.get(box.staff("/conversations"), params={"tag": "vip"}, headers=h)
    assert [c["id"] for c in tagged.json()["items"]] == [b.conversation_id]
    assert (await client.delete(box.conv(b.conversation_id, "/tags/vip"), headers=h)).json() == []
    assert_problem(
        await client.delete(box.conv(b.conversation_id, "/tags/vip"), headers=h),
        404,
        "tag_not_found",
    )

    note = await client.post(
        box.conv(a.conversation_id, "/notes"), json={"body": "Call back Monday"}, headers=h
    )
    assert note.status_code == 201
    page = (await client.get(box.conv(a.conversation_id), headers=h)).json()
    assert [n["body"] for n in page["notes"]] == ["Call back Monday"]
    gone = await client.delete(
        box.conv(a.conversation_id, f"/notes/{note.json()['id']}"), headers=h
    )
    assert gone.status_code == 204

    # Filters and paging.
    everything = await client.get(box.staff("/conversations"), params={"limit": 1}, headers=h)
    assert len(everything.json()["items"]) == 1
    assert everything.json()["items"][0]["id"] == b.conversation_id  # newest first
    rest = await client.get(
        box.staff("/conversations"),
        params={"limit": 1, "cursor": everything.json()["next_cursor"]},
        headers=h,
    )
    assert [c["id"] for c in rest.json()["items"]] == [a.conversation_id]
    unanswered = await client.get(
        box.staff("/conversations"), params={"unanswered": "true"}, headers=h
    )
    assert {c["id"] for c in unanswered.json()["items"]} == {a.conversation_id, b.conversation_id}
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (
        await client.get(box.staff("/conversations"), params={"since": later}, headers=h)
    ).json()["items"] == []
    for params in ({"channel": "telegram"}, {"assignee_id": "me"}, {"feedback": "down"}):
        got = await client.get(box.staff("/conversations"), params=params, headers=h)
        assert got.json()["items"] == [], params
    assert (
        len(
            (
                await client.get(
                    box.staff("/conversations"),
                    params={"channel": "widget", "assignee_id": "none", "status": "bot"},
                    headers=h,
                )
            ).json()["items"]
        )
        == 2
    )

    # The staff stream's replay (follow=false): conversations, messages, changes since then.
    await client.post(box.conv(a.conversation_id, "/assign"), headers=h)
    since = str(id_floor(datetime.now(UTC) - timedelta(minutes=5)))
    replay = await client.get(
        box.staff("/inbox/events"),
        params={"follow": "false"},
        headers={**h, "Last-Event-ID": since},
    )
    kinds = [e[0] for e in parse_sse(replay.text)]
    assert kinds.count("conversation.created") == 2
    assert kinds.count("message.created") == 4
    assert kinds[-1] == "conversation.updated"


async def test_the_other_handoff_triggers(client: httpx.AsyncClient) -> None:
    box = await inbox_workspace(
        client, "inbox-rules", {"after_fallbacks": 2, "on_negative_feedback": True}
    )
    # Two fallback answers in a row (the bot knows nothing yet).
    s = await widget_session(client, box.widget.widget_key)
    await _send(client, s.headers, "what is the meaning of life")
    page = (await client.get(box.conv(s.conversation_id), headers=box.agent.headers)).json()
    assert page["handoff_status"] == "bot"
    await _send(client, s.headers, "and of the universe")
    page = (await client.get(box.conv(s.conversation_id), headers=box.agent.headers)).json()
    assert page["handoff_status"] == "waiting"
    assert page["timeline"][-1]["reason"] == "fallbacks"

    # A thumbs-down.
    t = await widget_session(client, box.widget.widget_key)
    reply = (await _send(client, t.headers, "hi")).json()["reply"]
    rated = await client.post(
        f"/v1/widget/messages/{reply['id']}/feedback", json={"rating": "down"}, headers=t.headers
    )
    assert rated.status_code == 200
    page = (await client.get(box.conv(t.conversation_id), headers=box.agent.headers)).json()
    assert (page["handoff_status"], page["last_feedback"]) == ("waiting", "down")
    assert page["timeline"][-1]["reason"] == "negative_feedback"

    # The widget's button; asking twice changes nothing.
    u = await widget_session(client, box.widget.widget_key)
    pressed = await client.post("/v1/widget/handoff", headers=u.headers)
    assert pressed.json()["handoff_status"] == "waiting"
    assert pressed.json()["message"]["role"] == "assistant"
    again = await client.post("/v1/widget/handoff", headers=u.headers)
    assert again.json() == {"handoff_status": "waiting", "message": None, "ask_email": False}

    # An automation rule's action.
    rule = await client.post(
        box.staff("/automations"),
        json={
            "name": "angry",
            "event": "message.created",
            "condition": {"type": "message_contains", "value": "refund"},
            "action": {"type": "request_handoff"},
        },
        headers=box.owner.headers,
    )
    assert rule.status_code == 201, rule.text
    v = await widget_session(client, box.widget.widget_key)
    await _send(client, v.headers, "I want a refund")
    await _run_queued_events(client, box.owner.tenant_id)
    page = (await client.get(box.conv(v.conversation_id), headers=box.agent.headers)).json()
    assert page["handoff_status"] == "waiting"
    assert page["timeline"][-1]["reason"] == "automation"


async def _run_queued_events(client: httpx.AsyncClient, tenant_id: str) -> None:
    """Run this workspace's queued `webhooks.emit_message` jobs here, as a worker would."""
    jobs = await _take_queued(client, tenant_id, EMIT_MESSAGE_JOB)
    assert jobs
    await _run_jobs(client, jobs, EMIT_MESSAGE_JOB, emit_message)


async def _take_queued(
    client: httpx.AsyncClient, tenant_id: str, entrypoint: str
) -> list[tuple[int, dict[str, Any]]]:
    """Remove this workspace's queued jobs of `entrypoint` from the queue, in order."""
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with (await runtime.db.driver_pool()).acquire() as conn:
        rows = await conn.fetch(
            "DELETE FROM pgqueuer WHERE entrypoint = $1"
            " AND convert_from(payload, 'UTF8')::jsonb ->> 'tenant_id' = $2 RETURNING id, payload",
            entrypoint,
            tenant_id,
        )
    return sorted((int(r["id"]), json.loads(bytes(r["payload"]))) for r in rows)


async def _run_jobs(
    client: httpx.AsyncClient,
    jobs: list[tuple[int, dict[str, Any]]],
    entrypoint: str,
    handler: Callable[[JobContext], Awaitable[None]],
) -> None:
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    for job_id, payload in jobs:
        await handler(
            JobContext(
                db=runtime.db,
                job_id=job_id,
                entrypoint=entrypoint,
                attempt=0,
                payload=payload,
                runtime_=runtime,
            )
        )


async def test_a_channel_can_hide_the_button(client: httpx.AsyncClient) -> None:
    box = await inbox_workspace(client, "inbox-button")
    patched = await client.patch(
        box.staff(f"/channels/{box.widget.channel_id}"),
        json={"theme": {"handoff_button": False}},
        headers=box.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    s = await widget_session(client, box.widget.widget_key)
    assert s.body["bot"]["theme"]["handoff_button"] is False


async def test_another_workspaces_ids_are_not_found(client: httpx.AsyncClient) -> None:
    box = await inbox_workspace(client, "inbox-a")
    s = await widget_session(client, box.widget.widget_key)
    reply = (await _send(client, s.headers, "hello")).json()["reply"]
    conv = s.conversation_id
    h = box.agent.headers
    note = (await client.post(box.conv(conv, "/notes"), json={"body": "n"}, headers=h)).json()
    await client.put(box.conv(conv, "/tags/vip"), headers=h)

    other = await register(client, "inbox-b")
    ob = await inbox_workspace(client, "inbox-b2")
    own = await widget_session(client, ob.widget.widget_key)
    base = f"/v1/tenants/{other.tenant_id}/conversations"
    oh = other.headers
    for method, path, body in (
        ("GET", f"{base}/{conv}", None),
        ("GET", f"{base}/{conv}/messages", None),
        ("POST", f"{base}/{conv}/messages", {"content": "hi"}),
        ("POST", f"{base}/{conv}/assign", None),
        ("POST", f"{base}/{conv}/resolve", None),
        ("POST", f"{base}/{conv}/typing", None),
        ("POST", f"{base}/{conv}/notes", {"body": "x"}),
        ("DELETE", f"{base}/{conv}/notes/{note['id']}", None),
        ("PUT", f"{base}/{conv}/tags/vip", None),
        ("DELETE", f"{base}/{conv}/tags/vip", None),
    ):
        resp = await client.request(method, path, json=body, headers=oh)
        assert_problem(resp, 404), (method, path)
    # Ids of A inside B's own conversation: the note and the message are not there.
    ob_base = ob.conv(own.conversation_id)
    assert_problem(
        await client.delete(f"{ob_base}/notes/{note['id']}", headers=ob.owner.headers), 404
    )
    listed = await client.get(
        ob.staff("/conversations"), params={"q": "hello"}, headers=ob.owner.headers
    )
    assert listed.json()["items"] == []
    # ...and A's rows are untouched.
    page = (await client.get(box.conv(conv), headers=h)).json()
    assert page["tags"] == ["vip"]
    assert [n["id"] for n in page["notes"]] == [note["id"]]
    assert page["handoff_status"] == "bot"
    assert reply["id"] in {
        m["id"] for m in (await client.get(box.conv(conv, "/messages"), headers=h)).json()["items"]
    }


async def test_the_search_copy_is_out_of_the_app_roles_reach(
    app_conn: asyncpg.Connection, admin_conn: asyncpg.Connection
) -> None:
    """`conversation_search` has no policy, so the app role has no privilege on it: it reaches
    it only through `parley_inbox_search_page`, which reads the workspace the transaction is
    bound to."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.fetchval("SELECT count(*) FROM conversation_search")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute("DELETE FROM conversation_search")
    assert await admin_conn.fetchval("SELECT count(*) FROM conversation_search") > 0
    # Unbound: nothing, whatever the words.
    assert await app_conn.fetch("SELECT parley_inbox_search_page('hello', NULL, 50)") == []


async def test_search_reads_further_candidates_when_filters_leave_the_page_short(
    client: httpx.AsyncClient,
) -> None:
    """Search takes candidates a page at a time (newest first); a filter that only the oldest
    match passes still finds it, and paging through every match returns each once."""
    box = await inbox_workspace(client, "inbox-search-pages")
    h = box.agent.headers
    convs = []
    for i in range(15):
        v = await widget_session(client, box.widget.widget_key)
        await _send(client, v.headers, f"where is my parcel number {i}")
        convs.append(v.conversation_id)
    assert (await client.put(box.conv(convs[0], "/tags/vip"), headers=h)).status_code == 200
    oldest = await client.get(
        box.staff("/conversations"), params={"q": "parcel", "tag": "vip", "limit": 1}, headers=h
    )
    assert [c["id"] for c in oldest.json()["items"]] == [convs[0]]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "parcel", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(box.staff("/conversations"), params=params, headers=h)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(convs))
