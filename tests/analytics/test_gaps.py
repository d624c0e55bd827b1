"""Knowledge gaps: failed questions grouped by meaning and ranked; answering one writes an FAQ
entry into the chosen source, re-indexes it, and closes the gap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from parley.kit.ids import new_id
from tests.conftest import (
    Account,
    add_member,
    assert_problem,
    create_widget,
    ingest_now,
    register,
)


async def asked(
    conn: asyncpg.Connection,
    owner: Account,
    bot_id: str,
    channel_id: str,
    question: str,
    *,
    fallback: bool = False,
    rating: str | None = None,
    handed_over: bool = False,
    ago: timedelta = timedelta(hours=1),
) -> uuid.UUID:
    """A conversation where a visitor asked `question` and the bot replied (a fallback or
    not), maybe rated, maybe handed to a person right after."""
    tenant = uuid.UUID(owner.tenant_id)
    at = datetime.now(UTC) - ago
    conv, visitor, user_msg, reply = (new_id() for _ in range(4))
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
        await conn.execute(
            "INSERT INTO visitors (tenant_id, id, channel_id, token_hash) VALUES ($1, $2, $3, $4)",
            tenant,
            visitor,
            uuid.UUID(channel_id),
            uuid.uuid4().hex,
        )
        await conn.execute(
            "INSERT INTO conversations (tenant_id, id, bot_id, channel_id, visitor_id, created_at, "
            "handoff_requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            tenant,
            conv,
            uuid.UUID(bot_id),
            uuid.UUID(channel_id),
            visitor,
            at,
            at + timedelta(seconds=30) if handed_over else None,
        )
        await conn.execute(
            "INSERT INTO messages (tenant_id, id, conversation_id, role, content, created_at) "
            "VALUES ($1, $2, $3, 'user', $4, $5), ($1, $6, $3, 'assistant', 'Sorry.', $7)",
            tenant,
            user_msg,
            conv,
            question,
            at,
            reply,
            at + timedelta(seconds=2),
        )
        await conn.execute(
            "INSERT INTO llm_turns (tenant_id, id, operation_id, conversation_id, provider, model, "
            "status, fallback, reply_message_id, created_at) "
            "VALUES ($1, $2, $3, $4, 'openai', 'm', 'succeeded', $5, $6, $7)",
            tenant,
            uuid.uuid4(),
            uuid.uuid4(),
            conv,
            fallback,
            reply,
            at,
        )
        if rating:
            await conn.execute(
                "INSERT INTO message_feedback (tenant_id, message_id, rating) VALUES ($1, $2, $3)",
                tenant,
                reply,
                rating,
            )
    return user_msg


async def _gaps(client: httpx.AsyncClient, owner: Account, bot_id: str) -> dict[str, Any]:
    resp = await client.get(
        f"/v1/tenants/{owner.tenant_id}/analytics/gaps",
        params={"bot_id": bot_id},
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_gaps_are_grouped_ranked_and_answered(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "gaps")
    w = await create_widget(client, owner)
    ask = (admin_conn, owner, w.bot_id, w.channel_id)
    await asked(*ask, "How do I get a refund for my order?", fallback=True, ago=timedelta(days=3))
    await asked(*ask, "Can I get a refund?", rating="down", ago=timedelta(days=2))
    await asked(*ask, "refund policy for damaged orders", handed_over=True)
    await asked(*ask, "Do you ship to Canada?", fallback=True)
    await asked(*ask, "Shipping to Canada possible?", fallback=True)
    await asked(*ask, "Where can I park my car?", fallback=True)
    # Answered well, no feedback, no handoff: not a gap.
    await asked(*ask, "What are your opening hours?")

    body = await _gaps(client, owner, w.bot_id)
    assert body["grouping"] == "lexical"  # the test settings run without embeddings
    assert body["questions"] == 6
    counts = [(g["count"], sorted(e["text"] for e in g["examples"])) for g in body["gaps"]]
    assert counts == [
        (
            3,
            sorted(
                [
                    "How do I get a refund for my order?",
                    "Can I get a refund?",
                    "refund policy for damaged orders",
                ]
            ),
        ),
        (2, sorted(["Do you ship to Canada?", "Shipping to Canada possible?"])),
        (1, ["Where can I park my car?"]),
    ]
    refund = body["gaps"][0]
    assert refund["reasons"] == {"fallback": 1, "negative_feedback": 1, "handed_over": 1}
    assert refund["last_seen"] > refund["first_seen"]
    assert refund["examples"][0]["text"] == "refund policy for damaged orders"  # newest first

    faq = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "faq", "title": "FAQ", "pairs": [{"question": "Hours?", "answer": "9-5"}]},
        headers=owner.headers,
    )
    await ingest_now(app, owner.tenant_id, faq.json()["job"]["id"])
    answer = await client.post(
        f"/v1/tenants/{owner.tenant_id}/analytics/gaps/{refund['id']}/answer",
        json={
            "bot_id": w.bot_id,
            "source_id": faq.json()["id"],
            "answer": "Refunds are paid back within 14 days of the return arriving.",
        },
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["questions"] == 3
    assert answer.json()["question"] == refund["label"]
    await ingest_now(app, owner.tenant_id, answer.json()["job_id"])
    found = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/search",
        json={"query": "refund paid back"},
        headers=owner.headers,
    )
    assert "14 days" in found.json()["items"][0]["text"]
    chunks = await client.get(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources/{faq.json()['id']}/chunks",
        headers=owner.headers,
    )
    assert "Hours?" in " ".join(c["text"] for c in chunks.json()["items"])  # the old entry kept

    # The gap is closed; the others stay; answering it again finds nothing.
    after = await _gaps(client, owner, w.bot_id)
    assert [g["count"] for g in after["gaps"]] == [2, 1]
    again = await client.post(
        f"/v1/tenants/{owner.tenant_id}/analytics/gaps/{refund['id']}/answer",
        json={"bot_id": w.bot_id, "source_id": faq.json()["id"], "answer": "x"},
        headers=owner.headers,
    )
    assert_problem(again, 404, "gap_not_found")
    # A new refund question opens the gap anew (with a new id).
    await asked(*ask, "refund for a cancelled order?", fallback=True)
    assert [g["count"] for g in (await _gaps(client, owner, w.bot_id))["gaps"]] == [2, 1, 1]


async def test_answering_needs_an_faq_source_the_right_role_and_the_own_workspace(
    app: Any, client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(client, "gaps-rules")
    w = await create_widget(client, owner)
    await asked(admin_conn, owner, w.bot_id, w.channel_id, "Do you sell gift cards?", fallback=True)
    gap = (await _gaps(client, owner, w.bot_id))["gaps"][0]
    text_source = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "About", "text": "We are a shop."},
        headers=owner.headers,
    )
    url = f"/v1/tenants/{owner.tenant_id}/analytics/gaps/{gap['id']}/answer"
    body = {"bot_id": w.bot_id, "source_id": text_source.json()["id"], "answer": "Yes."}
    assert_problem(await client.post(url, json=body, headers=owner.headers), 409, "source_not_faq")
    viewer = await add_member(client, owner, "viewer")
    assert_problem(await client.post(url, json=body, headers=viewer.headers), 403)
    # Still open: the refused requests changed nothing.
    assert (await _gaps(client, owner, w.bot_id))["gaps"][0]["id"] == gap["id"]

    other = await register(client, "gaps-other")
    b = await create_widget(client, other)
    b_faq = await client.post(
        f"/v1/tenants/{other.tenant_id}/knowledge/sources",
        json={"type": "faq", "title": "B", "pairs": [{"question": "q", "answer": "a"}]},
        headers=other.headers,
    )
    # Another workspace's source or bot: absent.
    assert_problem(
        await client.post(
            url,
            json={**body, "source_id": b_faq.json()["id"]},
            headers=owner.headers,
        ),
        404,
        "knowledge_source_not_found",
    )
    assert_problem(
        await client.get(
            f"/v1/tenants/{owner.tenant_id}/analytics/gaps",
            params={"bot_id": b.bot_id},
            headers=owner.headers,
        ),
        404,
        "bot_not_found",
    )
    # B sees none of A's questions.
    assert (await _gaps(client, other, b.bot_id))["gaps"] == []
