"""Issue 15 §5: least privilege for API keys. A `chat` key (pasted into OpenAI clients) reads
nothing but what chat needs; members' emails need `admin`. The full route × scope matrix is
`tests/tenants/test_route_matrix.py` (a chat key there is refused on every tenant route)."""

from __future__ import annotations

from typing import Any

import httpx

from parley.auth.dependencies import tenant_access
from tests.conftest import assert_problem, create_api_key, register
from tests.tenants.test_route_matrix import tenant_routes


async def test_a_chat_key_reads_no_workspace_data(client: httpx.AsyncClient) -> None:
    owner = await register(client, "chat-key")
    chat = {"Authorization": f"Bearer {(await create_api_key(client, owner, ['chat']))['key']}"}
    base = f"/v1/tenants/{owner.tenant_id}"
    for path in ("", "/members", "/api-keys", "/invitations", "/bots", "/channels", "/audit-log"):
        resp = await client.get(base + path, headers=chat)
        assert_problem(resp, 403, "forbidden")
        assert owner.email not in resp.text
    # ...and still chats: the OpenAI-compatible model list answers it.
    assert (await client.get("/v1/compat/models", headers=chat)).status_code == 200


async def test_member_emails_need_the_admin_scope(client: httpx.AsyncClient) -> None:
    owner = await register(client, "emails")
    base = f"/v1/tenants/{owner.tenant_id}"
    reader = await create_api_key(client, owner, ["bots:read"])
    admin = await create_api_key(client, owner, ["admin"])
    as_reader = {"Authorization": f"Bearer {reader['key']}"}
    as_admin = {"Authorization": f"Bearer {admin['key']}"}
    assert (await client.get(base, headers=as_reader)).status_code == 200
    assert_problem(await client.get(f"{base}/members", headers=as_reader), 403, "forbidden")
    members = await client.get(f"{base}/members", headers=as_admin)
    assert members.status_code == 200
    assert owner.email in members.text


def test_every_tenant_route_names_a_scope(app: Any) -> None:
    """No route is open to "any key of the workspace": each declares the scope it needs."""
    routes = list(tenant_routes(app))
    assert len(routes) > 40
    unscoped = [(m, p) for m, p, access in routes if access.scope is None]
    assert unscoped == []


def test_tenant_access_requires_a_scope() -> None:
    try:
        tenant_access("viewer")  # type: ignore[call-arg]
    except TypeError:
        return
    raise AssertionError("tenant_access accepted a route without a scope")
