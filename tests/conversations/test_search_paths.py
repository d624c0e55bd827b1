"""The staff search's two paths and the tag table agree with the brute-force answer (decision 0039).

`parley_inbox_search_page` reads the newest documents in order for words the planner's
statistics call common, and the GIN index for the others; a common word that is rare in this
workspace falls back to the index below what it read; a long conversation's document is split
into parts that must come back as one id. Each page is checked against the answer computed here
from the generated messages, paging with the cursor until the end.

Everything runs in one owner transaction that is rolled back (the generated rows, the plan-limit
triggers switched off for the load, and the statistics ANALYZE gathers in it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
import httpx

from parley.kit.ids import new_id
from tests.conftest import create_widget, register, widget_session


async def _conversation_row(admin: asyncpg.Connection, conversation: str) -> asyncpg.Record:
    row = await admin.fetchrow(
        "SELECT tenant_id, bot_id, channel_id, visitor_id FROM conversations WHERE id = $1",
        uuid.UUID(conversation),
    )
    assert row is not None
    return row


async def _load(
    admin: asyncpg.Connection, base: asyncpg.Record, texts: list[list[str]]
) -> list[uuid.UUID]:
    """One conversation per entry (oldest first), one message per text; ids in time order."""
    ids = sorted(new_id() for _ in texts)
    await admin.executemany(
        "INSERT INTO conversations (tenant_id, id, bot_id, channel_id, visitor_id) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(base[0], cid, base[1], base[2], base[3]) for cid in ids],
    )
    await admin.executemany(
        "INSERT INTO messages (tenant_id, id, conversation_id, role, content) "
        "VALUES ($1, $2, $3, 'user', $4)",
        [
            (base[0], new_id(), cid, text)
            for cid, messages in zip(ids, texts, strict=True)
            for text in messages
        ],
    )
    return ids


def _brute(ids: list[uuid.UUID], texts: list[list[str]], words: Iterable[str]) -> list[uuid.UUID]:
    wanted = set(words)
    hits = [
        cid
        for cid, messages in zip(ids, texts, strict=True)
        if wanted <= {w for text in messages for w in text.lower().split()}
    ]
    return sorted(hits, reverse=True)


async def _pages(admin: asyncpg.Connection, q: str, size: int) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    before: uuid.UUID | None = None
    while True:
        page = [
            r[0]
            for r in await admin.fetch(
                "SELECT parley_inbox_search_page($1, $2, $3)", q, before, size
            )
        ]
        out += page
        if len(page) < size:
            return out
        before = page[-1]


async def _density(admin: asyncpg.Connection, words: str) -> float:
    plan: Any = await admin.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM conversation_search "
        "WHERE doc @@ websearch_to_tsquery('simple', $1)",
        words,
    )
    rows = json.loads(plan)[0]["Plan"]["Plan Rows"]
    total = await admin.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = 'conversation_search'::regclass"
    )
    return float(rows) / max(float(total), 1.0)


async def test_both_search_paths_match_the_brute_force(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    a = await register(client, "searchpaths-a")
    b = await register(client, "searchpaths-b")
    base_a = await _conversation_row(
        admin_conn,
        (await widget_session(client, (await create_widget(client, a)).widget_key)).conversation_id,
    )
    base_b = await _conversation_row(
        admin_conn,
        (await widget_session(client, (await create_widget(client, b)).widget_key)).conversation_id,
    )
    filler = "hello there thanks for the help with my order"
    # Workspace A: 700 conversations. "beta" in every fourth; "alpha" only in the three
    # oldest; "zeta" in two; "delta" and "epsilon" in different messages of every tenth; every
    # fiftieth is long (about 20 KB over 12 messages, so several parts) and says "gamma" in its
    # first and last message.
    texts_a: list[list[str]] = []
    for i in range(700):
        messages = [f"{filler} number{i}"]
        if i % 4 == 0:
            messages.append("where is beta")
        if i < 3:
            messages.append("alpha please")
        if i in (100, 600):
            messages.append("zeta question")
        if i % 10 == 0:
            messages += ["delta first", "then epsilon"]
        if i % 50 == 25:
            messages = ["gamma start"] + [("padding" + str(k) + " ") * 200 for k in range(10)]
            messages.append("gamma end")
        texts_a.append(messages)
    # Workspace B: 400 conversations that all say "alpha", so the statistics call it common.
    texts_b = [[f"{filler} alpha {i}"] for i in range(400)]
    transaction = admin_conn.transaction()
    await transaction.start()
    try:
        await admin_conn.execute(
            "ALTER TABLE conversations DISABLE TRIGGER usage_admit_conversation"
        )
        await admin_conn.execute("ALTER TABLE messages DISABLE TRIGGER usage_admit_message")
        ids_a = await _load(admin_conn, base_a, texts_a)
        await _load(admin_conn, base_b, texts_b)
        await admin_conn.execute("ANALYZE conversation_search")
        parts = await admin_conn.fetchval(
            "SELECT max(part) FROM conversation_search WHERE conversation_id = $1", ids_a[25]
        )
        assert parts >= 2  # the long conversation spans several parts
        # The statistics put the words on the two paths this test means to cover.
        assert await _density(admin_conn, "beta") >= 0.01
        assert await _density(admin_conn, "alpha") >= 0.01
        assert await _density(admin_conn, "zeta") < 0.01
        await admin_conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(base_a[0]))
        for q, words, size in [
            ("beta", ["beta"], 7),  # common here: read in order
            ("alpha", ["alpha"], 7),  # common elsewhere, three old ones here: the fallback
            ("zeta", ["zeta"], 1),  # rare: the index
            ("gamma", ["gamma"], 3),  # several parts, one id each
            ("delta epsilon", ["delta", "epsilon"], 9),  # words of different messages
            ("Beta", ["beta"], 50),
        ]:
            expected = _brute(ids_a, texts_a, words)
            assert expected, q
            assert await _pages(admin_conn, q, size) == expected, q
        assert await _pages(admin_conn, "nowhere", 5) == []
        # B's conversations never show in A's search.
        assert len(await _pages(admin_conn, "alpha", 500)) == 3

        # Tags: the table follows the array on insert, change and removal.
        tag_rows = "SELECT tag FROM conversation_tags WHERE conversation_id = $1 ORDER BY tag"
        await admin_conn.execute(
            "UPDATE conversations SET tags = ARRAY['vip', 'billing', 'vip'] WHERE id = $1",
            ids_a[5],
        )
        assert [r[0] for r in await admin_conn.fetch(tag_rows, ids_a[5])] == ["billing", "vip"]
        await admin_conn.execute(
            "UPDATE conversations SET tags = ARRAY['billing'] WHERE id = $1", ids_a[5]
        )
        assert [r[0] for r in await admin_conn.fetch(tag_rows, ids_a[5])] == ["billing"]
        await admin_conn.execute("UPDATE conversations SET tags = '{}' WHERE id = $1", ids_a[5])
        assert await admin_conn.fetch(tag_rows, ids_a[5]) == []
        await admin_conn.execute("DELETE FROM conversations WHERE id = ANY($1)", ids_a[:30])
        assert not await admin_conn.fetchval(
            "SELECT count(*) FROM conversation_search WHERE conversation_id = ANY($1)", ids_a[:30]
        )
    finally:
        await transaction.rollback()
