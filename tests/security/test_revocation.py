"""Issue 15 §4: suspension and revocation take effect at once, on every widget route and on
live event streams; removing a member ends their sessions and their API keys."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import (
    ALLOWED_ORIGIN,
    Account,
    LiveServer,
    WidgetSession,
    add_member,
    assert_problem,
    create_api_key,
    create_widget,
    register,
    widget_session,
)

OTHER_ORIGIN = "https://other.example.com"


async def _platform_admin(client: httpx.AsyncClient, admin_conn: Any) -> Account:
    acct = await register(client, "platform")
    await admin_conn.execute(
        "UPDATE users SET is_platform_admin = true WHERE email = $1", acct.email
    )
    return acct


async def _answered(client: httpx.AsyncClient, s: WidgetSession) -> str:
    """Send one message and return the assistant reply's id (for the feedback route)."""
    sent = await client.post("/v1/widget/messages", json={"content": "hello"}, headers=s.headers)
    assert sent.status_code == 201, sent.text
    return str(sent.json()["reply"]["id"])


async def _every_route(
    client: httpx.AsyncClient, s: WidgetSession, reply_id: str
) -> dict[str, httpx.Response]:
    conv = f"/v1/widget/conversations/{s.conversation_id}"
    return {
        "whoami": await client.get("/v1/widget/whoami", headers=s.headers),
        "history": await client.get(f"{conv}/messages", headers=s.headers),
        # Before issue 15 this stream stayed open (for the token's 15 minutes): bounded here.
        "events": await asyncio.wait_for(client.get(f"{conv}/events", headers=s.headers), 10),
        "feedback": await client.post(
            f"/v1/widget/messages/{reply_id}/feedback", json={"rating": "up"}, headers=s.headers
        ),
        "send": await client.post(
            "/v1/widget/messages", json={"content": "still there?"}, headers=s.headers
        ),
    }


async def test_a_suspended_workspace_tokens_stop_on_every_widget_route(
    client: httpx.AsyncClient, admin_conn: Any
) -> None:
    admin = await _platform_admin(client, admin_conn)
    owner = await register(client, "suspend-widget")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    reply_id = await _answered(client, s)
    r = await client.post(f"/v1/admin/tenants/{owner.tenant_id}/suspend", headers=admin.headers)
    assert r.status_code == 200, r.text

    answers = await _every_route(client, s, reply_id)
    for route, resp in answers.items():
        assert resp.status_code == 403, (route, resp.status_code, resp.text)
        assert_problem(resp, 403, "tenant_suspended")

    await client.post(f"/v1/admin/tenants/{owner.tenant_id}/reactivate", headers=admin.headers)
    assert (await client.get("/v1/widget/whoami", headers=s.headers)).status_code == 200


async def test_deleting_a_channel_ends_its_tokens_and_a_send_is_404(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client, "delete-channel")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    reply_id = await _answered(client, s)
    gone = await client.delete(
        f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}", headers=owner.headers
    )
    assert gone.status_code == 204, gone.text

    answers = await _every_route(client, s, reply_id)
    for route, resp in answers.items():
        assert resp.status_code == 404, (route, resp.status_code, resp.text)
        assert_problem(resp, 404, "conversation_not_found")
    queued = await client.post(
        "/v1/widget/messages",
        json={"content": "queued?"},
        headers={**s.headers, "Prefer": "respond-async"},
    )
    assert_problem(queued, 404, "conversation_not_found")


async def test_removing_an_origin_ends_its_live_tokens(client: httpx.AsyncClient) -> None:
    owner = await register(client, "origin-removed")
    w = await create_widget(client, owner, origins=[ALLOWED_ORIGIN, OTHER_ORIGIN])
    removed = await widget_session(client, w.widget_key, origin=OTHER_ORIGIN)
    reply_id = await _answered(client, removed)
    r = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}",
        json={"allowed_origins": [ALLOWED_ORIGIN]},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text

    answers = await _every_route(client, removed, reply_id)
    for route, resp in answers.items():
        assert resp.status_code == 401, (route, resp.status_code, resp.text)
        assert_problem(resp, 401, "invalid_token")
    # The removed origin cannot start again; the kept one can (the widget re-sessions on 401).
    again = await client.post(
        "/v1/widget/session", json={"widget_key": w.widget_key}, headers={"Origin": OTHER_ORIGIN}
    )
    assert_problem(again, 403, "origin_not_allowed")
    kept = await widget_session(client, w.widget_key)
    assert (await client.get("/v1/widget/whoami", headers=kept.headers)).status_code == 200
    # Adding an origin revokes nothing.
    r = await client.patch(
        f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}",
        json={"allowed_origins": [ALLOWED_ORIGIN, OTHER_ORIGIN]},
        headers=owner.headers,
    )
    assert r.status_code == 200
    assert (await client.get("/v1/widget/whoami", headers=kept.headers)).status_code == 200


