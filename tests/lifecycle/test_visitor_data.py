"""A visitor's data: export by id, channel identity or email, and erasure everywhere it lives;
the audit log keeps a tombstone without personal data and its chain still verifies."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg
import httpx

from parley.channels.processing import process_event
from parley.kit.db import TenantId, tenant_session
from parley.kit.ids import new_id
from parley.kit.tenant_tables import tenant_tables_raw
from parley.models import RetrievalLog, WebhookDelivery, WebhookEndpoint
from tests.channels.helpers import message_body, signed_headers
from tests.conftest import (
    Account,
    add_member,
    assert_problem,
    create_widget,
    register,
    widget_session,
)

CANARY = "canary-7f3e"
EMAIL = f"{CANARY}@example.org"
IDENTITY = f"ext-{CANARY}"


async def _chat(client: httpx.AsyncClient, widget_key: str, text: str, comment: str) -> str:
    """One widget visitor's conversation with a reply and feedback; returns the conversation."""
    session = await widget_session(client, widget_key)
    sent = await client.post(
        "/v1/widget/messages",
        json={"content": text},
        headers={**session.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert sent.status_code in (200, 201), sent.text
    fb = await client.post(
        f"/v1/widget/messages/{sent.json()['reply']['id']}/feedback",
        json={"rating": "down", "comment": comment},
        headers=session.headers,
    )
    assert fb.status_code in (200, 201, 204), fb.text
    return session.conversation_id


async def _copies(app: Any, tenant: str, conversation_id: str) -> None:
    """What the emitter and retrieval would have written about the conversation: a webhook
    delivery carrying a copy of the message, a retrieval log with the visitor's query."""
    tid = TenantId(uuid.UUID(tenant))
    async with tenant_session(app.state.runtime.db, tid) as s:
        endpoint = WebhookEndpoint(
            tenant_id=tid,
            id=new_id(),
            url="https://93.184.215.14/hook",
            events=["message.created"],
            secret_encrypted="x",
        )
        s.add(endpoint)
        await s.flush()
        s.add(
            WebhookDelivery(
                tenant_id=tid,
                id=new_id(),
                endpoint_id=endpoint.id,
                event_type="message.created",
                payload={
                    "type": "message.created",
                    "data": {"conversation_id": conversation_id, "text": f"copy {EMAIL}"},
                },
                status="delivered",
                attempt_count=1,
            )
        )
        s.add(
            RetrievalLog(
                tenant_id=tid,
                id=new_id(),
                conversation_id=uuid.UUID(conversation_id),
                query=f"what about {EMAIL}",
                mode="keyword",
                chunk_ids=[],
                scores=[],
                latency_ms=1.0,
            )
        )


async def _inbound(client: httpx.AsyncClient, app: Any, owner: Account, bot_id: str) -> str:
    """A webhook channel user who wrote twice; returns the channel id."""
    ch = await client.post(
        f"/v1/tenants/{owner.tenant_id}/channels",
        json={
            "type": "webhook",
            "bot_id": bot_id,
            "config": {"callback_url": "https://93.184.215.14/in"},
        },
        headers=owner.headers,
    )
    assert ch.status_code == 201, ch.text
    for n in range(2):
        body = message_body(IDENTITY, f"hello {n} from {IDENTITY}")
        resp = await client.post(
            ch.json()["inbound_path"],
            content=body,
            headers=signed_headers(ch.json()["webhook_secret"], body),
        )
        assert resp.status_code == 200, resp.text
    tid = TenantId(uuid.UUID(owner.tenant_id))
    async with tenant_session(app.state.runtime.db, tid) as s:
        from sqlalchemy import text

        ids = [r[0] for r in await s.execute(text("SELECT id FROM inbound_events"))]
    for event_id in ids:
        # The reply's callback cannot be reached from here; the conversation and the turn
        # are stored before the send, which is all this test needs.
        with contextlib.suppress(Exception):
            await process_event(app.state.runtime, tid, event_id)
    return str(ch.json()["id"])


async def _canary_rows(admin_conn: asyncpg.Connection, tenant: str, needle: str) -> dict[str, int]:
    """Rows of the workspace, in every tenant table, whose text mentions `needle`."""
    found = {}
    for table in await tenant_tables_raw(admin_conn):
        n = await admin_conn.fetchval(
            f"SELECT count(*) FROM {table} t WHERE tenant_id = $1 AND t::text ILIKE $2",
            uuid.UUID(tenant),
            f"%{needle}%",
        )
        if n:
            found[table] = n
    return found


async def test_export_and_erase_a_visitor_everywhere(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "privacy")
    w = await create_widget(client, owner)
    conv = await _chat(
        client, w.widget_key, f"Hi, I am {EMAIL}; when do you open?", f"reach me at {EMAIL}"
    )
    other = await _chat(client, w.widget_key, "Someone else asking about hours", "fine")
    await _copies(app, owner.tenant_id, conv)
    channel_id = await _inbound(client, app, owner, w.bot_id)
    base = f"/v1/tenants/{owner.tenant_id}/privacy"
    before = await _canary_rows(admin_conn, owner.tenant_id, CANARY)
    assert {"messages", "idempotency_keys", "message_feedback", "webhook_deliveries"} <= set(
        before
    ), before
    assert {"inbound_events", "kb_retrieval_logs"} <= set(before), before

    # Export by email: the visitor's messages, feedback and the copies made of them.
    exported = await client.post(
        f"{base}/visitor-export", json={"email": EMAIL}, headers=owner.headers
    )
    assert exported.status_code == 200, exported.text
    data = exported.json()["data"]
    assert [c["id"] for c in data["conversations"]] == [conv]
    assert any(EMAIL in m["content"] for m in data["messages"] if m["role"] == "user")
    assert {m["role"] for m in data["messages"]} == {"user", "assistant"}
    assert data["feedback"][0]["comment"] == f"reach me at {EMAIL}"
    assert data["contact"]["emails_mentioned"] == [EMAIL]
    assert len(data["events"]["webhook_deliveries"]) == 1
    assert "Someone else" not in exported.text

    # Export by channel identity: the inbound events and the identity itself.
    by_identity = await client.post(
        f"{base}/visitor-export",
        json={"channel_id": channel_id, "external_user_id": IDENTITY},
        headers=owner.headers,
    )
    assert by_identity.status_code == 200, by_identity.text
    events = by_identity.json()["data"]["events"]["inbound"]
    assert [e["external_user_id"] for e in events] == [IDENTITY, IDENTITY]
    assert by_identity.json()["data"]["contact"]["channel_identities"] == [
        {"channel_id": channel_id, "external_user_id": IDENTITY}
    ]

    # An editor may not; bad selectors are 422; nobody by that email is 404.
    editor = await add_member(client, owner, "editor")
    denied = await client.post(
        f"{base}/visitor-export", json={"email": EMAIL}, headers=editor.headers
    )
    assert_problem(denied, 403)
    both = await client.post(
        f"{base}/visitor-export",
        json={"email": EMAIL, "visitor_id": str(uuid.uuid4())},
        headers=owner.headers,
    )
    assert_problem(both, 422)
    nobody = await client.post(
        f"{base}/visitor-erasure", json={"email": "nobody@example.org"}, headers=owner.headers
    )
    assert_problem(nobody, 404, "visitor_not_found")

    # Another workspace's owner cannot reach this visitor, even by its id.
    visitor_id = exported.json()["visitor_ids"][0]
    stranger = await register(client, "privacy-other")
    foreign = await client.post(
        f"/v1/tenants/{stranger.tenant_id}/privacy/visitor-export",
        json={"visitor_id": visitor_id},
        headers=stranger.headers,
    )
    assert_problem(foreign, 404)

    # Erase both: nothing mentioning the canary remains in any tenant table.
    for selector in ({"email": EMAIL}, {"channel_id": channel_id, "external_user_id": IDENTITY}):
        erased = await client.post(f"{base}/visitor-erasure", json=selector, headers=owner.headers)
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased"]["visitors"] == 1
    assert await _canary_rows(admin_conn, owner.tenant_id, CANARY) == {}
    gone = await client.post(f"{base}/visitor-export", json={"email": EMAIL}, headers=owner.headers)
    assert_problem(gone, 404)
    # The other visitor is untouched.
    kept = await admin_conn.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1", uuid.UUID(other)
    )
    assert kept == 2

    # The audit log: tombstones naming no one, and the chain verifies.
    log = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    exports = [e for e in log.json()["items"] if e["action"] == "visitor.exported"]
    assert exports  # reading a person's data is recorded too, naming no one
    assert CANARY not in str(exports)
    assert visitor_id not in str(exports)
    tombstones = [e for e in log.json()["items"] if e["action"] == "visitor.erased"]
    assert len(tombstones) == 2
    assert CANARY not in str(tombstones)
    assert visitor_id not in str(tombstones)
    check = await client.get(
        f"/v1/tenants/{owner.tenant_id}/audit-log/verify", headers=owner.headers
    )
    assert check.json() == {"intact": True, "broken_seqs": []}


async def test_a_visitor_is_found_by_the_email_they_left(client: httpx.AsyncClient) -> None:
    """The inbox's contact field (`POST /v1/widget/contact`) names the visitor too, although
    the address was never written in a message; erasure then removes it."""
    owner = await register(client, "privacy-contact")
    widget = await create_widget(client, owner)
    session = await widget_session(client, widget.widget_key)
    sent = await client.post(
        "/v1/widget/messages",
        json={"content": "Hello, is anyone there?"},
        headers={**session.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert sent.status_code == 201, sent.text
    left = await client.post(
        "/v1/widget/contact", json={"email": "Left-Here@Example.org"}, headers=session.headers
    )
    assert left.status_code == 204, left.text
    base = f"/v1/tenants/{owner.tenant_id}/privacy"
    found = await client.post(
        f"{base}/visitor-export", json={"email": "left-here@example.org"}, headers=owner.headers
    )
    assert found.status_code == 200, found.text
    data = found.json()["data"]
    assert [c["id"] for c in data["conversations"]] == [session.conversation_id]
    assert data["visitors"][0]["email"] == "Left-Here@Example.org"
    erased = await client.post(
        f"{base}/visitor-erasure", json={"email": "left-here@example.org"}, headers=owner.headers
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"]["visitors"] == 1
    gone = await client.post(
        f"{base}/visitor-export", json={"email": "left-here@example.org"}, headers=owner.headers
    )
    assert_problem(gone, 404, "visitor_not_found")
