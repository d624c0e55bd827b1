"""The widget over a limit, in real Chromium: the visitor sees the workspace's configured
message, said by the assistant, not an error (docs/plans.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    create_widget,
    make_settings,
    register,
    serve_app,
)
from tests.e2e.conftest import HostSite, shot
from tests.e2e.test_widget_browser import _open, _page_html, _send

MESSAGE = "Our assistant is resting for today — write to help@shop.example."


async def test_the_widget_shows_the_configured_message_over_a_budget_and_a_plan(
    browser: Any,
    live_server: LiveServer,
    host_sites: tuple[HostSite, HostSite],
    admin_conn: asyncpg.Connection,
) -> None:
    allowed, _ = host_sites
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        owner = await register(c, "quota-browser")
        w = await create_widget(c, owner, origins=[allowed.origin])
        t = f"/v1/tenants/{owner.tenant_id}"
        put = await c.put(
            f"{t}/usage/settings", json={"quota_message": MESSAGE}, headers=owner.headers
        )
        assert put.status_code == 200, put.text
        budget = await c.put(
            f"{t}/channels/{w.channel_id}/visitor-budget",
            json={"messages_per_day": 1},
            headers=owner.headers,
        )
        assert budget.status_code == 200, budget.text
    allowed.pages["/quota"] = _page_html(live_server, w.widget_key)

    # 1. The visitor's daily budget: one message, then the workspace's message.
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(allowed.origin + "/quota")
    await _open(page)
    log = page.get_by_role("log")
    await _send(page, "first question")
    await log.locator(".m.bot").first.wait_for(timeout=15_000)
    await _send(page, "second question")
    notice = log.get_by_text(MESSAGE)
    await notice.wait_for(timeout=15_000)
    assert await notice.get_attribute("role") == "status"
    errors = page.locator("#parley-widget").locator("[role=alert]")
    assert (await errors.all_inner_texts()) in ([], [""])
    await shot(page, "widget-visitor-budget")
    await context.close()

    # 2. The plan: no new conversation this month; a new visitor gets the same message.
    await admin_conn.execute(
        "INSERT INTO plans (name, limits) VALUES ('t-browser', '{\"monthly_conversations\": 1}') "
        "ON CONFLICT (name) DO UPDATE SET limits = EXCLUDED.limits"
    )
    await admin_conn.execute(
        "UPDATE tenants SET plan = 't-browser' WHERE id = $1::uuid", owner.tenant_id
    )
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
        refused = await c.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": allowed.origin},
        )
        assert refused.status_code == 402, refused.text
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(allowed.origin + "/quota")
    await _open(page)
    await page.get_by_role("log").get_by_text(MESSAGE).wait_for(timeout=15_000)
    await shot(page, "widget-plan-limit")
    await context.close()


async def test_too_many_chats_from_one_address_reads_as_busy_not_broken(
    browser: Any,
    host_sites: tuple[HostSite, HostSite],
    test_db: DatabaseUnderTest,
    data_dir: Path,
) -> None:
    """Behind one shared address (an office, a carrier's NAT) the per-address session limit is
    hit: the visitor reads that the chat is busy and will retry, not that it is unavailable
    (decision 0043). Its own server, so the limit is one and no other test's sessions count."""
    allowed, _ = host_sites
    settings = make_settings(data_dir, parley_widget_sessions_per_minute=1, redis_url=None)
    with serve_app(settings, test_db.app_url) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as c:
            w = await create_widget(c, await register(c, "busy-browser"), origins=[allowed.origin])
            first = await c.post(
                "/v1/widget/session",
                json={"widget_key": w.widget_key},
                headers={"Origin": allowed.origin},
            )
            assert first.status_code == 201, first.text  # the address's one session this minute
        allowed.pages["/busy"] = _page_html(server, w.widget_key)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(allowed.origin + "/busy")
        await _open(page)
        alert = page.get_by_role("alert")
        await alert.get_by_text("busy right now", exact=False).wait_for(timeout=10_000)
        assert "unavailable" not in (await alert.inner_text()).lower()
        assert await alert.get_by_role("button", name="Retry").count() == 1
        await shot(page, "widget-busy")
        await context.close()
