"""Monthly usage reports (JSON and CSV), the platform-wide view, and temporary overages
granted by platform admins (audited, expiring)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.conftest import (
    ALLOWED_ORIGIN,
    Account,
    assert_problem,
    create_widget,
    register,
    widget_session,
)
from tests.usage.conftest import on_plan


async def _admin(c: httpx.AsyncClient, admin_conn: asyncpg.Connection) -> Account:
    acct = await register(c, "usage-admin")
    await admin_conn.execute(
        "UPDATE users SET is_platform_admin = true WHERE email = $1", acct.email
    )
    return acct


async def test_monthly_report_json_and_csv_agree(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "report")
    w = await create_widget(pclient, owner, bot={"provider": "openai", "model": "fake-echo"})
    s = await widget_session(pclient, w.widget_key)
    for i in range(3):
        sent = await pclient.post(
            "/v1/widget/messages",
            json={"content": f"question {i}"},
            headers={**s.headers, "Idempotency-Key": f"rep-{i}"},
        )
        assert sent.status_code == 201, sent.text
    tokens = await admin_conn.fetchval(
        "SELECT sum(prompt_tokens + completion_tokens) FROM llm_turns WHERE tenant_id = $1::uuid",
        owner.tenant_id,
    )
    base = f"/v1/tenants/{owner.tenant_id}"
    report = (await pclient.get(f"{base}/usage", headers=owner.headers)).json()
    totals = {t["type"]: t["quantity"] for t in report["totals"]}
    assert totals == {
        "llm_tokens": tokens,
        "conversations_started": 1,
        "messages_processed": 3,
        "webhook_events": 0,
        "integration_calls": 0,
        "storage_bytes": 0,
    }
    assert report["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert report["plan"] == "free"
    today = datetime.now(UTC).date().isoformat()
    days = {(d["day"], d["type"]): d["quantity"] for d in report["days"]}
    assert days == {
        (today, "llm_tokens"): tokens,
        (today, "conversations_started"): 1,
        (today, "messages_processed"): 3,
    }
    limits = {r["metric"]: r for r in report["limits"]}
    assert limits["monthly_tokens"]["limit"] == 1_000_000
    assert limits["monthly_tokens"]["used"] == tokens
    assert limits["bots"]["limit"] is None

    as_csv = await pclient.get(f"{base}/usage.csv", headers=owner.headers)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == ["period", "day", "type", "quantity"]
    assert {(r["day"], r["type"]): int(r["quantity"]) for r in rows if r["day"]} == days
    assert {r["type"]: int(r["quantity"]) for r in rows if not r["day"]} == totals

    last_year = (await pclient.get(f"{base}/usage?period=2025-01", headers=owner.headers)).json()
    assert last_year["days"] == []
    assert {t["quantity"] for t in last_year["totals"]} == {0}
    assert_problem(await pclient.get(f"{base}/usage?period=2025-13", headers=owner.headers), 422)


async def test_platform_view_lists_every_workspace_for_admins_only(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "platform-view")
    w = await create_widget(pclient, owner)
    await widget_session(pclient, w.widget_key)
    assert_problem(await pclient.get("/v1/admin/usage", headers=owner.headers), 403)
    assert_problem(await pclient.get("/v1/admin/usage"), 401)
    admin = await _admin(pclient, admin_conn)
    found: dict[str, Any] = {}
    cursor = None
    while True:
        page = await pclient.get(
            "/v1/admin/usage",
            params={"limit": 50, **({"cursor": cursor} if cursor else {})},
            headers=admin.headers,
        )
        assert page.status_code == 200, page.text
        found.update({i["tenant_id"]: i for i in page.json()["items"]})
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert found[owner.tenant_id]["totals"]["conversations_started"] == 1
    assert found[owner.tenant_id]["plan"] == "free"
    assert len(found) == await admin_conn.fetchval("SELECT count(*) FROM tenants")


async def test_an_overage_lets_more_through_until_it_expires_and_is_audited(
    pclient: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(pclient, "overage")
    await on_plan(admin_conn, owner.tenant_id, "t-conv")
    w = await create_widget(pclient, owner)
    for _ in range(2):
        await widget_session(pclient, w.widget_key)

    async def start() -> httpx.Response:
        return await pclient.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": ALLOWED_ORIGIN},
        )

    assert_problem(await start(), 402, "quota_exceeded")
    path = f"/v1/admin/tenants/{owner.tenant_id}/overages"
    grant = {
        "metric": "monthly_conversations",
        "extra": 1,
        "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "reason": "launch week",
    }
    assert_problem(await pclient.post(path, json=grant, headers=owner.headers), 403)
    admin = await _admin(pclient, admin_conn)
    past = {**grant, "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    assert_problem(
        await pclient.post(path, json=past, headers=admin.headers), 422, "invalid_overage"
    )
    # An overage that has expired does not count.
    await admin_conn.execute(
        "INSERT INTO plan_overages (tenant_id, id, metric, extra, reason, expires_at) "
        "VALUES ($1::uuid, gen_random_uuid(), 'monthly_conversations', 50, 'old', "
        "now() - interval '1 day')",
        owner.tenant_id,
    )
    assert_problem(await start(), 402, "quota_exceeded")
    granted = await pclient.post(path, json=grant, headers=admin.headers)
    assert granted.status_code == 201, granted.text
    assert (granted.json()["extra"], granted.json()["active"]) == (1, True)
    assert (await start()).status_code == 201
    refused = await start()
    body = assert_problem(refused, 402, "quota_exceeded")
    assert (body["limit"], body["used"]) == (3, 3)
    listed = (await pclient.get(path, headers=admin.headers)).json()
    assert sorted(o["active"] for o in listed) == [False, True]
    audit = await pclient.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
    entry = next(e for e in audit.json()["items"] if e["action"] == "plan.overage_granted")
    assert entry["actor"] == f"platform_admin:{admin.user_id}"
    assert entry["after"]["reason"] == "launch week"
    # Once it expires, the plan's limit is the limit again.
    await admin_conn.execute(
        "UPDATE plan_overages SET expires_at = now() - interval '1 second' "
        "WHERE tenant_id = $1::uuid",
        owner.tenant_id,
    )
    body = assert_problem(await start(), 402, "quota_exceeded")
    assert body["limit"] == 2
    unknown = "00000000-0000-7000-8000-000000000000"
    assert_problem(
        await pclient.post(
            f"/v1/admin/tenants/{unknown}/overages", json=grant, headers=admin.headers
        ),
        404,
    )
