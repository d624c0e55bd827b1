"""Members, roles, invitations and API keys: the rules a workspace admin relies on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import add_member, assert_problem, create_api_key, register


async def test_invitation_flow_and_its_refusals(client: httpx.AsyncClient, admin_conn: Any) -> None:
    owner = await register(client, "inv-owner")
    invitee = await register(client, "invitee")
    stranger = await register(client, "stranger")
    base = f"/v1/tenants/{owner.tenant_id}"
    inv = await client.post(
        f"{base}/invitations",
        json={"email": invitee.email, "role": "editor"},
        headers=owner.headers,
    )
    assert inv.status_code == 201
    token = inv.json()["token"]
    assert token.startswith("inv_")
    listed = (await client.get(f"{base}/invitations", headers=owner.headers)).json()
    assert [i["email"] for i in listed["items"]] == [invitee.email]
    assert "token" not in listed["items"][0]

    # Someone else holding the token cannot use it.
    assert_problem(
        await client.post(f"/v1/invitations/{token}/accept", headers=stranger.headers),
        403,
        "invitation_email_mismatch",
    )
    ok = await client.post(f"/v1/invitations/{token}/accept", headers=invitee.headers)
    assert ok.status_code == 201
    assert ok.json() == {"tenant_id": owner.tenant_id, "user_id": invitee.user_id, "role": "editor"}
    # Single use.
    assert_problem(
        await client.post(f"/v1/invitations/{token}/accept", headers=invitee.headers),
        404,
        "invitation_not_found",
    )
    me = (await client.get("/v1/me", headers=invitee.headers)).json()
    assert {(m["tenant"]["id"], m["role"]) for m in me["memberships"]} == {
        (invitee.tenant_id, "owner"),
        (owner.tenant_id, "editor"),
    }
    # Expired and revoked invitations.
    inv2 = await client.post(
        f"{base}/invitations",
        json={"email": stranger.email, "role": "viewer"},
        headers=owner.headers,
    )
    await admin_conn.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(inv2.json()["id"]),
    )
    assert_problem(
        await client.post(
            f"/v1/invitations/{inv2.json()['token']}/accept", headers=stranger.headers
        ),
        404,
    )
    inv3 = await client.post(
        f"{base}/invitations",
        json={"email": stranger.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert (
        await client.delete(f"{base}/invitations/{inv3.json()['id']}", headers=owner.headers)
    ).status_code == 204
    assert_problem(
        await client.post(
            f"/v1/invitations/{inv3.json()['token']}/accept", headers=stranger.headers
        ),
        404,
    )
    # Owner cannot be invited as owner.
    bad = await client.post(
        f"{base}/invitations",
        json={"email": stranger.email, "role": "owner"},
        headers=owner.headers,
    )
    assert_problem(bad, 422, "validation_failed")
    # Already a member.
    inv4 = await client.post(
        f"{base}/invitations",
        json={"email": invitee.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert_problem(
        await client.post(
            f"/v1/invitations/{inv4.json()['token']}/accept", headers=invitee.headers
        ),
        409,
        "already_member",
    )


async def test_role_rules(client: httpx.AsyncClient) -> None:
    owner = await register(client, "roles")
    admin = await add_member(client, owner, "admin")
    editor = await add_member(client, owner, "editor")
    base = f"/v1/tenants/{owner.tenant_id}/members"
    # An admin may not grant ownership, nor touch an owner.
    assert_problem(
        await client.patch(
            f"{base}/{editor.user_id}", json={"role": "owner"}, headers=admin.headers
        ),
        403,
    )
    assert_problem(
        await client.patch(
            f"{base}/{owner.user_id}", json={"role": "viewer"}, headers=admin.headers
        ),
        403,
    )
    assert_problem(await client.delete(f"{base}/{owner.user_id}", headers=admin.headers), 403)
    # The last owner cannot step down or leave.
    assert_problem(
        await client.patch(
            f"{base}/{owner.user_id}", json={"role": "admin"}, headers=owner.headers
        ),
        409,
        "last_owner",
    )
    assert_problem(await client.delete(f"{base}/{owner.user_id}", headers=owner.headers), 409)
    # An owner can promote; then the first owner can step down.
    promoted = await client.patch(
        f"{base}/{admin.user_id}", json={"role": "owner"}, headers=owner.headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"
    assert (
        await client.patch(
            f"{base}/{owner.user_id}", json={"role": "viewer"}, headers=owner.headers
        )
    ).status_code == 200
    # Role changes take effect on the next request (no stale role in the token).
    assert_problem(
        await client.post(
            f"/v1/tenants/{owner.tenant_id}/invitations",
            json={"email": "z@example.com"},
            headers=owner.headers,
        ),
        403,
    )
    # A viewer may leave on their own.
    assert (
        await client.delete(f"{base}/{owner.user_id}", headers=owner.headers)
    ).status_code == 204
    assert_problem(await client.get(f"/v1/tenants/{owner.tenant_id}", headers=owner.headers), 404)
    # Listing pages with a cursor.
    page1 = (await client.get(f"{base}?limit=1", headers=editor.headers)).json()
    assert len(page1["items"]) == 1
    assert page1["next_cursor"]
    page2 = (
        await client.get(f"{base}?limit=1&cursor={page1['next_cursor']}", headers=editor.headers)
    ).json()
    assert page2["items"][0]["user_id"] != page1["items"][0]["user_id"]
    assert_problem(await client.get(f"{base}?cursor=%%%", headers=editor.headers), 422)


async def test_api_keys_lifecycle(client: httpx.AsyncClient, admin_conn: Any) -> None:
    owner = await register(client, "keys")
    base = f"/v1/tenants/{owner.tenant_id}"
    created = await create_api_key(client, owner, ["bots:read", "admin"])
    key = created["key"]
    assert key.startswith("prl_" + created["prefix"] + "_")
    stored = await admin_conn.fetchrow(
        "SELECT key_hash, last_used_at FROM api_keys WHERE id = $1", uuid.UUID(created["id"])
    )
    assert key not in stored["key_hash"]
    assert stored["last_used_at"] is None
    listed = (await client.get(f"{base}/api-keys", headers=owner.headers)).json()
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0]
    assert key not in str(listed)
    use = await client.get(f"{base}/members", headers={"Authorization": f"Bearer {key}"})
    assert use.status_code == 200
    used = await admin_conn.fetchval(
        "SELECT last_used_at FROM api_keys WHERE id = $1", uuid.UUID(created["id"])
    )
    assert used is not None
    # Expiry must be in the future; unknown scopes are refused.
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert_problem(
        await client.post(
            f"{base}/api-keys",
            json={"name": "x", "scopes": ["chat"], "expires_at": past},
            headers=owner.headers,
        ),
        422,
        "invalid_expiry",
    )
    assert_problem(
        await client.post(
            f"{base}/api-keys", json={"name": "x", "scopes": ["root"]}, headers=owner.headers
        ),
        422,
    )
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    exp = await client.post(
        f"{base}/api-keys",
        json={"name": "x", "scopes": ["chat"], "expires_at": future},
        headers=owner.headers,
    )
    assert exp.status_code == 201
    # Revocation is immediate; revoking twice is a 404.
    assert (
        await client.delete(f"{base}/api-keys/{created['id']}", headers=owner.headers)
    ).status_code == 204
    assert_problem(
        await client.get(f"{base}/members", headers={"Authorization": f"Bearer {key}"}), 401
    )
    assert_problem(
        await client.delete(f"{base}/api-keys/{created['id']}", headers=owner.headers), 404
    )


async def test_server_owned_fields_are_never_taken_from_the_body(client: httpx.AsyncClient) -> None:
    owner = await register(client, "mass")
    other = await register(client, "mass-other")
    for body in (
        {"name": "k", "scopes": ["chat"], "tenant_id": other.tenant_id},
        {"name": "k", "scopes": ["chat"], "id": str(uuid.uuid4())},
        {"name": "k", "scopes": ["chat"], "created_at": "2020-01-01T00:00:00Z"},
    ):
        resp = await client.post(
            f"/v1/tenants/{owner.tenant_id}/api-keys", json=body, headers=owner.headers
        )
        assert_problem(resp, 422, "validation_failed")
    rename = await client.patch(
        f"/v1/tenants/{owner.tenant_id}",
        json={"name": "x", "status": "active", "plan": "enterprise"},
        headers=owner.headers,
    )
    assert_problem(rename, 422)
