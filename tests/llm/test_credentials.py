"""Per-tenant provider credentials: write-only, encrypted, SSRF-checked, used instead of the
platform key, and never the other way round."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import (
    DatabaseUnderTest,
    assert_problem,
    create_widget,
    make_settings,
    register,
    widget_session,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/v1",
        "https://127.0.0.1/v1",
        "https://localhost/v1",
        "https://10.1.2.3/v1",
        "https://169.254.169.254/latest",
        "https://[::1]/v1",
        "https://[::ffff:127.0.0.1]/v1",
        "https://0.0.0.0/v1",
        "https://2130706433/v1",
        "https://0x7f000001/v1",
        "ftp://example.com/v1",
        "https://user:pw@example.com/v1",
        "not a url",
    ],
)
async def test_unsafe_base_urls_are_refused(client: httpx.AsyncClient, url: str) -> None:
    owner = await register(client, "ssrf")
    resp = await client.put(
        f"/v1/tenants/{owner.tenant_id}/providers/openai",
        json={"api_key": "sk-tenant-secret-1234", "base_url": url},
        headers=owner.headers,
    )
    assert_problem(resp, 422, "unsafe_url")


async def test_credentials_are_write_only_and_encrypted(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "creds")
    secret = "sk-tenant-" + uuid.uuid4().hex
    put = await client.put(
        f"/v1/tenants/{owner.tenant_id}/providers/openai",
        json={"api_key": secret},
        headers=owner.headers,
    )
    assert put.status_code == 200
    assert secret not in put.text
    assert put.json()["key_hint"] == secret[-4:]
    listed = await client.get(f"/v1/tenants/{owner.tenant_id}/providers", headers=owner.headers)
    assert secret not in listed.text
    stored = await admin_conn.fetchval(
        "SELECT api_key_encrypted FROM provider_credentials WHERE tenant_id = $1",
        uuid.UUID(owner.tenant_id),
    )
    assert secret not in stored
    audit = await admin_conn.fetch(
        "SELECT before::text, after::text FROM audit_log WHERE tenant_id = $1",
        uuid.UUID(owner.tenant_id),
    )
    assert all(secret not in (r[0] or "") + (r[1] or "") for r in audit)


@pytest.fixture
async def open_client(
    test_db: DatabaseUnderTest, data_dir: Any, fake_openai: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An app that may reach private addresses (self-hosted set-ups; here, the local fake)."""
    from parley.app import create_app

    settings = make_settings(
        data_dir,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-platform",
        parley_outbound_allow_private=True,
        redis_url=None,
    )
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.20", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_the_tenants_own_key_takes_precedence(
    open_client: httpx.AsyncClient, fake_openai: Any
) -> None:
    mine = await register(open_client, "own-key")
    theirs = await register(open_client, "platform-key")
    await open_client.put(
        f"/v1/tenants/{mine.tenant_id}/providers/openai",
        json={"api_key": "sk-tenant-own-key-9999", "base_url": fake_openai.base_url},
        headers=mine.headers,
    )
    for account, expected in ((mine, "sk-tenant-own-key-9999"), (theirs, "sk-platform")):
        w = await create_widget(
            open_client, account, bot={"provider": "openai", "model": "fake-echo"}
        )
        s = await widget_session(open_client, w.widget_key)
        marker = f"key-{uuid.uuid4().hex[:8]}"
        r = await open_client.post(
            "/v1/widget/messages", json={"content": marker}, headers=s.headers
        )
        assert r.status_code == 201
        (call,) = fake_openai.calls_for(marker)
        assert call["_authorization"] == f"Bearer {expected}"
