"""The workspace export through the API (issue 20): owner only, built by a job, downloaded as
a `.tar.gz` whose manifest checksums verify, each request and download audited, at most
`PER_HOUR` per workspace and hour, and never another workspace's."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from parley.kit.db import TenantId
from parley.kit.jobs import JobContext
from parley.knowledge.storage import storage_for
from parley.lifecycle import exports, workspace_data
from tests.conftest import add_member, assert_problem, register


async def _build(app: Any, tenant: str, export_id: str) -> None:
    """What the worker does with the request's job."""
    runtime = app.state.runtime
    ctx = JobContext(
        db=runtime.db,
        job_id=0,
        entrypoint=exports.EXPORT_JOB,
        attempt=0,
        payload={"tenant_id": tenant, "export_id": export_id},
        runtime_=runtime,
        max_attempts=3,
    )
    await exports.build_export(ctx)


async def test_the_owner_exports_the_workspace_and_downloads_a_verified_archive(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    owner = await register(client, "export-api")
    base = f"/v1/tenants/{owner.tenant_id}/exports"
    source = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "Hours", "text": "We open at nine."},
        headers=owner.headers,
    )
    assert source.status_code in (201, 202), source.text
    storage = storage_for(app.state.runtime)
    await storage.put(f"{owner.tenant_id}/{uuid.uuid4()}/original", b"an uploaded original")

    # Only the owner: an admin may not take the whole workspace away.
    admin = await add_member(client, owner, "admin")
    assert_problem(await client.post(base, headers=admin.headers), 403)

    asked = await client.post(base, headers=owner.headers)
    assert asked.status_code == 202, asked.text
    export = asked.json()
    assert (export["status"], export["download_url"]) == ("queued", None)
    assert_problem(await client.post(base, headers=owner.headers), 409, "export_in_progress")
    early = await client.get(f"{base}/{export['id']}/download", headers=owner.headers)
    assert_problem(early, 409, "export_not_ready")

    await _build(app, owner.tenant_id, export["id"])
    ready = (await client.get(f"{base}/{export['id']}", headers=owner.headers)).json()
    assert ready["status"] == "ready"
    got = await client.get(ready["download_url"], headers=owner.headers)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/gzip"
    assert "attachment" in got.headers["content-disposition"]
    assert (
        hashlib.sha256(got.content).hexdigest()
        == ready["sha256"]
        == got.headers["x-content-sha256"]
    )
    assert len(got.content) == ready["size_bytes"]
    with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    out = tmp_path / "x"
    assert workspace_data.verify_export(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tenant_id"] == owner.tenant_id
    assert manifest["tables"]["kb_sources"]["rows"] == 1
    assert manifest["tables"]["workspace_exports"]["rows"] == 1
    assert any(k.endswith("/original") for k in manifest["files"])

    # A second export does not contain the first one's archive.
    assert (await client.post(base, headers=owner.headers)).status_code == 202
    second = (await client.get(base, headers=owner.headers)).json()["items"][0]
    await _build(app, owner.tenant_id, second["id"])
    again = await client.get(f"{base}/{second['id']}/download", headers=owner.headers)
    with tarfile.open(fileobj=io.BytesIO(again.content), mode="r:gz") as tar:
        names = tar.getnames()
    assert not any(n.endswith("/export") for n in names), names

    # Another workspace's owner sees nothing of it.
    other = await register(client, "export-api-other")
    foreign = f"/v1/tenants/{other.tenant_id}/exports/{export['id']}"
    assert_problem(await client.get(foreign, headers=other.headers), 404, "export_not_found")
    mine = f"{base}/{export['id']}/download"
    assert (await client.get(mine, headers=other.headers)).status_code in (403, 404)

    # Audited: the requests and the downloads.
    actions = [
        r["action"]
        for r in await admin_conn.fetch(
            "SELECT action FROM audit_log WHERE tenant_id = $1 AND action LIKE 'workspace.export%'",
            uuid.UUID(owner.tenant_id),
        )
    ]
    assert sorted(actions) == sorted(
        ["workspace.export_requested"] * 2 + ["workspace.export_downloaded"] * 2
    )

    # Limited: the third export this hour is accepted, the fourth is refused with Retry-After.
    third = await client.post(base, headers=owner.headers)
    assert third.status_code == 202, third.text
    await _build(app, owner.tenant_id, third.json()["id"])
    refused = await client.post(base, headers=owner.headers)
    assert_problem(refused, 429, "rate_limited")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    tid = TenantId(uuid.UUID(owner.tenant_id))
    assert await storage.get(exports.archive_key(tid, uuid.UUID(export["id"])))
