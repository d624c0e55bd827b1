"""`parley rotate-keys`: stored secrets are re-encrypted under the newest key."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from parley.admin.commands import rotate_keys
from parley.kit.security import Keyring
from tests.conftest import SECRET_KEY, DatabaseUnderTest, make_settings, register

OLD = "old-rotation-key-" + "o" * 32
NEW = "new-rotation-key-" + "n" * 32


async def test_rotate_keys_reencrypts_provider_credentials(
    test_db: DatabaseUnderTest, data_dir: Any, admin_conn: asyncpg.Connection
) -> None:
    from parley.app import create_app

    old_settings = make_settings(data_dir, parley_secret_keys=OLD, redis_url=None)
    app = create_app(old_settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            owner = await register(c, "rotate")
            resp = await c.put(
                f"/v1/tenants/{owner.tenant_id}/providers/openai",
                json={"api_key": "sk-rotate-me-123456"},
                headers=owner.headers,
            )
            assert resp.status_code == 200
            hook = await c.post(
                f"/v1/tenants/{owner.tenant_id}/webhooks",
                json={"url": "https://93.184.215.14/rotate", "events": ["usage.threshold"]},
                headers=owner.headers,
            )
            assert hook.status_code == 201, hook.text
            rotated = await c.post(
                f"/v1/tenants/{owner.tenant_id}/webhooks/{hook.json()['id']}/rotate-secret",
                headers=owner.headers,
            )
            assert rotated.status_code == 200

    async def stored() -> str:
        return str(
            await admin_conn.fetchval(
                "SELECT api_key_encrypted FROM provider_credentials WHERE tenant_id = $1",
                uuid.UUID(owner.tenant_id),
            )
        )

    before = await stored()
    assert Keyring.from_secrets([OLD]).decrypt(before) == "sk-rotate-me-123456"
    # The database is shared with the other tests, whose secrets are under the suite's key:
    # listed as an older key too, as an operator lists every key still in use.
    keys = f"{NEW},{OLD},{SECRET_KEY}"
    count = await rotate_keys(
        make_settings(data_dir, parley_secret_keys=keys, redis_url=None), test_db.app_url
    )
    assert count >= 1
    after = await stored()
    assert after != before
    assert Keyring.from_secrets([NEW]).decrypt(after) == "sk-rotate-me-123456"
    secrets = await admin_conn.fetchrow(
        "SELECT secret_encrypted, previous_secret_encrypted FROM webhook_endpoints "
        "WHERE tenant_id = $1",
        uuid.UUID(owner.tenant_id),
    )
    new_only = Keyring.from_secrets([NEW])
    assert new_only.decrypt(secrets[0]) == rotated.json()["secret"]
    assert new_only.decrypt(secrets[1]) == hook.json()["secret"]
