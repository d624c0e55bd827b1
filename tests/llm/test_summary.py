"""History beyond the budget is condensed into a stored rolling summary, not cut."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from parley.llm.summary import condense, extend, split_history
from tests.conftest import DatabaseUnderTest, create_widget, make_settings, register, widget_session


def test_split_and_condense() -> None:
    turns = [("user", "a" * 50), ("assistant", "b" * 50), ("user", "c" * 50)]
    dropped, kept = split_history(turns, 120)
    assert dropped == turns[:1]
    assert kept == turns[1:]
    assert (
        condense("user", "Where is my order? It was due Monday.") == "- Visitor: Where is my order?"
    )
    long = extend(None, [("user", f"Question number {i}.") for i in range(500)])
    assert len(long) <= 2000
    assert long.endswith("Question number 499.")


@pytest.fixture
async def small_budget_client(
    test_db: DatabaseUnderTest, data_dir: Any, fake_openai: Any
) -> AsyncIterator[httpx.AsyncClient]:
    from parley.app import create_app

    settings = make_settings(
        data_dir,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
        parley_history_budget_chars=300,
        redis_url=None,
    )
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.30", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_old_turns_move_into_a_stored_summary(
    small_budget_client: httpx.AsyncClient, fake_openai: Any, admin_conn: asyncpg.Connection
) -> None:
    c = small_budget_client
    owner = await register(c, "summary")
    w = await create_widget(c, owner, bot={"provider": "openai", "model": "fake-echo"})
    s = await widget_session(c, w.widget_key)
    run = uuid.uuid4().hex[:6]
    uptos = []
    for i in range(8):
        text = f"Topic {run}-{i} is what I want to discuss. " + "More detail here. " * 4
        r = await c.post("/v1/widget/messages", json={"content": text}, headers=s.headers)
        assert r.status_code == 201
        row = await admin_conn.fetchrow(
            "SELECT summary, summary_upto FROM conversations WHERE id = $1",
            uuid.UUID(s.conversation_id),
        )
        uptos.append(row["summary_upto"])
    summary = row["summary"]
    assert f"- Visitor: Topic {run}-0 is what I want to discuss." in summary
    assert uptos[-1] is not None
    known = [u for u in uptos if u is not None]
    assert known == sorted(known)  # it only moves forward: each message is condensed once
    (last_call,) = fake_openai.calls_for(f"Topic {run}-7")[-1:]
    system = last_call["messages"][0]["content"]
    assert f"Topic {run}-0" in system  # in the summary block
    assert "<conversation_summary>" in system
    verbatim = " ".join(m["content"] for m in last_call["messages"][1:])
    assert f"Topic {run}-0" not in verbatim  # no longer sent verbatim
    assert f"Topic {run}-7" in verbatim
    total = sum(len(m["content"]) for m in last_call["messages"][1:])
    assert total <= 300 + 200  # the budget plus the current message


def test_at_most_forty_turns_stay_verbatim() -> None:
    turns = [("user", "hi")] * 100
    dropped, kept = split_history(turns, 10_000)
    assert len(kept) == 40
    assert len(dropped) == 60
