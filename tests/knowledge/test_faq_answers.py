"""An FAQ source answered by the offline provider through the widget, end to end: the visitor
gets the pair's answer (with its "Yes."), cited, never the question they just asked, and a
question the FAQ does not cover gets the bot's fallback."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import create_widget, ingest_now, register, widget_session

FALLBACK = "Nothing on that in our help centre yet."


async def ask(client: httpx.AsyncClient, key: str, question: str) -> dict[str, Any]:
    s = await widget_session(client, key)
    resp = await client.post("/v1/widget/messages", json={"content": question}, headers=s.headers)
    assert resp.status_code == 201, resp.text
    reply: dict[str, Any] = resp.json()["reply"]
    return reply


async def test_a_visitor_gets_the_faq_answer_not_the_question(
    app: Any, client: httpx.AsyncClient
) -> None:
    owner = await register(client, "faq-answers")
    widget = await create_widget(client, owner, bot={"fallback_text": FALLBACK})
    source = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={
            "type": "faq",
            "title": "Help centre",
            "pairs": [
                {
                    "question": "Can I return an item?",
                    "answer": "Yes. Items can be returned within 30 days for a full refund.",
                },
                {"question": "Do you ship abroad?", "answer": "No, only within the country."},
            ],
        },
        headers=owner.headers,
    )
    assert source.status_code == 202, source.text
    await ingest_now(app, owner.tenant_id, source.json()["job"]["id"])

    returns = await ask(client, widget.widget_key, "Can I return an item?")
    assert returns["content"] == (
        "Yes. Items can be returned within 30 days for a full refund. [1]"
    )
    assert [c["title"] for c in returns["citations"]] == ["Help centre"]
    shipping = await ask(client, widget.widget_key, "Do you ship abroad?")
    assert shipping["content"] == "No, only within the country. [1]"
    off_topic = await ask(client, widget.widget_key, "What is the capital of Australia?")
    assert off_topic["content"] == FALLBACK
