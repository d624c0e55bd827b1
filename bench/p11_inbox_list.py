"""P11 — the staff conversation list and full-text search on 10 workspaces × 100,000
conversations / 1,000,000 messages, against a bare indexed primary-key page read.

A real Parley database (embedded PostgreSQL, migrations, app role under RLS). The rows are
made by set-based SQL as the owner: per workspace one bot, four channels (widget, Telegram,
webhook, API), 100k visitors and conversations spread over 90 days (UUIDv7 ids made from
their start times, statuses and tags in realistic proportions), 10 messages each whose words
are drawn from a Zipf-like vocabulary of 20,000 words (a pool of 200k such texts, each
message taking one). The FTS indexes are built after the load (as a restore would). Every
measured call goes through the product's code: a tenant session (the door, RLS on) and
`conversations.service.list_conversations`. The baseline is the same door and one ORM page
of `conversations` by primary key (`WHERE tenant_id = … AND id < … ORDER BY id DESC LIMIT
50`), the cheapest page a list can read.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select

from bench.kb import BenchDb, bench_database
from bench.report import Row, Section, pct
from parley.conversations import service
from parley.conversations.repository import ConversationFilters
from parley.kit.db import TenantId, tenant_session
from parley.kit.ids import id_floor
from parley.kit.pagination import encode_cursor
from parley.models import Conversation

TENANTS = 10
# Conversations per workspace; PARLEY_BENCH_P11_CONVERSATIONS lowers it on a busy machine.
CONVERSATIONS = 100_000
MESSAGES_PER = 10
VOCAB = 20_000
PAGE = 50

_UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM {ts}) * 1000)::bigint) FROM 3) "
    "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)


POOL = 200_000  # distinct message texts; each message takes one (see `_POOL_SQL`)

# The texts are drawn once per run: 200k messages of 8–13 words from the Zipf-like vocabulary,
# with their tsvector. A workspace's 1M messages each take one text by a fixed spread of their
# (conversation, position), so word frequencies are those of the draw, and the load costs one
# join per workspace instead of a hundred million random() calls.
_POOL_SQL = f"""
CREATE TEMP TABLE bench_pool AS
SELECT i, content, to_tsvector('simple'::regconfig, content) AS doc
FROM (SELECT i, (SELECT string_agg('w' || floor(pow(random(), 3) * {VOCAB})::int, ' ')
                 FROM generate_series(1, 8 + i % 6) g WHERE i >= 0) AS content
      FROM generate_series(0, {POOL - 1}) i) s;
CREATE UNIQUE INDEX ON bench_pool (i);
ANALYZE bench_pool;
"""


def _load_sql(tenant: uuid.UUID, bot: uuid.UUID, conversations: int) -> str:
    """One workspace's rows (ids and counts are ours, inlined as literals). Run with
    `session_replication_role = replica` (no triggers, no FK checks, as a restore loads), so
    the searchable copy is written here with the document `parley_search_doc` makes."""
    t, b = f"'{tenant}'::uuid", f"'{bot}'::uuid"
    lexeme = f"('t' || replace({t}::text, '-', ''))::tsvector"
    msg_id = _UUID7.format(ts="c.ts + make_interval(secs => k * 20)")
    return f"""
INSERT INTO bots (tenant_id, id, name) VALUES ({t}, {b}, 'Bench bot');
INSERT INTO bot_versions (tenant_id, id, bot_id, number, status, config)
VALUES ({t}, gen_random_uuid(), {b}, 1, 'published', '{{}}');
INSERT INTO channels (tenant_id, id, type, bot_id, name)
SELECT {t}, gen_random_uuid(), x, {b}, x FROM unnest(ARRAY['widget','telegram','webhook','api']) x;
CREATE TEMP TABLE bench_conv AS
SELECT n, {_UUID7.format(ts="ts")} AS id, gen_random_uuid() AS visitor_id, ts,
       (SELECT array_agg(id ORDER BY id) FROM channels WHERE tenant_id = {t}) AS chans
FROM (SELECT n, now() - interval '90 days' * random() AS ts
      FROM generate_series(1, {conversations}) n) s;
INSERT INTO visitors (tenant_id, id, channel_id, token_hash, created_at, last_seen_at)
SELECT {t}, v.visitor_id, v.chans[1 + v.n % 4], md5({t}::text || v.n::text), v.ts, v.ts
FROM bench_conv v;
INSERT INTO conversations (tenant_id, id, bot_id, channel_id, visitor_id, status, created_at,
                           last_message_at, tags, handoff_status, fallback_count, last_feedback)
SELECT {t}, c.id, {b}, c.chans[1 + c.n % 4], c.visitor_id,
       CASE WHEN c.n % 10 < 7 THEN 'closed' ELSE 'open' END, c.ts, c.ts + interval '5 minutes',
       CASE WHEN c.n % 50 = 0 THEN ARRAY['vip'] WHEN c.n % 7 = 0 THEN ARRAY['billing']
            ELSE '{{}}'::text[] END,
       CASE WHEN c.n % 10 < 7 THEN 'resolved' WHEN c.n % 10 = 7 THEN 'waiting'
            WHEN c.n % 10 = 8 THEN 'assigned' ELSE 'bot' END,
       CASE WHEN c.n % 5 = 0 THEN 1 ELSE 0 END,
       CASE WHEN c.n % 40 = 0 THEN 'down' WHEN c.n % 9 = 0 THEN 'up' END
