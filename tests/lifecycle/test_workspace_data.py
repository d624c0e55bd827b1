"""A workspace's data: the export (JSON Lines per table, files, checksummed manifest) and the
deletion after a grace period the owner can cancel, verified to leave 0 rows in every tenant
table the catalogue lists and 0 stored objects; the verification catches a row left behind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from parley.kit.db import TenantId, request_transaction
from parley.kit.jobs import JobContext, enqueue
from parley.kit.tenant_tables import PRIVATE_TABLES, tenant_tables_raw
from parley.knowledge.storage import storage_for, tenant_prefix
from parley.lifecycle import workspace_data
from parley.lifecycle.tasks import DELETE_DUE_JOB, delete_due_workspaces
from parley.models import TENANT_TABLES
from tests.conftest import DatabaseUnderTest, add_member, assert_problem, register
from tests.tenants.test_rls import _populate as populate_every_table


async def _counts(conn: asyncpg.Connection, tenant: str) -> dict[str, int]:
    return {
        t: int(
            await conn.fetchval(f"SELECT count(*) FROM {t} WHERE tenant_id = $1", uuid.UUID(tenant))
        )
        for t in await tenant_tables_raw(conn)
    }


async def test_export_then_delete_a_workspace_and_prove_nothing_is_left(
    app: Any,
    client: httpx.AsyncClient,
    admin_conn: asyncpg.Connection,
    test_db: DatabaseUnderTest,
    tmp_path: Path,
) -> None:
    a, b = await populate_every_table(client, app)
    runtime = app.state.runtime
    storage = storage_for(runtime)
    tid = TenantId(uuid.UUID(a))
    await storage.put(f"{a}/{uuid.uuid4()}/original", b"an uploaded original")
    async with request_transaction(runtime.db) as session:  # a job of A still queued
        await enqueue(session, "test.never_run", {"tenant_id": a})
    before = await _counts(admin_conn, a)
    assert all(before[t] > 0 for t in TENANT_TABLES), before
    b_before = await _counts(admin_conn, b)

    # Export: every table as JSON Lines, rows equal to the database, files with checksums.
    manifest = await workspace_data.export_workspace(runtime.db, storage, tid, tmp_path / "x")
    exported = {t: n for t, n in before.items() if t not in PRIVATE_TABLES}  # derived copies
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == exported
    first = json.loads((tmp_path / "x/tables/messages.jsonl").read_text().splitlines()[0])
    assert first["tenant_id"] == a
    assert len(manifest["files"]) == len(await storage.list_keys(tenant_prefix(tid))) >= 1
    assert workspace_data.verify_export(tmp_path / "x") == []
    with (tmp_path / "x/tables/bots.jsonl").open("a") as f:
        f.write("{}\n")
    assert workspace_data.verify_export(tmp_path / "x") == ["tables/bots.jsonl"]

    # The owner schedules the deletion, cancels, schedules again; an admin may not.
    owner = await register(client, "second-owner")
    await admin_conn.execute(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')",
        uuid.UUID(a),
        uuid.UUID(owner.user_id),
    )
    owner.tenant_id = a
    headers = owner.headers
    url = f"/v1/tenants/{a}/deletion"
    first_try = await client.post(url, headers=headers)
    assert first_try.status_code == 202, first_try.text
    assert first_try.json()["scheduled"] is True
    assert_problem(await client.post(url, headers=headers), 409, "deletion_already_scheduled")
    cancelled = await client.delete(url, headers=headers)
    assert cancelled.json() == {"scheduled": False, "requested_at": None, "due_at": None}
    assert_problem(await client.delete(url, headers=headers), 409, "no_deletion_pending")
    assert (await client.post(url, headers=headers)).status_code == 202
    admin = await add_member(client, owner, "admin")
    assert_problem(await client.delete(url, headers=admin.headers), 403)

    # Within the grace period the job leaves it alone; after it, deletes and verifies.
    ctx = JobContext(
        db=runtime.db, job_id=0, entrypoint=DELETE_DUE_JOB, attempt=0, payload={}, runtime_=runtime
    )
    await delete_due_workspaces(ctx)
    assert (await _counts(admin_conn, a))["messages"] == before["messages"]
    await admin_conn.execute(
        "UPDATE tenants SET deletion_due_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(a),
    )
    await delete_due_workspaces(ctx)
    after = await _counts(admin_conn, a)
    assert {t: n for t, n in after.items() if n} == {}
    assert await storage.list_keys(tenant_prefix(tid)) == []
    assert (
        await admin_conn.fetchval("SELECT count(*) FROM tenants WHERE id = $1", uuid.UUID(a)) == 0
    )
    assert await _counts(admin_conn, b) == b_before  # the neighbour is untouched
    clean = await workspace_data.verify_deleted(runtime.db, storage, tid)
    assert clean.clean
    assert clean.tables_checked == len(after)

    # A table added tomorrow, holding a row of the deleted workspace: the verification sees it
    # (the list comes from the catalogue), and a stored object left behind too.
    await admin_conn.execute(
        "CREATE TABLE lifecycle_probe (tenant_id uuid NOT NULL, note text);"
        "ALTER TABLE lifecycle_probe ENABLE ROW LEVEL SECURITY;"
        "ALTER TABLE lifecycle_probe FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY tenant_isolation ON lifecycle_probe USING "
        "(tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);"
        f'GRANT SELECT ON lifecycle_probe TO "{test_db.app_role}"'
    )
    try:
        await admin_conn.execute("INSERT INTO lifecycle_probe VALUES ($1, 'left behind')", tid)
        await storage.put(f"{a}/{uuid.uuid4()}/original", b"forgotten")
        async with request_transaction(runtime.db) as session:
            await enqueue(session, "test.never_run", {"tenant_id": a})
        left = await workspace_data.verify_deleted(runtime.db, storage, tid)
        assert left.rows == {"lifecycle_probe": 1}
        assert left.objects == 1
        assert left.jobs == 1
        assert not left.clean
    finally:
        await admin_conn.execute("DROP TABLE lifecycle_probe")
        await admin_conn.execute("DELETE FROM pgqueuer WHERE entrypoint = 'test.never_run'")
        await storage.delete_prefix(tenant_prefix(tid))
