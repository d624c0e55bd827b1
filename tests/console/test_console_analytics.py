"""The console's analytics page: the figures the roll-ups computed, the same rows as CSV, and the
knowledge gaps with the action that answers one (an FAQ entry, re-indexed, the gap closed).
Any member reads; only an editor answers; another workspace's bot or gap is not reachable."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.analytics.test_gaps import asked
from tests.analytics.test_rollups import roll_up_all
from tests.conftest import add_member, create_widget, ingest_now, register
from tests.console.test_console_pages import console_client, post, sign_in


def _card(page: str, label: str) -> str:
    found = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", page)
    assert found, f"no figure {label!r} on the page"
    return found.group(1).strip()


async def test_figures_csv_and_answering_a_gap(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "console-analytics")
    w = await create_widget(client, owner)
    ask = (admin_conn, owner, w.bot_id, w.channel_id)
    # Three calendar days whatever the hour the test runs at (an hour ago is yesterday at 00:30).
    now = datetime.now(UTC)
    today = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) / 2
    await asked(
        *ask, "How do I get a refund for my order?", fallback=True, ago=today + timedelta(days=2)
    )
    await asked(*ask, "Can I get a refund?", rating="down", ago=today + timedelta(days=1))
    await asked(*ask, "refund for damaged orders", fallback=True, ago=today)
    await asked(*ask, "What are your opening hours?", rating="up", ago=today)
    await roll_up_all(app, owner.tenant_id)
    faq = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={
            "type": "faq",
            "title": "Shop FAQ",
            "pairs": [{"question": "Hours?", "answer": "9-5"}],
        },
        headers=owner.headers,
    )
    await ingest_now(app, owner.tenant_id, faq.json()["job"]["id"])
    url = f"/console/w/{owner.tenant_id}/analytics"

    async with await console_client(app, "10.210.0.1") as c:
        await sign_in(c, owner)
        page = await c.get(url, params={"days": "7"})
        assert page.status_code == 200, page.text
        text = page.text
        assert _card(text, "Conversations") == "4"
        assert _card(text, "Messages") == "8"
        assert _card(text, "Fallback answers") == "2"
        assert _card(text, "Answered by the bot") == "50 %"
        assert _card(text, "Satisfaction (thumbs up)") == "50 %"
        assert 'aria-current="page">Analytics' in text
        # By channel: the widget channel by its name, with its four conversations.
        by_channel = text[text.index("<h2>By channel</h2>") : text.index("<h2>Model use</h2>")]
        assert re.search(r"\(widget\)</th><td>4</td><td>8</td>", by_channel), by_channel
        # The gaps come after the page (grouping costs more than the page): a placeholder
        # that htmx fills with the section alone, or the whole page without script.
        assert "Asked 3 times" not in text
        assert f'hx-get="{url}/gaps?days=7"' in text
        section = await c.get(
            f"{url}/gaps", params={"days": "7"}, headers={"HX-Request": "true", "HX-Target": "gaps"}
        )
        assert section.status_code == 200
        assert "<html" not in section.text
        assert '<section id="gaps"' in section.text
        text = (await c.get(f"{url}/gaps", params={"days": "7"})).text
        assert "<html" in text
        # The gap: three refund questions in one group, with the form to answer it.
        assert "Asked 3 times" in text
        assert "fallback answer 2, thumbs down 1" in text
        assert "Shop FAQ</option>" in text
        gap_id = re.search(r'action="[^"]*/analytics/gaps/([0-9a-f-]+)/answer"', text)
        assert gap_id

        # The CSV: the API's columns, one row per day with activity.
        exported = await c.get(f"{url}.csv", params={"days": "7"})
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == 3
        assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)
        assert sum(int(r["conversations"]) for r in rows) == 4

        # An empty answer is refused on the form, nothing written.
        refused = await post(
            c,
            url,
            f"{url}/gaps/{gap_id.group(1)}/answer",
            {"bot_id": w.bot_id, "source_id": faq.json()["id"], "answer": "", "days": "7"},
        )
        assert refused.status_code == 422
        assert 'aria-invalid="true"' in refused.text
        # Answered: the FAQ gets the entry, the gap is closed.
        done = await post(
            c,
            url,
            f"{url}/gaps/{gap_id.group(1)}/answer",
            {
                "bot_id": w.bot_id,
                "source_id": faq.json()["id"],
                "question": "Can I get a refund?",
                "answer": "Refunds are paid within 14 days of the return arriving.",
                "days": "7",
            },
        )
        assert done.status_code == 200, done.text
        assert "3 questions of this gap are closed" in done.text
        assert "Asked 3 times" not in done.text
    entry = await admin_conn.fetchval(
        "SELECT count(*) FROM analytics_gap_answers "
        "WHERE tenant_id = $1 AND answer LIKE 'Refunds are%'",
        uuid.UUID(owner.tenant_id),
    )
    assert entry == 1


async def test_several_bots_side_by_side_and_one_bot_alone(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "console-analytics-bots")
    shop = await create_widget(client, owner, bot={"name": "Shop helper"})
    desk = await create_widget(client, owner, bot={"name": "Help desk"})
    await asked(admin_conn, owner, shop.bot_id, shop.channel_id, "Where is my order?")
    await asked(admin_conn, owner, shop.bot_id, shop.channel_id, "Do you ship abroad?")
    await asked(admin_conn, owner, desk.bot_id, desk.channel_id, "My login fails", fallback=True)
    await roll_up_all(app, owner.tenant_id)
    url = f"/console/w/{owner.tenant_id}/analytics"
    async with await console_client(app, "10.210.0.3") as c:
        await sign_in(c, owner)
        text = (await c.get(url, params={"days": "7"})).text
        by_bot = text[text.index("<h2>By bot</h2>") : text.index("<h2>By channel</h2>")]
        # Busiest first, each linking to the page for that bot alone.
        rows = re.findall(r'bot_id=([0-9a-f-]+)">([^<]+)</a></th><td>(\d+)</td>', by_bot)
        assert rows == [(shop.bot_id, "Shop helper", "2"), (desk.bot_id, "Help desk", "1")]
        assert re.search(r"Help desk</a></th><td>1</td><td>2</td><td>0</td><td>1</td>", by_bot)
        alone = (await c.get(url, params={"days": "7", "bot_id": desk.bot_id})).text
        assert "<h2>By bot</h2>" not in alone
        assert _card(alone, "Conversations") == "1"


async def test_a_viewer_reads_but_cannot_answer_and_other_workspaces_stay_out(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "console-analytics-roles")
    w = await create_widget(client, owner)
    await asked(admin_conn, owner, w.bot_id, w.channel_id, "Do you ship to Canada?", fallback=True)
    viewer = await add_member(client, owner, "viewer")
    other = await register(client, "console-analytics-other")
    other_bot = (await create_widget(client, other)).bot_id
    url = f"/console/w/{owner.tenant_id}/analytics"
    async with await console_client(app, "10.210.0.2") as c:
        await sign_in(c, viewer)
        page = await c.get(f"{url}/gaps")
        assert page.status_code == 200
        assert "Do you ship to Canada?" in page.text
        assert "Answer it" not in page.text  # no form for a viewer
        gap = await admin_conn.fetchval(
            "SELECT id FROM messages WHERE content = 'Do you ship to Canada?' AND tenant_id = $1",
            uuid.UUID(owner.tenant_id),
        )
        forbidden = await post(
            c, url, f"{url}/gaps/{gap}/answer", {"bot_id": w.bot_id, "answer": "Yes."}
        )
        assert forbidden.status_code == 403
        # Another workspace's analytics: not found.
        assert (await c.get(f"/console/w/{other.tenant_id}/analytics")).status_code == 404
        assert (await c.get(f"/console/w/{other.tenant_id}/analytics.csv")).status_code == 404
        assert (await c.get(f"/console/w/{other.tenant_id}/analytics/gaps")).status_code == 404
        # Another workspace's bot named in this workspace's CSV: not found, not a 500.
        foreign = await c.get(f"{url}.csv", params={"bot_id": other_bot})
        assert foreign.status_code == 404
