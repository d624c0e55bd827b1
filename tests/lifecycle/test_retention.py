"""Retention: each workspace sets the days it keeps conversations, files and logs; the nightly
job removes what is older, keeps what is not, and never touches the audit log."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from parley.kit.jobs import REGISTRY, JobContext
from parley.knowledge.storage import storage_for
from parley.lifecycle.tasks import RETENTION_JOB, apply_retention
from tests.conftest import assert_problem, create_widget, ingest_now, register, widget_session
from tests.webhooks.factories import seed_webhook_rows


async def _conversation(client: httpx.AsyncClient, widget_key: str) -> str:
    session = await widget_session(client, widget_key)
    sent = await client.post(
        "/v1/widget/messages",
        json={"content": "when do you open?"},
        headers={**session.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert sent.status_code in (200, 201), sent.text
    return session.conversation_id


async def test_retention_purges_only_what_is_older(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    assert REGISTRY.schedules[RETENTION_JOB]  # nightly
    owner = await register(client, "retention")
    tenant = uuid.UUID(owner.tenant_id)
    url = f"/v1/tenants/{owner.tenant_id}/retention"
    defaults = await client.get(url, headers=owner.headers)
    assert defaults.json() == {
        "conversations_days": None,
        "files_days": None,
        "logs_days": None,
        "effective": {"conversations_days": 0, "files_days": 0, "logs_days": 90},
    }
    assert_problem(
        await client.put(url, json={"conversations_days": 0}, headers=owner.headers), 422
    )
    w = await create_widget(client, owner)
    old = await _conversation(client, w.widget_key)
    recent = await _conversation(client, w.widget_key)
    upload = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        files={"file": ("notes.md", b"# Notes\n\nWe open at nine.", "text/markdown")},
        headers=owner.headers,
    )
    assert upload.status_code == 202, upload.text
    await ingest_now(app, owner.tenant_id, upload.json()["job"]["id"])
    await seed_webhook_rows(app.state.runtime.db, owner.tenant_id)  # a dead delivery + attempt
    audit_before = await admin_conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1", tenant
    )

    # Age the old conversation, the upload and the delivery by 100 days.
    await admin_conn.execute(
        "UPDATE conversations SET created_at = now() - interval '100 days', "
        "last_message_at = now() - interval '100 days' WHERE id = $1",
        uuid.UUID(old),
    )
    await admin_conn.execute(
        "UPDATE kb_sources SET created_at = now() - interval '100 days' WHERE tenant_id = $1",
        tenant,
    )
    await admin_conn.execute(
        "UPDATE webhook_deliveries SET created_at = now() - interval '100 days' "
        "WHERE tenant_id = $1",
        tenant,
    )
    put = await client.put(
        url,
        json={"conversations_days": 30, "files_days": 30, "logs_days": 60},
        headers=owner.headers,
    )
    assert put.status_code == 200, put.text
    assert put.json()["effective"] == {"conversations_days": 30, "files_days": 30, "logs_days": 60}

    runtime = app.state.runtime
    storage = storage_for(runtime)
    key = await admin_conn.fetchval(
        "SELECT storage_key FROM kb_sources WHERE tenant_id = $1", tenant
    )
    assert await storage.list_keys(f"{owner.tenant_id}/") == [key]
    ctx = JobContext(
        db=runtime.db, job_id=0, entrypoint=RETENTION_JOB, attempt=0, payload={}, runtime_=runtime
    )
    await apply_retention(ctx)

    convs = {
        str(r["id"])
        for r in await admin_conn.fetch("SELECT id FROM conversations WHERE tenant_id = $1", tenant)
    }
    assert convs == {recent}
    assert (
        await admin_conn.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", uuid.UUID(old)
        )
        == 0
    )
    assert (
        await admin_conn.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1", uuid.UUID(recent)
        )
        == 2
    )
    # The original is gone from storage; the source and its index stay.
    assert await storage.list_keys(f"{owner.tenant_id}/") == []
    source = await admin_conn.fetchrow(
        "SELECT storage_key, chunk_count FROM kb_sources WHERE tenant_id = $1", tenant
    )
    assert source["storage_key"] is None
    assert source["chunk_count"] >= 1
    for table in ("webhook_deliveries", "webhook_attempts"):
        left = await admin_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1",
            tenant,
        )
        assert left == 0, table
    # The audit log is never purged (it only grew, by the retention change).
    assert (
        await admin_conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", tenant)
        == audit_before + 1
    )
    # Running again removes nothing more.
    await apply_retention(ctx)
    assert (
        await admin_conn.fetchval("SELECT count(*) FROM conversations WHERE tenant_id = $1", tenant)
        == 1
    )
