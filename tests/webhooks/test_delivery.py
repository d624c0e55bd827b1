"""Outbound webhooks over real HTTP: Standard Webhooks signatures (checked with the official
`standardwebhooks` package), retries, the dead-letter queue and its re-run, redirects never
followed, the circuit breaker, secret rotation, and a claim whose worker was lost."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from parley.kit.db import TenantId, tenant_session
from parley.webhooks import delivery
from parley.webhooks.service import enqueue_delivery
from tests.conftest import assert_problem, register
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import deliveries, make_hook, start_conversations
from tests.webhooks.receiver import Receiver


def _single(r: Receiver, path: str) -> dict[str, Any]:
    (got,) = r.at(path)
    return {"headers": got.headers, "body": got.body}


async def test_signed_delivery_verifies_with_the_official_library(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "wh-sign")
    hook = await make_hook(wh_client, owner, receiver.url("/sign"), ["conversation.started"])
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    # The secret is shown once: never in a read, and only ciphertext in the database.
    got = await wh_client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}", headers=owner.headers
    )
    assert "secret" not in got.json()
    stored = await admin_conn.fetchval(
        "SELECT secret_encrypted FROM webhook_endpoints WHERE id = $1", uuid.UUID(hook["id"])
    )
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored

    (conversation_id,) = await start_conversations(wh_client, owner)
    async with worker():
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
    req = _single(receiver, "/sign")
    payload = Webhook(secret).verify(req["body"], req["headers"])
    assert payload["type"] == "conversation.started"
    assert payload["data"]["conversation_id"] == conversation_id
    assert payload["timestamp"]
    (d,) = await deliveries(wh_client, owner, hook["id"])
    assert req["headers"]["webhook-id"] == d["id"]
    assert req["headers"]["content-type"] == "application/json"
    # An independent check fails with another secret and with a flipped byte.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(req["body"], req["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(
            req["body"].replace(b"conversation", b"Conversation"), req["headers"]
        )
    assert [a["status_code"] for a in d["attempts"]] == [200]
    assert d["attempts"][0]["latency_ms"] is not None


async def _delivered(client: httpx.AsyncClient, owner: Any, hook_id: str, n: int) -> bool:
    return len(await deliveries(client, owner, hook_id, "delivered")) >= n


async def _dead(client: httpx.AsyncClient, owner: Any, hook_id: str, n: int) -> bool:
    return len(await deliveries(client, owner, hook_id, "dead")) >= n


async def test_receiver_failing_n_times_gets_the_delivery_exactly_once(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-flaky")
    hook = await make_hook(wh_client, owner, receiver.url("/flaky"), ["conversation.started"])
    receiver.plan("/flaky", [500, 503, 429, 200])
    await start_conversations(wh_client, owner)
    async with worker():
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
    got = receiver.at("/flaky")
    assert len(got) == 4
    assert len({r.headers["webhook-id"] for r in got}) == 1  # one stable id across retries
    (d,) = await deliveries(wh_client, owner, hook["id"])
    assert d["status"] == "delivered"
    assert d["attempt_count"] == 4
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in d["attempts"]] == [
        (1, 500, False),
        (2, 503, False),
        (3, 429, False),
        (4, 200, True),
    ]
    assert d["attempts"][0]["error"] == "HTTP 500"


async def test_always_failing_goes_to_the_dlq_and_a_rerun_delivers_once(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-dead")
    hook = await make_hook(wh_client, owner, receiver.url("/down"), ["conversation.started"])
    receiver.plan("/down", [500])
    await start_conversations(wh_client, owner)
    async with worker():  # 3 retries after the first attempt, then dead
        await wait_for(lambda: _dead(wh_client, owner, hook["id"], 1))
    assert len(receiver.at("/down")) == 4
    base = f"/v1/tenants/{owner.tenant_id}/webhooks"
    dlq = (await wh_client.get(f"{base}/dead-letters", headers=owner.headers)).json()
    (dead,) = dlq["items"]
    assert dead["status"] == "dead"
    assert dead["attempt_count"] == 4
    assert dead["dead_at"]
    assert len(dead["attempts"]) == 4
    ready = (await wh_client.get("/readyz")).json()
    assert ready["checks"]["webhooks"]["dead_letters"] >= 1
    metrics = (await wh_client.get("/metrics")).text
    assert "parley_webhook_dead_letters" in metrics
    assert 'parley_webhook_delivery_failures_total{kind="http_status"}' in metrics

    # Re-run: the first call queues it, a second one while it waits adds nothing.
    receiver.plan("/down", [200])
    retry = f"{base}/{hook['id']}/deliveries/{dead['id']}/retry"
    first = await wh_client.post(retry, headers=owner.headers)
    assert first.status_code == 202
    assert first.json()["requeued"] is True
    second = await wh_client.post(retry, headers=owner.headers)
    assert second.status_code == 202
    assert second.json()["requeued"] is False
    assert second.json()["delivery"]["status"] == "pending"
    async with worker():
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
    got = receiver.at("/down")
    assert len(got) == 5
    assert {r.headers["webhook-id"] for r in got} == {dead["id"]}
    (d,) = await deliveries(wh_client, owner, hook["id"])
    assert [a["succeeded"] for a in d["attempts"]] == [False] * 4 + [True]
    # Delivered is final: never sent again.
    assert_problem(await wh_client.post(retry, headers=owner.headers), 409)
    dlq = (await wh_client.get(f"{base}/dead-letters", headers=owner.headers)).json()
    assert dlq["items"] == []


async def test_a_redirect_is_a_failure_and_never_followed(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-redirect")
    hook = await make_hook(wh_client, owner, receiver.url("/moved"), ["conversation.started"])
    receiver.plan("/moved", [302])
    await start_conversations(wh_client, owner)
    async with worker():
        await wait_for(lambda: _dead(wh_client, owner, hook["id"], 1))
    assert len(receiver.at("/moved")) == 4
    assert receiver.at("/target") == []
    (d,) = await deliveries(wh_client, owner, hook["id"])
    assert {a["status_code"] for a in d["attempts"]} == {302}
    assert all("not followed" in a["error"] for a in d["attempts"])


async def test_circuit_breaker_defers_a_failing_endpoint_and_others_still_deliver(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    bad = await register(wh_client, "wh-breaker-a")
    good = await register(wh_client, "wh-breaker-b")
    bad_hook = await make_hook(wh_client, bad, receiver.url("/broken"), ["conversation.started"])
    good_hook = await make_hook(wh_client, good, receiver.url("/fine"), ["conversation.started"])
    receiver.plan("/broken", [500])
    await start_conversations(wh_client, bad, n=6)
    settings = {
        "parley_webhook_breaker_failures": 3,
        "parley_webhook_breaker_cooldown_seconds": 600,
        "parley_webhook_max_in_flight": 1,
        "parley_webhook_retry_schedule": ",".join(["0.05"] * 10),
    }
    async with worker(**settings):
        await wait_for(lambda: _circuit(wh_client, bad, bad_hook["id"], "open"))
        await start_conversations(wh_client, good)  # another tenant, while A's circuit is open
        await wait_for(lambda: _delivered(wh_client, good, good_hook["id"], 1))
        await wait_for(lambda: _all_deferred(wh_client, bad, bad_hook["id"]))
    # Exactly the failures that opened the circuit reached the broken endpoint; the other
    # deliveries were deferred without an attempt.
    assert len(receiver.at("/broken")) == 3
    items = await deliveries(wh_client, bad, bad_hook["id"])
    assert len(items) == 6
    assert sum(d["attempt_count"] for d in items) == 3
    assert {d["status"] for d in items} == {"pending"}
    assert len(receiver.at("/fine")) == 1


async def _circuit(client: httpx.AsyncClient, owner: Any, hook_id: str, state: str) -> bool:
    got = await client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook_id}", headers=owner.headers
    )
    return bool(got.json()["circuit"]["state"] == state)


async def _all_deferred(client: httpx.AsyncClient, owner: Any, hook_id: str) -> bool:
    got = await client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook_id}", headers=owner.headers
    )
    open_until = got.json()["circuit"]["open_until"]
    items = await deliveries(client, owner, hook_id)
    return bool(open_until) and all(
        d["status"] == "pending" and d["next_attempt_at"] >= open_until[:19] for d in items
    )


async def test_half_open_probe_closes_the_circuit_and_the_backlog_drains(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-probe")
    hook = await make_hook(wh_client, owner, receiver.url("/recovering"), ["conversation.started"])
    receiver.plan("/recovering", [500, 500, 200])
    await start_conversations(wh_client, owner, n=3)
    settings = {
        "parley_webhook_breaker_failures": 2,
        "parley_webhook_breaker_cooldown_seconds": 1,
        "parley_webhook_max_in_flight": 1,
        "parley_webhook_retry_schedule": ",".join(["0.05"] * 6),
    }
    async with worker(**settings):
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 3))
    got = receiver.at("/recovering")
    assert len(got) == 5  # two failures opened it, then one probe and the rest succeeded
    assert await _circuit(wh_client, owner, hook["id"], "closed")


async def test_rotation_signs_with_both_secrets_during_the_window(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory
) -> None:
    owner = await register(wh_client, "wh-rotate")
    hook = await make_hook(wh_client, owner, receiver.url("/rotating"), ["conversation.started"])
    rotated = await wh_client.post(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}/rotate-secret",
        headers=owner.headers,
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"]
    assert rotated.json()["rotation_ends_at"]
    await start_conversations(wh_client, owner)
    async with worker():
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
    req = _single(receiver, "/rotating")
    signatures = req["headers"]["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (new_secret, hook["secret"]):
        assert Webhook(secret).verify(req["body"], req["headers"])["type"] == (
            "conversation.started"
        )
    # Each signature on its own verifies with exactly one of the two secrets.
    new_only = {**req["headers"], "webhook-signature": signatures[0]}
    Webhook(new_secret).verify(req["body"], new_only)
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(req["body"], new_only)


async def test_a_lost_claim_is_resent_once_and_a_delivered_one_never_again(
    wh_client: httpx.AsyncClient, wh_app: Any, receiver: Receiver, worker: WorkerFactory
) -> None:
    """The worker that claimed the delivery died before recording the outcome (simulated by
    claiming it and never recording): after the lease it is sent again under the same id; once
    delivered, stale or duplicated jobs for it send nothing."""
    owner = await register(wh_client, "wh-lost")
    hook = await make_hook(wh_client, owner, receiver.url("/lost"), ["conversation.started"])
    await start_conversations(wh_client, owner)
    (d,) = await deliveries(wh_client, owner, hook["id"])
    runtime = wh_app.state.runtime
    tid = TenantId(uuid.UUID(owner.tenant_id))
    async with worker(parley_webhook_timeout_seconds=1.0) as wr:
        async with tenant_session(runtime.db, tid) as session:
            claim = await delivery.claim(session, wr, tid, uuid.UUID(d["id"]), 0)
        assert claim is not None
        assert claim.attempt == 1
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
        (done,) = await deliveries(wh_client, owner, hook["id"])
        assert [a["succeeded"] for a in done["attempts"]] == [False, True]
        assert "no outcome recorded" in done["attempts"][0]["error"]
        async with tenant_session(runtime.db, tid) as session:
            for seq in range(4):  # stale generations and the current one
                await enqueue_delivery(session, tid, uuid.UUID(d["id"]), seq)
        await wait_for(lambda: _queue_empty(runtime, tid, d["id"]))
    assert len(receiver.at("/lost")) == 1
    body = json.loads(receiver.at("/lost")[0].body)
    assert body["type"] == "conversation.started"


async def _queue_empty(runtime: Any, tid: TenantId, delivery_id: str) -> bool:
    from sqlalchemy import text

    from parley.kit.db import platform_session

    async with platform_session(runtime.db) as session:
        n = await session.scalar(
            text(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'webhooks.deliver' "
                "AND convert_from(payload, 'utf8')::jsonb->>'delivery_id' = :d"
            ),
            {"d": delivery_id},
        )
    return n == 0


async def test_private_urls_are_refused_without_allow_private(client: httpx.AsyncClient) -> None:
    owner = await register(client, "wh-ssrf")
    base = f"/v1/tenants/{owner.tenant_id}/webhooks"
    for url in (
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/hook",
        "https://a..b/not-a-valid-host-name",
        "http://93.184.215.14/plain-http",  # https only when private targets are off
    ):
        resp = await client.post(
            base, json={"url": url, "events": ["message.created"]}, headers=owner.headers
        )
        assert_problem(resp, 422, "unsafe_url")
    ok = await client.post(
        base,
        json={"url": "https://93.184.215.14/hook", "events": ["message.created"]},
        headers=owner.headers,
    )
    assert ok.status_code == 201, ok.text
    patched = await client.patch(
        f"{base}/{ok.json()['id']}", json={"url": "https://127.0.0.1/x"}, headers=owner.headers
    )
    assert_problem(patched, 422, "unsafe_url")
    unknown = await client.post(
        base,
        json={"url": "https://93.184.215.14/h", "events": ["bot.exploded"]},
        headers=owner.headers,
    )
    assert_problem(unknown, 422)
