"""`knowledge.job.completed` over real HTTP: a finished ingestion job (succeeded, or failed with
its error code) reaches a subscribed endpoint once, signed (checked with the official
`standardwebhooks` package), and a rule's webhook; a re-run of the job or of its emit path adds
nothing, while a re-index, being a new job, announces again."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
from standardwebhooks import Webhook

from parley.kit.db import TenantId, tenant_session
from parley.kit.jobs import JobContext
from parley.knowledge import ingest
from parley.knowledge import repository as kb_repo
from parley.knowledge.service import INGEST_JOB
from parley.knowledge.tasks import ingest_source
from tests.conftest import Account, register
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import call_webhook_rule, deliveries, make_hook
from tests.webhooks.receiver import Receiver

EVENT = "knowledge.job.completed"
FAQ = {
    "type": "faq",
    "title": "Shop FAQ",
    "pairs": [
        {"question": "Do you ship abroad?", "answer": "Yes, to every country in the EU."},
        {"question": "How long do refunds take?", "answer": "Five business days."},
    ],
}


async def _wait_job(client: httpx.AsyncClient, owner: Account, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await client.get(
            f"/v1/tenants/{owner.tenant_id}/knowledge/jobs/{job_id}", headers=owner.headers
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def _delivered(client: httpx.AsyncClient, owner: Account, hook_id: str, n: int) -> bool:
    return len(await deliveries(client, owner, hook_id, "delivered")) >= n


async def _source(client: httpx.AsyncClient, owner: Account, source_id: str) -> dict[str, Any]:
    resp = await client.get(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources/{source_id}", headers=owner.headers
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def _emitted(admin_conn: asyncpg.Connection, owner: Account, job_id: str) -> int:
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM emitted_events WHERE tenant_id = $1 AND event = $2 "
        "AND subject_id = $3",
        uuid.UUID(owner.tenant_id),
        EVENT,
        uuid.UUID(job_id),
    )
    return int(count)


async def test_a_finished_ingestion_is_delivered_once_signed_and_a_reindex_announces_again(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "kb-event")
    hook = await make_hook(wh_client, owner, receiver.url("/kb"), [EVENT])
    base = f"/v1/tenants/{owner.tenant_id}/knowledge/sources"
    created = await wh_client.post(base, json=FAQ, headers=owner.headers)
    assert created.status_code == 202, created.text
    source_id, job_id = created.json()["id"], created.json()["job"]["id"]
    async with worker():
        job = await _wait_job(wh_client, owner, job_id)
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
    assert job["status"] == "succeeded"
    source = await _source(wh_client, owner, source_id)
    assert source["chunk_count"] > 0

    (got,) = receiver.at("/kb")
    payload = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert payload["type"] == EVENT
    assert payload["timestamp"]
    assert payload["data"] == {
        "job_id": job_id,
        "source_id": source_id,
        "kind": "ingest",
        "status": "succeeded",
        "index_version": 1,
        "chunks": source["chunk_count"],
        "source_status": "ready",
        "error": None,
    }
    (d,) = await deliveries(wh_client, owner, hook["id"])
    assert got.headers["webhook-id"] == d["id"]
    assert d["event_type"] == EVENT
    assert await _emitted(admin_conn, owner, job_id) == 1

    # A re-index is a new job of the same source: it announces its own outcome, and only it.
    reindexed = await wh_client.post(f"{base}/{source_id}/reindex", headers=owner.headers)
    assert reindexed.status_code == 202, reindexed.text
    second_job = reindexed.json()["id"]
    assert second_job != job_id
    async with worker():
        assert (await _wait_job(wh_client, owner, second_job))["status"] == "succeeded"
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 2))
    first, second = receiver.at("/kb")
    assert first.body == got.body
    again = Webhook(hook["secret"]).verify(second.body, second.headers)
    assert again["data"]["job_id"] == second_job
    assert again["data"]["kind"] == "reindex"
    assert again["data"]["index_version"] == 2
    assert again["data"]["status"] == "succeeded"
    assert again["data"]["chunks"] == source["chunk_count"]
    assert second.headers["webhook-id"] != first.headers["webhook-id"]
    assert len(await deliveries(wh_client, owner, hook["id"])) == 2


async def test_a_failed_ingestion_is_announced_with_its_error_also_to_a_rules_webhook(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
) -> None:
    owner = await register(wh_client, "kb-event-fail")
    hook = await make_hook(wh_client, owner, receiver.url("/kb-fail"), [EVENT])
    # Not subscribed to the event: an automation rule on it calls this endpoint.
    called = await make_hook(wh_client, owner, receiver.url("/kb-rule"), ["usage.threshold"])
    await call_webhook_rule(wh_client, owner, "ingestion outcomes to ops", EVENT, called["id"])
    # Looks like a PDF (so the upload is accepted), is not one: the job fails for good.
    broken = await wh_client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        files={"file": ("manual.pdf", b"%PDF-1.7\n1 0 obj <<", "application/pdf")},
        headers=owner.headers,
    )
    assert broken.status_code == 202, broken.text
    source_id, job_id = broken.json()["id"], broken.json()["job"]["id"]
    async with worker():
        job = await _wait_job(wh_client, owner, job_id)
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
        await wait_for(lambda: _delivered(wh_client, owner, called["id"], 1))
    assert job["status"] == "failed"
    assert job["error"]

    (got,) = receiver.at("/kb-fail")
    payload = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert payload["type"] == EVENT
    assert payload["data"] == {
        "job_id": job_id,
        "source_id": source_id,
        "kind": "ingest",
        "status": "failed",
        "index_version": 1,
        "chunks": 0,
        "source_status": "failed",
        "error": {"code": "corrupt_file", "message": job["error"]},
    }
    (by_rule,) = receiver.at("/kb-rule")
    assert Webhook(called["secret"]).verify(by_rule.body, by_rule.headers) == payload
    assert len(await deliveries(wh_client, owner, hook["id"])) == 1
    assert len(await deliveries(wh_client, owner, called["id"])) == 1


async def test_a_rerun_job_or_emit_path_announces_nothing_more(
    wh_client: httpx.AsyncClient,
    wh_app: Any,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    """A job re-delivered after a crash between its commit and its acknowledgement, and the
    emit path run again for a finished job: the `emitted_events` row written with the first
    announcement stops both."""
    owner = await register(wh_client, "kb-event-rerun")
    hook = await make_hook(wh_client, owner, receiver.url("/kb-rerun"), [EVENT])
    created = await wh_client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "Hours", "text": "The shop opens at nine every weekday."},
        headers=owner.headers,
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["job"]["id"]
    async with worker():
        assert (await _wait_job(wh_client, owner, job_id))["status"] == "succeeded"
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))

        runtime = wh_app.state.runtime
        for attempt in range(2):  # pgqueuer handing the same job out again
            await ingest_source(
                JobContext(
                    db=runtime.db,
                    job_id=0,
                    entrypoint=INGEST_JOB,
                    attempt=attempt,
                    payload={"tenant_id": owner.tenant_id, "job_id": job_id},
                    runtime_=runtime,
                    max_attempts=1,  # a final attempt: a failure would be recorded, too
                )
            )
        tid = TenantId(uuid.UUID(owner.tenant_id))
        async with tenant_session(runtime.db, tid) as session:
            job = await kb_repo.get_job(session, tid, uuid.UUID(job_id), lock=True)
            assert job is not None
            source = await kb_repo.get_source(session, tid, job.source_id, lock=True)
            assert await ingest.announce(session, tid, job, source) is False
        # Time for the worker to send anything that was (wrongly) created.
        await asyncio.sleep(1.0)
    assert len(receiver.at("/kb-rerun")) == 1
    assert len(await deliveries(wh_client, owner, hook["id"])) == 1
    assert await _emitted(admin_conn, owner, job_id) == 1
    job_now = await _wait_job(wh_client, owner, job_id)
    assert job_now["status"] == "succeeded"
    assert job_now["attempts"] == 1
