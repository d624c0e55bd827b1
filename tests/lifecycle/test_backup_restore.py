"""Backup → destroy → restore → the app serves the same data: row counts and sampled content
equal, RLS still forced, the application role's rights unchanged, the audit chain intact.

Runs on the test server (the embedded PostgreSQL 18 by default, with the pg_dump/pg_restore
its wheel ships; under TEST_DATABASE_URL the server's own major version is looked up and a
matching client found, e.g. /usr/lib/postgresql/15/bin). "Destroy" is a new, empty database
and an empty file storage: the suite's own database stays for the other tests.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from parley.kit.jobs import asyncpg_dsn
from parley.kit.tenant_tables import PRIVATE_TABLES, tenant_tables_raw
from parley.knowledge.storage import storage_for
from parley.knowledge.storage.local import LocalStorage
from parley.lifecycle import backup as backups
from parley.settings import Settings
from tests.conftest import (
    DatabaseUnderTest,
    create_widget,
    ingest_now,
    make_settings,
    register,
    widget_session,
)


def _on(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _grants(conn: asyncpg.Connection, role: str) -> set[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = $1",
        role,
    )
    return {(r["table_name"], r["privilege_type"]) for r in rows}


async def _read_all(client: httpx.AsyncClient, owner: Any, widget: Any) -> dict[str, Any]:
    t = f"/v1/tenants/{owner.tenant_id}"
    out = {}
    for path in ("/bots", "/knowledge/sources", "/audit-log", "/members", "/audit-log/verify"):
        resp = await client.get(t + path, headers=owner.headers)
        assert resp.status_code == 200, (path, resp.text)
        out[path] = resp.json()
    history = await client.get(
        f"/v1/widget/conversations/{widget.conversation_id}/messages", headers=widget.headers
    )
    assert history.status_code == 200, history.text
    out["history"] = history.json()
    return out


async def test_backup_destroy_restore_serves_the_same_data(
    app: Any,
    client: httpx.AsyncClient,
    settings: Settings,
    test_db: DatabaseUnderTest,
    admin_conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    owner = await register(client, "backup")
    w = await create_widget(client, owner)
    visitor = await widget_session(client, w.widget_key)
    for text in ("hello", "when do you open?"):
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": text},
            headers={**visitor.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert sent.status_code in (200, 201), sent.text
    upload = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        files={"file": ("faq.md", b"# FAQ\n\nWe open at nine.", "text/markdown")},
        headers=owner.headers,
    )
    await ingest_now(app, owner.tenant_id, upload.json()["job"]["id"])
    storage = storage_for(app.state.runtime)
    before = await _read_all(client, owner, visitor)
    assert before["/audit-log/verify"]["intact"] is True

    # Backup.
    result = await backups.backup(test_db.admin_url, storage, tmp_path / "backup")
    assert result.rows > 0
    assert result.files == len(await storage.list_keys(""))
    manifest = backups.verify_backup(tmp_path / "backup")
    assert manifest["row_counts"]["messages"] >= 4

    # Destroy: an empty database and an empty storage to restore into.
    name = f"parley_restored_{secrets.token_hex(4)}"
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    try:
        restored_files = LocalStorage(tmp_path / "data" / "files")
        counts = await backups.restore(
            _on(test_db.admin_url, name), test_db.app_role, restored_files, tmp_path / "backup"
        )
        assert counts == manifest["row_counts"]
        # A second restore into the now non-empty target is refused.
        with pytest.raises(backups.BackupError, match="not empty"):
            await backups.restore(
                _on(test_db.admin_url, name), test_db.app_role, restored_files, tmp_path / "backup"
            )

        # The app on the restored database and storage serves the same data.
        from parley.app import create_app

        restored_settings = make_settings(
            tmp_path / "data",
            openai_base_url=settings.openai_base_url,
            openai_api_key="sk-test",
        )
        app2 = create_app(restored_settings, database_url=_on(test_db.app_url, name))
        async with app2.router.lifespan_context(app2):
            transport = httpx.ASGITransport(app=app2, client=("10.9.9.9", 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c2:
                after = await _read_all(c2, owner, visitor)
            key = (await storage.list_keys(f"{owner.tenant_id}/"))[0]
            assert await storage_for(app2.state.runtime).get(key) == await storage.get(key)
        assert after == before
        assert after["/audit-log/verify"] == {"intact": True, "broken_seqs": []}

        # Underneath: RLS still forced on every tenant table, the app role's rights unchanged.
        conn = await asyncpg.connect(asyncpg_dsn(_on(test_db.admin_url, name)))
        try:
            tables = await tenant_tables_raw(conn)
            assert tables == await tenant_tables_raw(admin_conn)
            forced = await conn.fetch(
                "SELECT relname, relforcerowsecurity FROM pg_class WHERE relname = ANY($1)",
                tables,
            )
            assert all(
                r["relforcerowsecurity"] for r in forced if r["relname"] not in PRIVATE_TABLES
            )
            assert len(forced) == len(tables)
            assert await _grants(conn, test_db.app_role) == await _grants(
                admin_conn, test_db.app_role
            )
            # The application role still sees nothing without a tenant context.
            app_conn = await asyncpg.connect(asyncpg_dsn(_on(test_db.app_url, name)))
            try:
                assert await app_conn.fetchval("SELECT count(*) FROM messages") == 0
            finally:
                await app_conn.close()
        finally:
            await conn.close()

        # A damaged backup is refused before anything is restored.
        dump = tmp_path / "backup" / backups.DUMP
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dump.write_bytes(bytes(data))
        with pytest.raises(backups.BackupError, match="checksum"):
            backups.verify_backup(tmp_path / "backup")
    finally:
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
