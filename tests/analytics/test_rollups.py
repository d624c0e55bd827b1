"""The roll-ups equal a direct recount of the stored rows, after late and duplicate events
(the small version of `python -m bench p14`)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from bench.analytics_data import differences, late_sql, load_sql

from parley.analytics import service
from parley.kit.db import TenantId, tenant_session
from tests.conftest import assert_problem, create_widget, register


async def roll_up_all(app: Any, tenant: str) -> int:
    tid = TenantId(uuid.UUID(tenant))
    total = 0
    while True:
        async with tenant_session(app.state.runtime.db, tid) as session:
            n = await service.roll_up(session, tid)
        if n == 0:
            return total
        total += n


async def test_rollups_equal_a_recount_after_late_and_duplicate_events(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "analytics")
    widget = await create_widget(client, owner)
    tenant = uuid.UUID(owner.tenant_id)
    await admin_conn.execute(
        load_sql(tenant, 120, days=12, messages_per=6, bot=uuid.UUID(widget.bot_id))
    )
    days = await roll_up_all(app, owner.tenant_id)
    assert days >= 10  # the generated conversations span twelve days
    assert await differences(admin_conn, tenant) == {"daily": 0, "models": 0, "latency": 0}
    rolled = await admin_conn.fetchrow(
        "SELECT sum(messages) AS m, sum(turns) AS t, sum(feedback_down) AS d "
        "FROM analytics_daily WHERE tenant_id = $1",
        tenant,
    )
    assert rolled["m"] == 120 * 6
    assert rolled["t"] == 120 * 3
    assert rolled["d"] > 0

    # Late events (dated in past days), changed and re-delivered feedback, repeated marks:
    # the roll-ups disagree with the rows until the job has run, then agree again.
    await admin_conn.execute(late_sql(tenant, 15))
    stale = await differences(admin_conn, tenant)
    assert stale["daily"] > 0
    assert stale["models"] > 0
    assert await roll_up_all(app, owner.tenant_id) > 0
    assert await differences(admin_conn, tenant) == {"daily": 0, "models": 0, "latency": 0}

    # The time-to-first-token percentiles are within the 10 % bucket above the exact ones.
    exact = await admin_conn.fetchrow(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS p50,"
        " percentile_disc(0.95) WITHIN GROUP (ORDER BY ttft_ms) AS p95 FROM llm_turns"
        " WHERE tenant_id = $1 AND status = 'succeeded' AND ttft_ms IS NOT NULL",
        tenant,
    )
    async with tenant_session(app.state.runtime.db, TenantId(tenant)) as session:
        report = await service.metrics(
            session,
            TenantId(tenant),
            start=None,
            end=None,
            bot_id=None,
            channel_id=None,
            group_by="channel",
        )
    for got, want in (
        (report.total.ttft_p50_ms, exact["p50"]),
        (report.total.ttft_p95_ms, exact["p95"]),
    ):
        assert got is not None
        assert want <= got <= want * 1.1 + 1
    assert all(r.ttft_p95_ms is not None for r in report.rows)

    # Nothing pending: a second run changes nothing; a re-marked day recomputes to the same.
    assert await roll_up_all(app, owner.tenant_id) == 0
    before = await admin_conn.fetch(
        "SELECT * FROM analytics_daily WHERE tenant_id = $1 ORDER BY day, channel_id", tenant
    )
    await admin_conn.execute(
        "INSERT INTO analytics_dirty (tenant_id, day) SELECT tenant_id, day FROM analytics_daily "
        "WHERE tenant_id = $1",
        tenant,
    )
    await roll_up_all(app, owner.tenant_id)
    after = await admin_conn.fetch(
        "SELECT * FROM analytics_daily WHERE tenant_id = $1 ORDER BY day, channel_id", tenant
    )
    assert before == after


async def test_a_chat_turn_reaches_the_metrics(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    """Through the product: a widget message and its answer are marked, rolled up, and
    counted by the API (JSON and CSV agree)."""
    from tests.conftest import widget_session

    owner = await register(client, "analytics-chat")
    widget = await create_widget(client, owner)
    session = await widget_session(client, widget.widget_key)
    sent = await client.post(
        "/v1/widget/messages",
        json={"content": "What are your opening hours?"},
        headers={**session.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 201, sent.text
    await roll_up_all(app, owner.tenant_id)
    report = await client.get(
        f"/v1/tenants/{owner.tenant_id}/analytics/metrics", headers=owner.headers
    )
    assert report.status_code == 200, report.text
    total = report.json()["total"]
    assert total["conversations"] == 1
    assert total["user_messages"] == 1
    assert total["bot_messages"] == 1
    assert total["turns"] == 1
    assert total["answered"] + total["fallback"] == 1
    assert report.json()["pending_days"] == 0
    csv = await client.get(
        f"/v1/tenants/{owner.tenant_id}/analytics/metrics",
        params={"format": "csv"},
        headers=owner.headers,
    )
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].split(",") == list(report.json()["rows"][0])
    assert len(lines) == 1 + len(report.json()["rows"])
    assert lines[1].split(",")[0] == report.json()["rows"][0]["key"]


async def test_filters_bad_ranges_and_other_workspaces(client: httpx.AsyncClient) -> None:
    a = await register(client, "analytics-a")
    b = await register(client, "analytics-b")
    b_widget = await create_widget(client, b)
    url = f"/v1/tenants/{a.tenant_id}/analytics/metrics"
    # Another workspace's bot or channel as a filter is absent here: 404, never its figures.
    assert_problem(
        await client.get(url, params={"bot_id": b_widget.bot_id}, headers=a.headers),
        404,
        "bot_not_found",
    )
    assert_problem(
        await client.get(url, params={"channel_id": b_widget.channel_id}, headers=a.headers),
        404,
        "channel_not_found",
    )
    assert_problem(
        await client.get(
            url, params={"start": "2026-05-02", "end": "2026-05-01"}, headers=a.headers
        ),
        422,
        "analytics_bad_range",
    )
    assert_problem(
        await client.get(
            url, params={"start": "2024-01-01", "end": "2026-01-01"}, headers=a.headers
        ),
        422,
        "analytics_bad_range",
    )
    assert_problem(await client.get(url, params={"group_by": "week"}, headers=a.headers), 422)
    # B's own figures are B's: A's token on B's path is refused as absent.
    assert_problem(
        await client.get(f"/v1/tenants/{b.tenant_id}/analytics/metrics", headers=a.headers), 404
    )


async def test_hostile_parameters_are_problems_not_errors(client: httpx.AsyncClient) -> None:
    owner = await register(client, "analytics-hostile")
    w = await create_widget(client, owner)
    base = f"/v1/tenants/{owner.tenant_id}/analytics"
    h = owner.headers
    edge = await client.get(f"{base}/metrics", params={"end": "0001-01-05"}, headers=h)
    assert edge.status_code == 200, edge.text
    assert edge.json()["start"] == "0001-01-01"
    csv = await client.get(f"{base}/models", params={"format": "csv"}, headers=h)
    assert csv.text.splitlines()[0].split(",") == [
        "day",
        "provider",
        "model",
        "turns",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
    ]
    assert_problem(await client.get(f"{base}/metrics", params={"format": "xml"}, headers=h), 422)
    assert_problem(
        await client.get(f"{base}/metrics", params={"end": "2026-13-01"}, headers=h), 422
    )
    gaps = f"{base}/gaps"
    assert_problem(await client.get(gaps, headers=h), 422)  # bot_id is required
    for params in ({"days": "0"}, {"days": "367"}, {"limit": "1000"}, {"bot_id": "nope"}):
        assert_problem(
            await client.get(gaps, params={"bot_id": w.bot_id, **params}, headers=h), 422
        )
    answer = f"{gaps}/{w.bot_id}/answer"
    assert_problem(
        await client.post(
            answer,
            json={"bot_id": w.bot_id, "source_id": w.bot_id, "answer": "x" * 20_001},
            headers=h,
        ),
        422,
    )
    assert_problem(
        await client.post(
            answer,
            json={"bot_id": w.bot_id, "source_id": w.bot_id, "answer": "x", "extra": 1},
            headers=h,
        ),
        422,
    )
    assert_problem(
        await client.post(f"{gaps}/not-a-uuid/answer", json={}, headers=h),
        422,
    )
    assert_problem(
        await client.post(
            answer, json={"bot_id": w.bot_id, "source_id": w.bot_id, "answer": "x"}, headers=h
        ),
        404,
        "gap_not_found",
    )