async def _stream_until_closed(base_url: str, s: WidgetSession, opened: asyncio.Event) -> float:
    url = f"/v1/widget/conversations/{s.conversation_id}/events"
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as c,
        c.stream("GET", url, headers=s.headers) as resp,
    ):
        assert resp.status_code == 200
        async for _ in resp.aiter_bytes():
            opened.set()
    return time.monotonic()


async def _open_stream(base_url: str, s: WidgetSession) -> asyncio.Task[float]:
    """An events stream read on its own task, once its first bytes have arrived."""
    opened = asyncio.Event()
    listener = asyncio.create_task(_stream_until_closed(base_url, s, opened))
    await asyncio.wait_for(opened.wait(), 10)
    return listener


async def test_a_live_event_stream_ends_when_the_workspace_is_suspended(
    tuned_server: LiveServer, admin_conn: Any
) -> None:
    async with httpx.AsyncClient(base_url=tuned_server.base_url, timeout=30) as client:
        admin = await _platform_admin(client, admin_conn)
        owner = await register(client, "suspend-stream")
        w = await create_widget(client, owner)
        s = await widget_session(client, w.widget_key)
        listener = await _open_stream(tuned_server.base_url, s)
        r = await client.post(f"/v1/admin/tenants/{owner.tenant_id}/suspend", headers=admin.headers)
        assert r.status_code == 200
        suspended_at = time.monotonic()
        closed_at = await asyncio.wait_for(listener, 10)  # would wait for the 15-min expiry
        assert closed_at - suspended_at < 5


async def test_a_live_event_stream_ends_when_its_origin_is_removed(
    tuned_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=tuned_server.base_url, timeout=30) as client:
        owner = await register(client, "origin-stream")
        w = await create_widget(client, owner, origins=[ALLOWED_ORIGIN, OTHER_ORIGIN])
        s = await widget_session(client, w.widget_key, origin=OTHER_ORIGIN)
        listener = await _open_stream(tuned_server.base_url, s)
        r = await client.patch(
            f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}",
            json={"allowed_origins": [ALLOWED_ORIGIN]},
            headers=owner.headers,
        )
        assert r.status_code == 200
        await asyncio.wait_for(listener, 10)


async def test_removing_a_member_revokes_sessions_and_keys(client: httpx.AsyncClient) -> None:
    owner = await register(client, "offboard-owner")
    leaver = await add_member(client, owner, "admin", "offboard-admin")
    key = await create_api_key(client, leaver, ["bots:read"])
    bearer = {"Authorization": f"Bearer {key['key']}"}
    bots = f"/v1/tenants/{owner.tenant_id}/bots"
    assert (await client.get(bots, headers=bearer)).status_code == 200
    listed = await client.get(f"/v1/tenants/{owner.tenant_id}/api-keys", headers=owner.headers)
    mine = [k for k in listed.json()["items"] if k["id"] == key["id"]]
    assert mine[0]["created_by"] == leaver.user_id

    r = await client.delete(
        f"/v1/tenants/{owner.tenant_id}/members/{leaver.user_id}", headers=owner.headers
    )
    assert r.status_code == 204, r.text

    # Their access token fails at once, everywhere (not only in this workspace), and so does
    # their refresh token; the key they created is revoked.
    assert_problem(await client.get("/v1/me", headers=leaver.headers), 401, "invalid_token")
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": leaver.refresh_token})
    assert refreshed.status_code == 401, refreshed.text
    assert_problem(await client.get(bots, headers=bearer), 401, "invalid_token")
    audit = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    actions = [(e["action"], e["target_id"]) for e in audit.json()["items"]]
    assert ("api_key.revoked", key["id"]) in actions


async def test_a_removed_member_keys_can_be_handed_over(client: httpx.AsyncClient) -> None:
    owner = await register(client, "handover-owner")
    leaver = await add_member(client, owner, "admin", "handover-admin")
    key = await create_api_key(client, leaver, ["bots:read"])
    r = await client.delete(
        f"/v1/tenants/{owner.tenant_id}/members/{leaver.user_id}?api_keys=hand_over",
        headers=owner.headers,
    )
    assert r.status_code == 204, r.text
    bearer = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get(f"/v1/tenants/{owner.tenant_id}/bots", headers=bearer)).is_success
    listed = await client.get(f"/v1/tenants/{owner.tenant_id}/api-keys", headers=owner.headers)
    mine = [k for k in listed.json()["items"] if k["id"] == key["id"]]
    assert mine[0]["created_by"] == owner.user_id
    audit = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    handed = [e for e in audit.json()["items"] if e["action"] == "api_key.handed_over"]
    assert [e["target_id"] for e in handed] == [key["id"]]
    assert_problem(await client.get("/v1/me", headers=leaver.headers), 401, "invalid_token")
