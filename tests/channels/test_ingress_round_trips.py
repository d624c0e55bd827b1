"""SPEC P7 / decision 0008: a webhook delivery to a channel this process has seen is one
database round trip (check the secret, store, enqueue — one statement, its own transaction), a
redelivery too, and a forged one none; the coalesced wake-up of the workers comes after.
Counted underneath the app as in the widget's test: every statement SQLAlchemy sends (with
BEGIN and COMMIT/ROLLBACK for its transactions) plus every statement sent on the hot paths'
own asyncpg pool."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.channels.helpers import event_counts, make_channel, message_body, signed_headers
from tests.conftest import assert_problem, register
from tests.widget.test_send_round_trips import driver_statements, round_trips

HOOK_URL = "https://93.184.215.14/ingress-hook"  # a public literal: no DNS at creation


async def test_a_delivery_to_a_known_channel_is_one_round_trip(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "ingress-trips")
    ch = await make_channel(client, owner, "webhook", {"callback_url": HOOK_URL})

    def delivery(msg_id: str, text: str) -> tuple[bytes, dict[str, str]]:
        body = message_body("u-1", text)
        return body, signed_headers(ch.secret, body, msg_id=msg_id)

    body, headers = delivery("msg_first", "first")  # the door looks the channel up once
    first = await client.post(ch.inbound_path, content=body, headers=headers)
    assert first.json()["status"] == "accepted"

    body, headers = delivery(f"msg_{uuid.uuid4().hex}", "second")
    with round_trips(app) as every, driver_statements(app) as raw:
        resp = await client.post(ch.inbound_path, content=body, headers=headers)
    assert resp.status_code == 200
    assert resp.json() == {"ok": True, "status": "accepted"}
    stored = [q for q in raw if "pg_notify" not in q]
    assert every == stored, every  # no BEGIN, no COMMIT: the statement is its own transaction
    assert len(stored) == 1, raw
    assert "parley_inbound_receive" in stored[0]
    # The workers' wake-up is not part of the delivery: sent after it, at most one per
    # interval however many deliveries arrive (the first may still be in flight here).
    assert len(raw) - len(stored) <= 1, raw

    with round_trips(app) as every:
        again = await client.post(ch.inbound_path, content=body, headers=headers)
    assert again.json()["status"] == "duplicate"
    assert len([q for q in every if "pg_notify" not in q]) == 1, every

    forged_body, forged_headers = delivery(f"msg_{uuid.uuid4().hex}", "forged")
    forged_headers["webhook-signature"] = signed_headers(
        ch.secret, b"something else", msg_id=forged_headers["webhook-id"]
    )["webhook-signature"]
    with round_trips(app) as every:
        refused = await client.post(ch.inbound_path, content=forged_body, headers=forged_headers)
    assert_problem(refused, 401, "invalid_signature")
    assert [q for q in every if "pg_notify" not in q] == [], every

    assert await event_counts(admin_conn, ch.channel_id) == {"received": 2}
    jobs = await admin_conn.fetchval(
        "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'channels.process_inbound' "
        "AND convert_from(payload, 'UTF8')::jsonb->>'tenant_id' = $1",
        owner.tenant_id,
    )
    assert jobs == 2  # one per stored event, none for the redelivery


async def test_a_remembered_channel_follows_changes_made_elsewhere(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    """What this process remembers is checked by the storing statement: a secret re-encrypted
    by another process (`parley admin rotate-keys`), a suspended workspace and a deleted
    channel are all noticed by the next delivery."""
    owner = await register(client, "ingress-stale")
    ch = await make_channel(client, owner, "webhook", {"callback_url": HOOK_URL})
    channel_id = uuid.UUID(ch.channel_id)

    async def deliver(text: str) -> httpx.Response:
        body = message_body("u-1", text)
        return await client.post(
            ch.inbound_path, content=body, headers=signed_headers(ch.secret, body)
        )

    assert (await deliver("remembered")).json()["status"] == "accepted"

    keyring = app.state.runtime.keyring
    old = await admin_conn.fetchval(
        "SELECT secret_encrypted FROM channels WHERE id = $1", channel_id
    )
    await admin_conn.execute(
        "UPDATE channels SET secret_encrypted = $2 WHERE id = $1",
        channel_id,
        keyring.reencrypt(old),
    )
    assert (await deliver("after re-encryption")).json()["status"] == "accepted"

    await admin_conn.execute(
        "UPDATE tenants SET status = 'suspended' WHERE id = $1", uuid.UUID(owner.tenant_id)
    )
    assert_problem(await deliver("while suspended"), 403, "tenant_suspended")
    await admin_conn.execute(
        "UPDATE tenants SET status = 'active' WHERE id = $1", uuid.UUID(owner.tenant_id)
    )
    assert (await deliver("reactivated")).json()["status"] == "accepted"

    await admin_conn.execute("DELETE FROM channels WHERE id = $1", channel_id)
    assert_problem(await deliver("after deletion"), 404, "channel_not_found")
    assert await event_counts(admin_conn, ch.channel_id) == {}  # the events went with it


async def test_a_delivery_postgresql_cannot_store_is_a_422_not_a_500(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "ingress-nul")
    ch = await make_channel(client, owner, "webhook", {"callback_url": HOOK_URL})
    for body in (message_body("u-1", "a\u0000b"), message_body("u\u0000", "hi")):
        resp = await client.post(
            ch.inbound_path, content=body, headers=signed_headers(ch.secret, body)
        )
        assert_problem(resp, 422, "invalid_event")
    assert await event_counts(admin_conn, ch.channel_id) == {}
