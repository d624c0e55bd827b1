"""Plans enforced before the work is done: each limit refuses with a problem carrying the
limit, the use and the reset time, and the refused request stores nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from tests.conftest import (
    ALLOWED_ORIGIN,
    assert_problem,
    create_widget,
    register,
    widget_session,
)
from tests.usage.conftest import count, meter, on_plan

NEXT_MONTH = datetime(
    datetime.now(UTC).year + datetime.now(UTC).month // 12,
    datetime.now(UTC).month % 12 + 1,
    1,
    tzinfo=UTC,
)


def _quota(resp: httpx.Response, status: int, metric: str) -> dict[str, Any]:
    body = assert_problem(resp, status, "quota_exceeded")
    assert body["type"].endswith("/quota_exceeded")
    assert body["metric"] == metric
    return body


async def _fresh_minute() -> None:
    """Start a rate test early in a UTC minute, so its window does not roll over mid-test."""
    second = datetime.now(UTC).second
    if second > 40:
        await asyncio.sleep(61 - second)


async def test_monthly_conversations_refused_and_nothing_stored(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "conv-limit")
    await on_plan(admin_conn, owner.tenant_id, "t-conv")
    w = await create_widget(pclient, owner)
    await widget_session(pclient, w.widget_key)
    await widget_session(pclient, w.widget_key)
    before = {t: await count(admin_conn, t, owner.tenant_id) for t in ("conversations", "visitors")}
    refused = await pclient.post(
        "/v1/widget/session", json={"widget_key": w.widget_key}, headers={"Origin": ALLOWED_ORIGIN}
    )
    body = _quota(refused, 402, "monthly_conversations")
    assert (body["limit"], body["used"]) == (2, 2)
    assert datetime.fromisoformat(body["reset_at"]) == NEXT_MONTH
    assert "Retry-After" not in refused.headers
    after = {t: await count(admin_conn, t, owner.tenant_id) for t in ("conversations", "visitors")}
    assert after == before  # no conversation, no visitor: the whole session was refused
    assert await meter(admin_conn, owner.tenant_id, "conversations_started") == (2, 2)
    # The workspace's own view says where it stands.
    report = (
        await pclient.get(f"/v1/tenants/{owner.tenant_id}/usage", headers=owner.headers)
    ).json()
    reading = {r["metric"]: r for r in report["limits"]}["monthly_conversations"]
    assert (reading["limit"], reading["used"], reading["percent"]) == (2, 2, 100)


async def test_messages_per_minute_answers_429_with_retry_after(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "rate-limit")
    await on_plan(admin_conn, owner.tenant_id, "t-rate")
    w = await create_widget(pclient, owner)
    s = await widget_session(pclient, w.widget_key)
    await _fresh_minute()
    for i in range(3):
        ok = await pclient.post(
            "/v1/widget/messages",
            json={"content": f"hello {i}"},
            headers={**s.headers, "Idempotency-Key": f"rate-{i}"},
        )
        assert ok.status_code == 201, ok.text
    before = {
        t: await count(admin_conn, t, owner.tenant_id)
        for t in ("messages", "idempotency_keys", "llm_turns", "usage_events")
    }
    refused = await pclient.post(
        "/v1/widget/messages",
        json={"content": "one too many"},
        headers={**s.headers, "Idempotency-Key": "rate-3"},
    )
    body = _quota(refused, 429, "messages_per_minute")
    assert (body["limit"], body["used"]) == (3, 3)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    reset = datetime.fromisoformat(body["reset_at"])
    assert reset.second == 0
    assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 60
    after = {
        t: await count(admin_conn, t, owner.tenant_id)
        for t in ("messages", "idempotency_keys", "llm_turns", "usage_events")
    }
    assert after == before  # no message, no key claimed, no turn, nothing metered
    # A retry of an accepted send is a replay: admitted, and counted once.
    replay = await pclient.post(
        "/v1/widget/messages",
        json={"content": "hello 0"},
        headers={**s.headers, "Idempotency-Key": "rate-0"},
    )
    assert replay.status_code in (200, 201), replay.text
    assert await meter(admin_conn, owner.tenant_id, "messages_processed") == (3, 3)


async def test_monthly_tokens_refuse_the_next_message(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "token-limit")
    await on_plan(admin_conn, owner.tenant_id, "t-tokens")
    w = await create_widget(pclient, owner, bot={"provider": "openai", "model": "fake-echo"})
    s = await widget_session(pclient, w.widget_key)
    first = await pclient.post(
        "/v1/widget/messages",
        json={"content": "spend my tokens"},
        headers={**s.headers, "Idempotency-Key": "tok-1"},
    )
    assert first.status_code == 201, first.text
    events, tokens = await meter(admin_conn, owner.tenant_id, "llm_tokens")
    assert events == 1
    assert tokens > 5
    # The same send again: a replay, no new tokens.
    again = await pclient.post(
        "/v1/widget/messages",
        json={"content": "spend my tokens"},
        headers={**s.headers, "Idempotency-Key": "tok-1"},
    )
    assert again.status_code in (200, 201)
    assert await meter(admin_conn, owner.tenant_id, "llm_tokens") == (1, tokens)
    messages = await count(admin_conn, "messages", owner.tenant_id)
    refused = await pclient.post(
        "/v1/widget/messages",
        json={"content": "more"},
        headers={**s.headers, "Idempotency-Key": "tok-2"},
    )
    body = _quota(refused, 402, "monthly_tokens")
    assert (body["limit"], body["used"]) == (5, tokens)
    assert datetime.fromisoformat(body["reset_at"]) == NEXT_MONTH
    assert await count(admin_conn, "messages", owner.tenant_id) == messages


async def test_bots_sources_and_storage_limits(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "count-limits")
    await on_plan(admin_conn, owner.tenant_id, "t-bots")
    bots = f"/v1/tenants/{owner.tenant_id}/bots"
    while await count(admin_conn, "bots", owner.tenant_id) < 2:
        made = await pclient.post(bots, json={"name": "B"}, headers=owner.headers)
        assert made.status_code == 201, made.text
    body = _quota(await pclient.post(bots, json={"name": "C"}, headers=owner.headers), 402, "bots")
    assert (body["limit"], body["used"], body["reset_at"]) == (2, 2, None)
    assert await count(admin_conn, "bots", owner.tenant_id) == 2

    await on_plan(admin_conn, owner.tenant_id, "t-sources")
    sources = f"/v1/tenants/{owner.tenant_id}/knowledge/sources"
    big = await pclient.post(
        sources,
        files={"file": ("big.txt", b"x" * 150, "text/plain")},
        headers=owner.headers,
    )
    body = _quota(big, 402, "storage_bytes")
    assert (body["limit"], body["used"]) == (100, 0)
    assert await count(admin_conn, "kb_sources", owner.tenant_id) == 0
    for name in ("a.txt", "b.txt"):
        small = await pclient.post(
            sources,
            files={"file": (name, b"y" * 40, "text/plain")},
            headers=owner.headers,
        )
        assert small.status_code in (201, 202), small.text
    assert await meter(admin_conn, owner.tenant_id, "storage_bytes") == (2, 80)
    third = await pclient.post(
        sources, json={"type": "text", "title": "T", "text": "hi"}, headers=owner.headers
    )
    body = _quota(third, 402, "sources")
    assert (body["limit"], body["used"]) == (2, 2)
    assert await count(admin_conn, "kb_sources", owner.tenant_id) == 2
    reading = {
        r["metric"]: r
        for r in (
            await pclient.get(f"/v1/tenants/{owner.tenant_id}/usage", headers=owner.headers)
        ).json()["limits"]
    }
    assert (reading["storage_bytes"]["used"], reading["sources"]["used"]) == (80, 2)
    assert reading["bots"]["used"] == 2


async def test_limits_shared_by_two_api_processes(
    test_db: Any, data_dir: Any, fake_openai: Any, admin_conn: asyncpg.Connection
) -> None:
    """Two real server processes on one database: 40 concurrent session starts against a
    limit of 12 conversations let exactly 12 through."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from tests.usage.conftest import PLANS

    overrides = json.dumps(
        {
            "openai_base_url": fake_openai.base_url,
            "openai_api_key": "sk-test",
            "parley_plans": PLANS,
            "parley_widget_sessions_per_minute": 10_000,  # the per-IP limit is not the subject
        }
    )
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.usage.api_process", test_db.app_url, str(data_dir),
             overrides, str(port)],
            env=env,
        )
        for port in ports
    ]  # fmt: skip
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        async with (
            httpx.AsyncClient(base_url=urls[0], timeout=30) as a,
            httpx.AsyncClient(base_url=urls[1], timeout=30) as b,
        ):
            deadline = time.monotonic() + 60
            for c in (a, b):
                while True:
                    try:
                        if (await c.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "server process did not start"
                    await asyncio.sleep(0.2)
            owner = await register(a, "two-procs")
            await on_plan(admin_conn, owner.tenant_id, "t-shared")
            w = await create_widget(a, owner)

            async def start(c: httpx.AsyncClient) -> int:
                r = await c.post(
                    "/v1/widget/session",
                    json={"widget_key": w.widget_key},
                    headers={"Origin": ALLOWED_ORIGIN},
                )
                return r.status_code

            codes = await asyncio.gather(*(start(a if i % 2 else b) for i in range(40)))
        assert sorted(set(codes)) == [201, 402], codes
        assert codes.count(201) == 12
        assert await count(admin_conn, "conversations", owner.tenant_id) == 12
        assert await meter(admin_conn, owner.tenant_id, "conversations_started") == (12, 12)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
