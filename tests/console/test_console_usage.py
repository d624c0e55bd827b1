"""The console's usage page (issue 19's plans, seen by the people who run a workspace):
every limit with live overages, the metered month as CSV, and the message visitors see at a
limit, which only an admin may change."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from tests.conftest import add_member, register
from tests.console.test_console_pages import console_client, post, sign_in


async def test_usage_shows_every_limit_the_csv_and_the_visitors_message(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "usage-owner")
    viewer = await add_member(client, owner, "viewer", "usage-viewer")
    stranger = await register(client, "usage-stranger")
    base = f"/console/w/{owner.tenant_id}"
    # A platform admin's overage counts on top of the plan's 1,000 conversations.
    await admin_conn.execute(
        "INSERT INTO plan_overages (tenant_id, id, metric, extra, reason, expires_at) "
        "VALUES ($1::uuid, gen_random_uuid(), 'monthly_conversations', 500, 'launch', "
        "now() + interval '2 days')",
        owner.tenant_id,
    )
    async with await console_client(app, "10.210.0.1") as c:
        await sign_in(c, owner)
        page = await c.get(f"{base}/usage")
        assert page.status_code == 200
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
        for label in (
            "Conversations this month",
            "Model tokens this month",
            "Visitor messages this minute",
            "Bots",
            "Knowledge sources",
            "Knowledge storage",
        ):
            assert label in text, label
        assert "0 used of 1,500 (0 %)" in text  # the overage is in the limit
        assert "0 used of 1,000,000 (0 %)" in text
        assert "0 used; no limit on this plan" in text  # bots on the free plan
        assert "Nothing is refused" not in text  # limits are enforced (decision 0035)
        csv = await c.get(f"{base}/usage.csv")
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.headers["cache-control"] == "no-store"  # a workspace's figures, not cached
        assert csv.text.splitlines()[0] == "period,day,type,quantity"
        # The message visitors see at a limit: saved by an admin, in the audit log.
        saved = await post(
            c, f"{base}/usage", f"{base}/usage/quota-message", {"quota_message": " Back soon! "}
        )
        assert saved.status_code == 303, saved.text
        assert "Back soon!</textarea>" in (await c.get(f"{base}/usage")).text
        too_long = await post(
            c, f"{base}/usage", f"{base}/usage/quota-message", {"quota_message": "x" * 501}
        )
        assert too_long.status_code == 422
        assert 'id="f-quota_message-error"' in too_long.text
        api = await client.get(
            f"/v1/tenants/{owner.tenant_id}/usage/settings", headers=owner.headers
        )
        assert api.json() == {"quota_message": "Back soon!"}
        audit = await client.get(f"/v1/tenants/{owner.tenant_id}/audit-log", headers=owner.headers)
        assert any(e["action"] == "usage.quota_message_changed" for e in audit.json()["items"])
    async with await console_client(app, "10.210.0.2") as c:
        await sign_in(c, viewer)
        page = await c.get(f"{base}/usage")
        assert page.status_code == 200
        assert "Back soon!" in page.text
        assert "/usage/quota-message" not in page.text  # no form for a viewer
        refused = await post(
            c, f"{base}/usage", f"{base}/usage/quota-message", {"quota_message": "mine"}
        )
        assert refused.status_code == 403
    async with await console_client(app, "10.210.0.3") as c:
        await sign_in(c, stranger)
        assert (await c.get(f"{base}/usage")).status_code == 404
        assert (await c.get(f"{base}/usage.csv")).status_code == 404
