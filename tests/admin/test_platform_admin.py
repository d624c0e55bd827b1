"""Platform administration: suspension, plans, queue state; only for platform admins."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, assert_problem, create_api_key, register


async def _make_admin(client: httpx.AsyncClient, admin_conn: Any) -> Account:
    acct = await register(client, "platform")
    await admin_conn.execute(
        "UPDATE users SET is_platform_admin = true WHERE email = $1", acct.email
    )
    return acct


async def test_only_platform_admins_reach_admin_routes(client: httpx.AsyncClient) -> None:
    acct = await register(client, "not-admin")
    assert_problem(await client.get("/v1/admin/tenants", headers=acct.headers), 403)
    assert_problem(await client.get("/v1/admin/tenants"), 401)


async def test_suspension_blocks_users_and_keys(client: httpx.AsyncClient, admin_conn: Any) -> None:
    admin = await _make_admin(client, admin_conn)
    owner = await register(client, "suspended")
    key = (await create_api_key(client, owner, ["admin"]))["key"]
    path = f"/v1/tenants/{owner.tenant_id}/members"
    resp = await client.post(f"/v1/admin/tenants/{owner.tenant_id}/suspend", headers=admin.headers)
    assert resp.status_code == 200
    assert resp.json()["status"] == "suspended"
    assert_problem(await client.get(path, headers=owner.headers), 403, "tenant_suspended")
    assert_problem(
        await client.get(path, headers={"Authorization": f"Bearer {key}"}), 403, "tenant_suspended"
    )
    listed = await client.get("/v1/admin/tenants?status=suspended&limit=200", headers=admin.headers)
    assert owner.tenant_id in {t["id"] for t in listed.json()["items"]}
    me = (await client.get("/v1/me", headers=owner.headers)).json()
    assert me["memberships"][0]["tenant_status"] == "suspended"
    resp = await client.post(
        f"/v1/admin/tenants/{owner.tenant_id}/reactivate", headers=admin.headers
    )
    assert resp.json()["status"] == "active"
    assert (await client.get(path, headers=owner.headers)).status_code == 200


async def test_plan_change_and_queue_views(client: httpx.AsyncClient, admin_conn: Any) -> None:
    admin = await _make_admin(client, admin_conn)
    owner = await register(client, "plan")
    resp = await client.patch(
        f"/v1/admin/tenants/{owner.tenant_id}/plan", json={"plan": "pro"}, headers=admin.headers
    )
    assert resp.json()["plan"] == "pro"
    q = await client.get("/v1/admin/queue", headers=admin.headers)
    assert set(q.json()) == {"queued", "running", "failed"}
    failed = await client.get("/v1/admin/jobs/failed", headers=admin.headers)
    assert isinstance(failed.json(), list)
    assert_problem(
        await client.post("/v1/admin/jobs/999999999/requeue", headers=admin.headers), 404
    )
    assert_problem(
        await client.post(
            "/v1/admin/tenants/00000000-0000-7000-8000-000000000000/suspend", headers=admin.headers
        ),
        404,
    )
