"""Queries of the analytics tables (roll-ups, dirty-day marks, answered gaps)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId

GroupBy = Literal["day", "bot", "channel"]

SUMS = (
    "conversations",
    "messages",
    "user_messages",
    "bot_messages",
    "operator_messages",
    "turns",
    "answered",
    "fallback",
    "unanswered",
    "handoffs",
    "resolved_by_bot",
    "resolved_by_person",
    "feedback_up",
    "feedback_down",
    "first_bot_reply_ms_sum",
    "first_bot_replies",
    "first_human_reply_ms_sum",
    "first_human_replies",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
)

_KEY = {"day": "day", "bot": "bot_id", "channel": "channel_id"}


async def lock_rollup(session: AsyncSession, tenant_id: TenantId) -> None:
    """One roll-up of a workspace at a time (two would rewrite the same days)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('analytics:' || :t, 0))"),
        {"t": str(tenant_id)},
    )


async def take_dirty(session: AsyncSession, tenant_id: TenantId, limit: int) -> list[date]:
    """Delete every mark of up to `limit` marked days and return the days. Marks committed
    after this statement stay for the next run; the ones taken were committed before it, so
    the recompute that follows in this transaction (a later statement, a later snapshot)
    sees their rows."""
    rows = await session.execute(
        text(
            "DELETE FROM analytics_dirty WHERE tenant_id = :t AND day IN ("
            " SELECT DISTINCT day FROM analytics_dirty WHERE tenant_id = :t"
            " ORDER BY day LIMIT :n) RETURNING day"
        ),
        {"t": tenant_id, "n": limit},
    )
    return sorted({row[0] for row in rows})


async def recompute(session: AsyncSession, tenant_id: TenantId, days: Sequence[date]) -> int:
    result = await session.scalar(
        text("SELECT parley_analytics_recompute(:t, :days)"),
        {"t": tenant_id, "days": list(days)},
    )
    return int(result or 0)


async def pending(session: AsyncSession, tenant_id: TenantId) -> tuple[int, Any]:
    """Marks waiting for a roll-up, and when the oldest was made (an index-only scan of the
    workspace's marks on `ix_analytics_dirty_day`: it grows with the marks not yet rolled
    up, never with history)."""
    row = (
        await session.execute(
            text(
                "SELECT count(DISTINCT day), min(marked_at) FROM analytics_dirty "
                "WHERE tenant_id = :t"
            ),
            {"t": tenant_id},
        )
    ).one()
    return int(row[0]), row[1]


def _filters(bot_id: uuid.UUID | None, channel_id: uuid.UUID | None) -> str:
    out = ""
    if bot_id is not None:
        out += " AND bot_id = :bot"
    if channel_id is not None:
        out += " AND channel_id = :channel"
    return out


async def report(
    session: AsyncSession,
    tenant_id: TenantId,
    start: date,
    end: date,
    *,
    bot_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
    group_by: GroupBy,
) -> list[dict[str, Any]]:
    """The metrics read in one statement: per key (`key`, `total` false) and for the whole
    range (`total` true, last) the sums of the daily roll-ups, the p50 and p95 time to first
    token (`ttft_p50`, `ttft_p95`: the upper bound of the histogram bucket where the running
    count reaches the quantile's rank, the buckets of the range merged in the database), and
    on every row the workspace's pending marks (`pending_days`, `pending_since`). Both
    roll-up tables are read by their primary key's (tenant_id, day) prefix; the range's rows
    number days × bots × channels (× latency buckets filled, at most ~100). There is always
    at least the total row (a grouping set `()` yields one row on no input)."""
    # Bucket counts as float8: the running sums and ranks are then float arithmetic, not
    # numeric (sum of bigint), exact below 2^53 turns.
    key = _KEY[group_by]
    where = f"WHERE tenant_id = :t AND day BETWEEN :start AND :end{_filters(bot_id, channel_id)}"
    sums = ", ".join(
        f"sum({c}) AS {c}" if c == "cost_usd" else f"sum({c})::bigint AS {c}" for c in SUMS
    )
    sql = (
        f"WITH s AS (SELECT {key} AS key, GROUPING({key}) = 1 AS total, {sums}"  # noqa: S608
        f" FROM analytics_daily {where} GROUP BY GROUPING SETS (({key}), ())),"
        f" h AS (SELECT {key} AS key, GROUPING({key}) = 1 AS total, le_ms, sum(turns)::float8 AS n"
        f" FROM analytics_daily_latency {where}"
        f" GROUP BY GROUPING SETS (({key}, le_ms), (le_ms))),"
        " c AS (SELECT key, total, le_ms,"
        "  sum(n) OVER (PARTITION BY total, key ORDER BY le_ms) AS cum,"
        "  sum(n) OVER (PARTITION BY total, key) AS n FROM h),"
        " p AS (SELECT coalesce(key::text, '') AS k,"
        "  min(le_ms) FILTER (WHERE cum >= ceil(0.5 * n)) AS ttft_p50,"
        "  min(le_ms) FILTER (WHERE cum >= ceil(0.95 * n)) AS ttft_p95"
        "  FROM c GROUP BY total, key),"
        " d AS (SELECT count(DISTINCT day) AS pending_days, min(marked_at) AS pending_since"
        "  FROM analytics_dirty WHERE tenant_id = :t)"
        " SELECT s.*, p.ttft_p50, p.ttft_p95, d.* FROM s"
        " LEFT JOIN p ON p.k = coalesce(s.key::text, '')"
        " CROSS JOIN d ORDER BY s.total, s.key"
    )
    rows = await session.execute(
        text(sql),
        {"t": tenant_id, "start": start, "end": end, "bot": bot_id, "channel": channel_id},
    )
    return [dict(r) for r in rows.mappings()]


