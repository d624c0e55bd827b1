"""Rotating a webhook channel's inbound secret: the new key is shown once, the previous one
keeps verifying deliveries (and replies carry a signature with each) for the grace period and
then stops; a rotation is audited without the secret; roles, other workspaces and other
channel types are refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley.channels import signatures
from tests.channels.helpers import (
    ChannelSetup,
    make_channel,
    message_body,
    signed_headers,
    verify_delivery,
    wait_for,
)
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    add_member,
    assert_problem,
    make_settings,
    register,
    serve_app,
)
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def rotation_server(data_dir: Path, test_db: DatabaseUnderTest) -> Iterator[LiveServer]:
    settings = make_settings(
        data_dir,
        parley_outbound_allow_private=True,
        parley_worker_in_process=True,
        parley_rate_limits="off",
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


@pytest.fixture
async def http(rotation_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rotation_server.base_url, timeout=30) as c:
        yield c


async def deliver(http: httpx.AsyncClient, ch: ChannelSetup, secret: str, user: str) -> int:
    body = message_body(user, "Is my order shipped?")
    resp = await http.post(ch.inbound_path, content=body, headers=signed_headers(secret, body))
    return resp.status_code


async def rotate(
    http: httpx.AsyncClient, ch: ChannelSetup, grace: int | None = None
) -> httpx.Response:
    return await http.post(
        f"/v1/tenants/{ch.owner.tenant_id}/channels/{ch.channel_id}/rotate-secret",
        json=None if grace is None else {"grace_seconds": grace},
        headers=ch.owner.headers,
    )


async def test_both_secrets_verify_during_the_grace_period_then_only_the_new_one(
    http: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(http, "rot-grace")
    ch = await make_channel(http, owner, "webhook", {"callback_url": "https://hooks.example"})
    old = ch.secret
    assert await deliver(http, ch, old, "u1") == 200  # the door now remembers the old key
    resp = await rotate(http, ch)
    assert resp.status_code == 200, resp.text
    new = resp.json()["webhook_secret"]
    assert new.startswith("whsec_")
    assert new != old
    ends = datetime.fromisoformat(resp.json()["rotation_ends_at"])
    assert timedelta(hours=23) < ends - datetime.now(UTC) <= timedelta(hours=24)
    # Shown once: the channel's own page has the grace period's end, never a secret.
    got = await http.get(
        f"/v1/tenants/{owner.tenant_id}/channels/{ch.channel_id}", headers=owner.headers
    )
    assert got.json()["secret_rotation_ends_at"] == resp.json()["rotation_ends_at"]
    assert "whsec_" not in got.text
    assert await deliver(http, ch, old, "u2") == 200
    assert await deliver(http, ch, new, "u3") == 200
    assert await deliver(http, ch, signatures.new_key(), "u4") == 401
    users = await admin_conn.fetch(
        "SELECT external_user_id FROM inbound_events WHERE channel_id = $1 ORDER BY id",
        uuid.UUID(ch.channel_id),
    )
    assert [r["external_user_id"] for r in users] == ["u1", "u2", "u3"]
    audit = await admin_conn.fetch(
        "SELECT actor, after FROM audit_log WHERE action = 'channel.secret_rotated'"
        " AND target_id = $1",
        ch.channel_id,
    )
    assert len(audit) == 1
    assert "whsec_" not in json.dumps(audit[0]["after"])
    assert json.loads(audit[0]["after"])["grace_seconds"] == 86_400


async def test_no_grace_stops_the_old_secret_at_once_and_replies_are_signed_with_both(
    http: httpx.AsyncClient, callback_receiver: WebhookReceiver, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(http, "rot-now")
    path = f"rot-{uuid.uuid4().hex[:8]}"
    ch = await make_channel(
        http,
        owner,
        "webhook",
        {"callback_url": callback_receiver.url(path)},
        fallback_text="Hello.",
    )
    first = ch.secret
    assert await deliver(http, ch, first, "a") == 200
    second = (await rotate(http, ch, grace=3600)).json()["webhook_secret"]
    # A reply during the grace period verifies with either key.
    assert await deliver(http, ch, second, "b") == 200

    async def replied() -> bool:
        return len(callback_receiver.for_path(path)) >= 2

    def reply_to(user: str) -> Any:
        """The reply to `user`'s message: replies are delivered by jobs, not always in the
        order the messages came (the reply to "a" once arrived after the one to "b")."""
        return next(
            d
            for d in callback_receiver.for_path(path)
            if json.loads(d.body)["data"]["external_user_id"] == user
        )

    await wait_for(replied, what="two replies")
    during = reply_to("b")
    assert verify_delivery(second, during.headers, during.body)
    assert verify_delivery(first, during.headers, during.body)
    # A leaked key: rotate with no grace; both older keys stop at once (the door remembered
    # the second one as current, and notices the change on the first delivery).
    third = (await rotate(http, ch, grace=0)).json()
    assert third["rotation_ends_at"] is None
    assert await deliver(http, ch, second, "c") == 401
    assert await deliver(http, ch, first, "d") == 401
    assert await deliver(http, ch, third["webhook_secret"], "e") == 200

    async def three() -> bool:
        return len(callback_receiver.for_path(path)) >= 3

    await wait_for(three, what="third reply")
    after = reply_to("e")
    assert verify_delivery(third["webhook_secret"], after.headers, after.body)
    assert not verify_delivery(second, after.headers, after.body)


async def test_a_grace_period_ends_by_itself(http: httpx.AsyncClient) -> None:
    owner = await register(http, "rot-ends")
    ch = await make_channel(http, owner, "webhook", {"callback_url": "https://hooks.example"})
    new = (await rotate(http, ch, grace=1)).json()["webhook_secret"]
    assert await deliver(http, ch, ch.secret, "x") == 200
    await asyncio.sleep(1.2)
    assert await deliver(http, ch, ch.secret, "y") == 401
    assert await deliver(http, ch, new, "z") == 200


async def test_rotation_is_refused_for_other_types_roles_and_workspaces(
    http: httpx.AsyncClient,
) -> None:
    owner = await register(http, "rot-refuse")
    other = await register(http, "rot-other")
    ch = await make_channel(http, owner, "webhook", {"callback_url": "https://hooks.example"})
    url = f"/v1/tenants/{owner.tenant_id}/channels/{ch.channel_id}/rotate-secret"
    viewer = await add_member(http, owner, "viewer")
    assert_problem(await http.post(url, headers=viewer.headers), 403)
    # Another workspace naming this channel under its own id: 404.
    assert_problem(
        await http.post(
            f"/v1/tenants/{other.tenant_id}/channels/{ch.channel_id}/rotate-secret",
            headers=other.headers,
        ),
        404,
    )
    assert_problem(await http.post(url, json={"grace_seconds": -1}, headers=owner.headers), 422)
    assert_problem(await http.post(url, json={"grace_seconds": 10**9}, headers=owner.headers), 422)
    widget = await http.post(
        f"/v1/tenants/{owner.tenant_id}/channels",
        json={"type": "widget", "bot_id": ch.bot_id, "allowed_origins": ["https://a.example"]},
        headers=owner.headers,
    )
    assert_problem(
        await http.post(
            f"/v1/tenants/{owner.tenant_id}/channels/{widget.json()['id']}/rotate-secret",
            headers=owner.headers,
        ),
        409,
        "channel_secret_not_rotatable",
    )
    # Nothing changed: the original key still verifies.
    assert await deliver(http, ch, ch.secret, "still") == 200
