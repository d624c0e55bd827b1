"""The console's golden questions page: add (at least one expectation, as the API demands),
delete, the gate's mode, and "Run them now" answering each question with a version of the bot
(the extractive provider over a real ingested source). Any member reads; an editor changes;
another workspace's bot is not found; every change is in the audit log."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx

from tests.conftest import add_member, create_widget, ingest_now, register
from tests.console.test_console_pages import console_client, post, sign_in


async def test_golden_questions_are_added_run_and_removed(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "console-golden")
    w = await create_widget(client, owner)
    source = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={
            "type": "text",
            "title": "Opening hours",
            "text": "The repair shop opens at 9 am from Monday to Saturday. "
            "Bikes left before noon are ready the same evening.",
        },
        headers=owner.headers,
    )
    assert source.status_code == 202, source.text
    await ingest_now(app, owner.tenant_id, source.json()["job"]["id"])
    url = f"/console/w/{owner.tenant_id}/bots/{w.bot_id}/golden"

    async with await console_client(app, "10.211.0.1") as c:
        await sign_in(c, owner)
        editor_page = await c.get(f"/console/w/{owner.tenant_id}/bots/{w.bot_id}")
        assert f'href="{url}"' in editor_page.text
        page = await c.get(url)
        assert page.status_code == 200
        assert "None yet" in page.text

        # No expectation at all: refused with the API's reason, nothing stored.
        refused = await post(c, url, url, {"question": "When do you open?"})
        assert refused.status_code == 422
        assert "at least one of" in refused.text
        assert 'value="When do you open?"' in refused.text  # what was typed stays
        for question, expected in [
            ("When does the shop open?", "9 am"),
            ("Do you repair scooters?", "scooters are repaired"),
        ]:
            added = await post(c, url, url, {"question": question, "expected_answer": expected})
            assert added.status_code == 303, added.text
        page = await c.get(url)
        assert "2 questions" in page.text
        assert "The answer says “9 am”" in page.text

        ran = await post(c, url, f"{url}/run", {})
        assert ran.status_code == 200, ran.text
        assert "v1: 1 of 2 pass" in ran.text
        assert '<section class="notice warn"' in ran.text  # a failing run is not shown as success
        assert ran.text.count("badge bad") == 1
        assert re.search(r"fails</span> the answer does not say it · answered: “", ran.text)

        assert (await post(c, url, f"{url}/mode", {"mode": "warn"})).status_code == 303
        assert "publishes it with a warning" in (await c.get(url)).text
        bad_mode = await post(c, url, f"{url}/mode", {"mode": "sometimes"})
        assert bad_mode.status_code == 422

        scooter = await admin_conn.fetchval(
            "SELECT id FROM golden_questions WHERE question = 'Do you repair scooters?'"
        )
        # Deleting one takes a second click that says what it does.
        page = (await c.get(url)).text
        behind = re.search(
            rf'<details class="confirm"><summary>Delete…</summary>'
            rf"((?:(?!</details>).)*{scooter}/delete(?:(?!</details>).)*)</details>",
            page,
            re.S,
        )
        assert behind is not None
        assert 'class="danger">Delete “Do you repair scooters?”</button>' in behind.group(1)
        gone = await post(c, url, f"{url}/{scooter}/delete", {})
        assert gone.status_code == 303
        ran = await post(c, url, f"{url}/run", {})
        assert "v1: 1 of 1 pass" in ran.text
        assert '<section class="notice"' in ran.text
    actions = [
        r[0]
        for r in await admin_conn.fetch(
            "SELECT action FROM audit_log WHERE tenant_id = $1 AND action LIKE 'bot.%' "
            "ORDER BY seq",
            uuid.UUID(owner.tenant_id),
        )
    ]
    assert actions.count("bot.golden_question.created") == 2
    assert "bot.golden_question.deleted" in actions
    assert "bot.quality_gate.updated" in actions


async def test_a_viewer_reads_the_questions_and_changes_nothing(
    app: Any, client: httpx.AsyncClient
) -> None:
    owner = await register(client, "console-golden-roles")
    w = await create_widget(client, owner)
    created = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}/golden-questions",
        json={"question": "Hello?", "expected_answer": "Hello"},
        headers=owner.headers,
    )
    assert created.status_code == 201
    viewer = await add_member(client, owner, "viewer")
    other = await register(client, "console-golden-other")
    other_bot = await create_widget(client, other)
    url = f"/console/w/{owner.tenant_id}/bots/{w.bot_id}/golden"
    async with await console_client(app, "10.211.0.2") as c:
        await sign_in(c, viewer)
        page = await c.get(url)
        assert page.status_code == 200
        assert "Hello?" in page.text
        assert "Add a question" not in page.text
        assert "Run them now" not in page.text
        for action, data in [
            ("", {"question": "Q", "expected_answer": "A"}),
            ("/mode", {"mode": "warn"}),
            ("/run", {}),
            (f"/{created.json()['id']}/delete", {}),
        ]:
            assert (await post(c, url, f"{url}{action}", data)).status_code == 403
        # Another workspace's bot, through this workspace or its own: not found.
        assert (
            await c.get(f"/console/w/{owner.tenant_id}/bots/{other_bot.bot_id}/golden")
        ).status_code == 404
        assert (
            await c.get(f"/console/w/{other.tenant_id}/bots/{other_bot.bot_id}/golden")
        ).status_code == 404