async def models(
    session: AsyncSession,
    tenant_id: TenantId,
    start: date,
    end: date,
    *,
    bot_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT day, provider, model, sum(turns) AS turns, "  # noqa: S608 (fixed names)
            "sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens, "
            "sum(cost_usd) AS cost_usd FROM analytics_daily_models "
            "WHERE tenant_id = :t AND day BETWEEN :start AND :end"
            f"{_filters(bot_id, channel_id)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ),
        {"t": tenant_id, "start": start, "end": end, "bot": bot_id, "channel": channel_id},
    )
    return [dict(r) for r in rows.mappings()]


# --- knowledge gaps ---------------------------------------------------------------------

_FAILED = """
SELECT m.id, m.content, m.created_at,
       coalesce(t.fallback, false) AS fallback,
       coalesce(f.rating = 'down', false) AS disliked,
       coalesce(rl.low, false) AS low_relevance,
       (c.handoff_requested_at IS NOT NULL AND m.created_at <= c.handoff_requested_at
        AND NOT EXISTS (
            SELECT 1 FROM messages n
            WHERE n.tenant_id = m.tenant_id AND n.conversation_id = m.conversation_id
              AND n.role = 'user' AND n.created_at > m.created_at
              AND n.created_at <= c.handoff_requested_at)) AS handed_over
FROM messages m
JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
LEFT JOIN LATERAL (
    SELECT a.id FROM messages a
    WHERE a.tenant_id = m.tenant_id AND a.conversation_id = m.conversation_id
      AND a.role = 'assistant' AND (a.created_at, a.id) > (m.created_at, m.id)
    ORDER BY a.created_at, a.id LIMIT 1
) reply ON true
LEFT JOIN LATERAL (
    SELECT lt.fallback FROM llm_turns lt
    WHERE lt.tenant_id = m.tenant_id AND lt.conversation_id = m.conversation_id
      AND lt.reply_message_id = reply.id
    LIMIT 1
) t ON true
LEFT JOIN message_feedback f ON f.tenant_id = m.tenant_id AND f.message_id = reply.id
LEFT JOIN LATERAL (
    SELECT coalesce(jsonb_array_length(l.detail -> 'selected'), 0) = 0 AS low
    FROM kb_retrieval_logs l WHERE l.tenant_id = m.tenant_id AND l.message_id = m.id
    ORDER BY l.id DESC LIMIT 1
) rl ON true
WHERE m.tenant_id = :t AND c.bot_id = :bot AND m.role = 'user' AND m.created_at >= :since
  AND NOT EXISTS (SELECT 1 FROM analytics_gap_questions g
                  WHERE g.tenant_id = m.tenant_id AND g.message_id = m.id)
"""


async def failed_questions(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID, since: Any, limit: int
) -> list[dict[str, Any]]:
    """The bot's visitors' questions it could not answer (fallback, nothing relevant found,
    a 👎 on the reply, handed to a person right after), not yet covered by an answered gap;
    the newest `limit`, returned oldest first."""
    rows = await session.execute(
        text(
            f"SELECT * FROM ({_FAILED}) q "  # noqa: S608 (no input in the text)
            "WHERE fallback OR disliked OR low_relevance OR handed_over "
            "ORDER BY created_at DESC, id DESC LIMIT :n"
        ),
        {"t": tenant_id, "bot": bot_id, "since": since, "n": limit},
    )
    return [dict(r) for r in reversed(rows.mappings().all())]


async def record_gap_answer(
    session: AsyncSession, tenant_id: TenantId, answer: Any, message_ids: Sequence[uuid.UUID]
) -> None:
    session.add(answer)
    await session.flush()
    await session.execute(
        text(
            "INSERT INTO analytics_gap_questions (tenant_id, message_id, answer_id) "
            "SELECT :t, unnest(CAST(:ids AS uuid[])), :a ON CONFLICT DO NOTHING"
        ),
        {"t": tenant_id, "ids": list(message_ids), "a": answer.id},
    )