FROM bench_conv c ORDER BY c.id;
CREATE TEMP TABLE bench_msg AS
SELECT {msg_id} AS id, c.id AS conversation_id, k, c.ts,
       ((c.n::bigint * {MESSAGES_PER} + k) * 7919) % {POOL} AS pool_i
FROM bench_conv c CROSS JOIN generate_series(0, {MESSAGES_PER - 1}) k;
INSERT INTO messages (tenant_id, id, conversation_id, role, content, created_at)
SELECT {t}, m.id, m.conversation_id,
       CASE WHEN m.k % 2 = 0 THEN 'user' ELSE 'assistant' END, p.content,
       m.ts + make_interval(secs => m.k * 20)
FROM bench_msg m JOIN bench_pool p ON p.i = m.pool_i ORDER BY m.id;
INSERT INTO conversation_search (tenant_id, conversation_id, part, bytes, doc)
SELECT {t}, m.conversation_id, 0, sum(octet_length(p.content)),
       to_tsvector('simple'::regconfig, string_agg(p.content, E'\n' ORDER BY m.id)) || {lexeme}
FROM bench_msg m JOIN bench_pool p ON p.i = m.pool_i GROUP BY m.conversation_id;
INSERT INTO conversation_tags (tenant_id, tag, conversation_id)
SELECT {t}, tag, c.id FROM conversations c, unnest(c.tags) tag WHERE c.tenant_id = {t};
DROP TABLE bench_msg;
DROP TABLE bench_conv;
"""


# Built after the load, as a restore would.
_SEARCH_INDEXES = (
    "CREATE INDEX ix_conversation_search_doc ON conversation_search USING gin (doc)",
)


async def _load(bench: BenchDb, tenants: int, conversations: int) -> list[TenantId]:
    ids = []
    conn = await asyncpg.connect(bench.admin_dsn)
    try:
        await conn.execute("DROP INDEX ix_conversation_search_doc")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(_POOL_SQL)
        for i in range(tenants):
            tid = await bench.tenant(f"inbox-{i}")
            ids.append(tid)
            started = time.perf_counter()
            await conn.execute(_load_sql(tid, uuid.uuid4(), conversations))
            took = time.perf_counter() - started
            print(f"   p11: workspace {i + 1}/{tenants} loaded in {took:.0f} s", flush=True)
        await conn.execute("SET session_replication_role = origin")
        for statement in _SEARCH_INDEXES:
            await conn.execute(statement)
        print("   p11: FTS indexes built", flush=True)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return ids


async def _time(calls: int, one: Callable[[int], Awaitable[Any]]) -> list[float]:
    started = time.perf_counter()
    for i in range(5):  # warm the plan and connection caches
        await one(i)
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        await one(i)
        out.append((time.perf_counter() - t0) * 1000)
    print(f"   p11: phase done in {time.perf_counter() - started:.1f} s", flush=True)
    return out


async def _measure(quick: bool) -> tuple[dict[str, list[float]], dict[str, Any]]:
    full = int(os.environ.get("PARLEY_BENCH_P11_CONVERSATIONS", CONVERSATIONS))
    tenants, conversations = (2, 10_000) if quick else (TENANTS, full)
    calls = 60 if quick else 300
    info: dict[str, Any] = {"tenants": tenants, "conversations": conversations}
    async with bench_database(pool_size=4) as bench:
        started = time.perf_counter()
        ids = await _load(bench, tenants, conversations)
        info["load_s"] = time.perf_counter() - started
        db = bench.db
        rng = random.Random(11)
        now = datetime.now(UTC)

        def cursor() -> tuple[TenantId, uuid.UUID]:
            return rng.choice(ids), id_floor(now - timedelta(days=rng.uniform(0, 80)))

        async def bare(_: int) -> None:
            tid, after = cursor()
            async with tenant_session(db, tid) as session:
                rows = await session.execute(
                    select(Conversation)
                    .where(Conversation.tenant_id == tid, Conversation.id < after)
                    .order_by(Conversation.id.desc())
                    .limit(PAGE + 1)
                )
                assert len(rows.scalars().all()) == PAGE + 1

        def listing(**filters: Any) -> Callable[[int], Awaitable[None]]:
            async def one(_: int) -> None:
                tid, after = cursor()
                async with tenant_session(db, tid) as session:
                    await service.list_conversations(
                        session,
                        tid,
                        ConversationFilters(**filters),
                        encode_cursor([str(after)]),
                        PAGE,
                    )

            return one

        # Search words by frequency: w<rank> with rank r drawn as floor(u^3 · VOCAB), so word
        # w<r> appears in about (1 - ((r)/V)^(1/3)) … — we report the measured match counts.
        words = {
            "rare (w15000)": "w15000",
            "medium (w3000)": "w3000",
            "common (w100)": "w100",
            "two words": "w500 w900",
        }
        async with tenant_session(db, ids[0]) as session:
            for label, q in words.items():
                page = await service.list_conversations(
                    session, ids[0], ConversationFilters(q=q), None, 200
                )
                info[f"hits:{label}"] = len(page.items)
        timings: dict[str, list[float]] = {"bare": await _time(calls, bare)}
        timings["list, no filter"] = await _time(calls, listing())
        timings["list, status=waiting"] = await _time(calls, listing(handoff_status="waiting"))
        timings["list, tag=vip"] = await _time(calls, listing(tag="vip"))
        timings["list, unanswered"] = await _time(calls, listing(unanswered=True))
        timings["list, channel=telegram"] = await _time(calls, listing(channel_type="telegram"))
        since = now - timedelta(days=30)
        timings["list, last 30 days"] = await _time(calls, listing(since=since))
        for label, q in words.items():

            def search(_: int, q: str = q) -> Awaitable[None]:
                tid = rng.choice(ids)

                async def run() -> None:
                    async with tenant_session(db, tid) as session:
                        await service.list_conversations(
                            session, tid, ConversationFilters(q=q), None, PAGE
                        )

                return run()

            timings[f"search, {label}"] = await _time(calls, search)
        timings["bare (again)"] = await _time(calls, bare)
        info["plans"] = await _plans(bench, ids[0], words)
    return timings, info


async def _plans(bench: BenchDb, tenant: TenantId, words: dict[str, str]) -> dict[str, str]:
    """For each word's first page: the path the search function takes (the planner's density
    estimate for the words, as the function computes it), the function's own time, and its ids
    checked against the brute-force answer (every matching document, newest first): the
    evidence for decision 0039."""
    out = {}
    conn = await asyncpg.connect(bench.admin_dsn)
    try:
        await conn.execute("SELECT set_config('app.tenant_id', $1, false)", str(tenant))
        total = await conn.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = 'conversation_search'::regclass"
        )
        for label, q in words.items():
            brute = await conn.fetch(
                "SELECT DISTINCT conversation_id FROM conversation_search WHERE tenant_id = $1"
                " AND doc @@ websearch_to_tsquery('simple', $2)"
                " ORDER BY conversation_id DESC LIMIT $3",
                tenant,
                q,
                PAGE + 10,
            )
            got = await conn.fetch("SELECT parley_inbox_search_page($1, NULL, $2)", q, PAGE + 10)
            if [r[0] for r in got] != [r[0] for r in brute]:
                raise AssertionError(f"search page for {label} differs from the brute force")
            whole = await conn.fetch(
                "EXPLAIN (ANALYZE, SUMMARY ON) SELECT parley_inbox_search_page($1, NULL, $2)",
                q,
                PAGE + 10,
            )
            took = next(str(r[0]) for r in whole if str(r[0]).startswith("Execution Time"))
            plan = json.loads(
                await conn.fetchval(
                    "EXPLAIN (FORMAT JSON) SELECT 1 FROM conversation_search "
                    "WHERE doc @@ websearch_to_tsquery('simple', $1)",
                    q,
                )
            )
            density = float(plan[0]["Plan"]["Plan Rows"]) / max(float(total), 1.0)
            path = "newest documents in order" if density >= 0.01 else "GIN index"
            out[label] = f"estimated density {density:.2%} → {path}; function {took.split(': ')[1]}"
    finally:
        await conn.close()
    return out


def run(quick: bool = False) -> Section:
    timings, info = asyncio.run(_measure(quick))
    base = pct(timings["bare"] + timings["bare (again)"], 95)
    rows = [Row("bare PK page read (baseline), p95", f"{base:.2f} ms", "", "", "", None)]
    for label, values in timings.items():
        if label.startswith("bare"):
            continue
        p95 = pct(values, 95)
        ratio = p95 / base if base else float("inf")
        rows.append(
            Row(
                f"{label}, p95",
                f"{p95:.2f} ms",
                f"{base:.2f} ms",
                f"{ratio:.2f}×",
                "≤ 3× and ≤ 50 ms",
                ratio <= 3 and p95 <= 50,
            )
        )
    notes = [
        f"{info['tenants']} workspaces × {info['conversations']:,} conversations × "
        f"{MESSAGES_PER} messages, loaded in {info['load_s']:.0f} s (set-based SQL; FTS index "
        "built after the load).",
        f"Load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "Matches in one workspace (first page of up to 200): "
        + ", ".join(f"{k[5:]} → {v}" for k, v in info.items() if k.startswith("hits:")),
        "Search function per word, first page (as the owner; ids equal to the brute-force "
        "answer): " + " — ".join(f"{k}: {v}" for k, v in info["plans"].items()),
    ]
    return Section(
        "P11",
        "Staff conversation list and full-text search",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip() if __doc__ else "",
        ".venv/bin/python -m bench p11"
        + (
            f" (PARLEY_BENCH_P11_CONVERSATIONS={info['conversations']})"
            if info["conversations"] != CONVERSATIONS and not quick
            else ""
        ),
        rows,
        notes,
    )
