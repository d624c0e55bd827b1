"""Generated analytics data and the direct recount the roll-ups must equal (P14 and
tests/analytics). Set-based SQL run as the owner, with the workspace bound."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM {ts}) * 1000)::bigint) FROM 3) "
    "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)


def load_sql(
    tenant: uuid.UUID,
    conversations: int,
    *,
    days: int = 90,
    messages_per: int = 10,
    bot: uuid.UUID | None = None,
) -> str:
    """One workspace: a bot on two channels, `conversations` spread over `days`, each with
    `messages_per` messages (user and assistant in turn), a turn per assistant message (some
    fallback, some failed, two models), feedback on some replies, handoffs and resolutions."""
    t = f"'{tenant}'::uuid"
    b = f"'{bot or uuid.uuid4()}'::uuid"
    make_bot = (
        ""
        if bot
        else f"""
INSERT INTO bots (tenant_id, id, name) VALUES ({t}, {b}, 'Bench bot');
INSERT INTO bot_versions (tenant_id, id, bot_id, number, status, config)
VALUES ({t}, gen_random_uuid(), {b}, 1, 'published', '{{}}');
"""
    )
    return f"""
SELECT set_config('app.tenant_id', {t}::text, false);
{make_bot}
INSERT INTO channels (tenant_id, id, type, bot_id, name)
SELECT {t}, gen_random_uuid(), x, {b}, 'bench ' || x FROM unnest(ARRAY['api', 'webhook']) x;
CREATE TEMP TABLE bench_conv ON COMMIT DROP AS
SELECT n, {_UUID7.format(ts="ts")} AS id, gen_random_uuid() AS visitor_id, ts,
       (SELECT array_agg(id ORDER BY id) FROM channels
        WHERE tenant_id = {t} AND bot_id = {b} AND name LIKE 'bench %') AS chans
FROM (SELECT n, now() - interval '{days} days' * random() AS ts
      FROM generate_series(1, {conversations}) n) s;
INSERT INTO visitors (tenant_id, id, channel_id, token_hash, created_at, last_seen_at)
SELECT {t}, v.visitor_id, v.chans[1 + v.n % 2], md5({t}::text || v.visitor_id::text), v.ts, v.ts
FROM bench_conv v;
INSERT INTO conversations (tenant_id, id, bot_id, channel_id, visitor_id, status, created_at,
                           last_message_at, handoff_status, handoff_requested_at,
                           fallback_count, fallback_streak, last_feedback,
                           first_bot_reply_ms, first_human_reply_ms)
SELECT {t}, c.id, {b}, c.chans[1 + c.n % 2], c.visitor_id, 'open', c.ts,
       c.ts + interval '5 minutes',
       CASE WHEN c.n % 10 < 2 THEN 'resolved' WHEN c.n % 10 = 2 THEN 'waiting'
            WHEN c.n % 10 = 3 THEN 'assigned' ELSE 'bot' END,
       CASE WHEN c.n % 10 BETWEEN 1 AND 3 THEN c.ts + interval '2 minutes' END,
       c.n % 3, CASE WHEN c.n % 7 = 0 THEN 1 ELSE 0 END,
       CASE WHEN c.n % 40 = 0 THEN 'down' WHEN c.n % 9 = 0 THEN 'up' END,
       CASE WHEN c.n % 11 <> 0 THEN 500 + c.n % 3000 END,
       CASE WHEN c.n % 10 BETWEEN 1 AND 3 THEN 20000 + c.n % 90000 END
FROM bench_conv c;
CREATE TEMP TABLE bench_msg ON COMMIT DROP AS
SELECT {_UUID7.format(ts="c.ts + make_interval(secs => k * 20)")} AS id, c.id AS conversation_id,
       c.n, k, c.ts + make_interval(secs => k * 20) AS ts
FROM bench_conv c CROSS JOIN generate_series(0, {messages_per - 1}) k;
INSERT INTO messages (tenant_id, id, conversation_id, role, content, created_at)
SELECT {t}, m.id, m.conversation_id,
       CASE WHEN m.k % 2 = 0 THEN 'user' WHEN m.n % 10 = 3 AND m.k = {messages_per - 1}
            THEN 'operator' ELSE 'assistant' END,
       'question ' || m.n || ' ' || m.k, m.ts
FROM bench_msg m;
INSERT INTO llm_turns (tenant_id, id, operation_id, conversation_id, provider, model, status,
                       prompt_tokens, completion_tokens, cost_usd, latency_ms, ttft_ms, fallback,
                       reply_message_id, created_at, finished_at)
SELECT {t}, gen_random_uuid(), gen_random_uuid(), m.conversation_id, 'openai',
       CASE WHEN m.n % 2 = 0 THEN 'gpt-4o-mini' ELSE 'gpt-4o' END,
       CASE WHEN (m.n + m.k) % 23 = 0 THEN 'failed' ELSE 'succeeded' END,
       100 + (m.n + m.k) % 400, 20 + (m.n * m.k) % 200, ((m.n + m.k) % 1000) / 100000.0,
       800 + (m.n * 7 + m.k) % 4000, 50 + (m.n * 13 + m.k * 7) % 3000,
       (m.n + m.k) % 13 = 0, m.id, m.ts - interval '2 seconds', m.ts
FROM bench_msg m WHERE m.k % 2 = 1;
INSERT INTO message_feedback (tenant_id, message_id, rating, created_at, updated_at)
SELECT {t}, m.id, CASE WHEN (m.n + m.k) % 4 = 0 THEN 'down' ELSE 'up' END, m.ts, m.ts
FROM bench_msg m WHERE m.k % 2 = 1 AND (m.n + m.k) % 5 = 0;
"""


def late_sql(tenant: uuid.UUID, late: int) -> str:
    """Late and duplicate events on a loaded workspace: messages and turns dated in the past,
    feedback changed and delivered twice, handoffs of old conversations, marks repeated."""
    t = f"'{tenant}'::uuid"
    return f"""
SELECT set_config('app.tenant_id', {t}::text, false);
CREATE TEMP TABLE bench_late ON COMMIT DROP AS
SELECT c.id, c.created_at + interval '30 seconds' * g AS ts, g
FROM (SELECT id, created_at FROM conversations WHERE tenant_id = {t}
      ORDER BY md5(id::text) LIMIT {late}) c, generate_series(1, 2) g;
INSERT INTO messages (tenant_id, id, conversation_id, role, content, created_at)
SELECT {t}, gen_random_uuid(), l.id, CASE WHEN g = 1 THEN 'user' ELSE 'assistant' END,
       'late', l.ts FROM bench_late l;
INSERT INTO llm_turns (tenant_id, id, operation_id, conversation_id, provider, model, status,
                       prompt_tokens, completion_tokens, cost_usd, ttft_ms, fallback, created_at)
SELECT {t}, gen_random_uuid(), gen_random_uuid(), l.id, 'openai', 'gpt-late', 'succeeded',
       77, 11, 0.0003, 120, g = 2, l.ts FROM bench_late l;
UPDATE conversations SET handoff_requested_at = created_at + interval '1 minute',
       first_human_reply_ms = 4242
WHERE tenant_id = {t} AND id IN (SELECT id FROM bench_late WHERE g = 1)
  AND handoff_requested_at IS NULL;
UPDATE message_feedback SET rating = CASE WHEN rating = 'up' THEN 'down' ELSE 'up' END
WHERE tenant_id = {t} AND message_id IN (
    SELECT message_id FROM message_feedback WHERE tenant_id = {t}
    ORDER BY md5(message_id::text) LIMIT {late});
INSERT INTO message_feedback (tenant_id, message_id, rating, created_at, updated_at)
SELECT tenant_id, message_id, rating, created_at, now() FROM message_feedback
WHERE tenant_id = {t} ORDER BY md5(message_id::text) LIMIT {late}
ON CONFLICT (tenant_id, message_id) DO UPDATE SET rating = excluded.rating;
INSERT INTO analytics_dirty (tenant_id, day)
SELECT {t}, (ts AT TIME ZONE 'UTC')::date FROM bench_late;
"""


RECOUNT = """
WITH conv AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, bot_id, channel_id,
           count(*) AS conversations,
           sum((handoff_requested_at IS NOT NULL OR handoff_status IN ('waiting', 'assigned')
                OR first_human_reply_ms IS NOT NULL)::int) AS handoffs,
           sum((handoff_requested_at IS NULL AND handoff_status <> 'waiting'
                AND handoff_status <> 'assigned' AND first_human_reply_ms IS NULL
                AND first_bot_reply_ms IS NOT NULL AND fallback_streak = 0
                AND coalesce(last_feedback, '') <> 'down')::int) AS resolved_by_bot,
           sum((handoff_status = 'resolved' AND (handoff_requested_at IS NOT NULL
                OR first_human_reply_ms IS NOT NULL))::int) AS resolved_by_person,
           coalesce(sum(first_bot_reply_ms), 0) AS first_bot_reply_ms_sum,
           count(first_bot_reply_ms) AS first_bot_replies,
           coalesce(sum(first_human_reply_ms), 0) AS first_human_reply_ms_sum,
           count(first_human_reply_ms) AS first_human_replies
    FROM conversations WHERE tenant_id = $1 GROUP BY 1, 2, 3
), msg AS (
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day, c.bot_id, c.channel_id,
           count(*) AS messages, sum((m.role = 'user')::int) AS user_messages,
           sum((m.role = 'assistant')::int) AS bot_messages,
           sum((m.role = 'operator')::int) AS operator_messages,
           sum((f.rating = 'up')::int) AS feedback_up,
           sum((f.rating = 'down')::int) AS feedback_down
    FROM messages m JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
    LEFT JOIN message_feedback f ON f.tenant_id = m.tenant_id AND f.message_id = m.id
    WHERE m.tenant_id = $1 GROUP BY 1, 2, 3
), trn AS (
    SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, c.bot_id, c.channel_id,
           count(*) AS turns,
           sum((t.status = 'succeeded' AND NOT t.fallback)::int) AS answered,
           sum((t.status = 'succeeded' AND t.fallback)::int) AS fallback,
           sum((t.status = 'failed')::int) AS unanswered,
           sum(t.prompt_tokens) AS prompt_tokens, sum(t.completion_tokens) AS completion_tokens,
           sum(t.cost_usd) AS cost_usd
    FROM llm_turns t JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
    WHERE t.tenant_id = $1 GROUP BY 1, 2, 3
), keys AS (
    SELECT day, bot_id, channel_id FROM conv UNION SELECT day, bot_id, channel_id FROM msg
    UNION SELECT day, bot_id, channel_id FROM trn
)
SELECT k.day, k.bot_id, k.channel_id,
       coalesce(conv.conversations, 0), coalesce(msg.messages, 0),
       coalesce(msg.user_messages, 0), coalesce(msg.bot_messages, 0),
       coalesce(msg.operator_messages, 0), coalesce(trn.turns, 0), coalesce(trn.answered, 0),
       coalesce(trn.fallback, 0), coalesce(trn.unanswered, 0), coalesce(conv.handoffs, 0),
       coalesce(conv.resolved_by_bot, 0), coalesce(conv.resolved_by_person, 0),
       coalesce(msg.feedback_up, 0), coalesce(msg.feedback_down, 0),
       coalesce(conv.first_bot_reply_ms_sum, 0), coalesce(conv.first_bot_replies, 0),
       coalesce(conv.first_human_reply_ms_sum, 0), coalesce(conv.first_human_replies, 0),
       coalesce(trn.prompt_tokens, 0), coalesce(trn.completion_tokens, 0),
       coalesce(trn.cost_usd, 0)::numeric(16, 6)
FROM keys k
LEFT JOIN conv USING (day, bot_id, channel_id)
LEFT JOIN msg USING (day, bot_id, channel_id)
LEFT JOIN trn USING (day, bot_id, channel_id)
"""

ROLLED = """
SELECT day, bot_id, channel_id, conversations, messages, user_messages, bot_messages,
       operator_messages, turns, answered, fallback, unanswered, handoffs, resolved_by_bot,
       resolved_by_person, feedback_up, feedback_down, first_bot_reply_ms_sum,
       first_bot_replies, first_human_reply_ms_sum, first_human_replies, prompt_tokens,
       completion_tokens, cost_usd
FROM analytics_daily WHERE tenant_id = $1
"""

MODELS_RECOUNT = """
SELECT (t.created_at AT TIME ZONE 'UTC')::date, c.bot_id, c.channel_id, t.provider, t.model,
       count(*), sum(t.prompt_tokens), sum(t.completion_tokens), sum(t.cost_usd)::numeric(16, 6)
FROM llm_turns t JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
WHERE t.tenant_id = $1 GROUP BY 1, 2, 3, 4, 5
"""

MODELS_ROLLED = """
SELECT day, bot_id, channel_id, provider, model, turns, prompt_tokens, completion_tokens,
       cost_usd FROM analytics_daily_models WHERE tenant_id = $1
"""

LATENCY_RECOUNT = """
SELECT (t.created_at AT TIME ZONE 'UTC')::date, c.bot_id, c.channel_id, count(*)
FROM llm_turns t JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
WHERE t.tenant_id = $1 AND t.status = 'succeeded' AND t.ttft_ms IS NOT NULL GROUP BY 1, 2, 3
"""

LATENCY_ROLLED = """
SELECT day, bot_id, channel_id, sum(turns) FROM analytics_daily_latency
WHERE tenant_id = $1 GROUP BY 1, 2, 3
"""


def _norm(rows: list[Any]) -> set[tuple[Any, ...]]:
    return {tuple(int(v) if isinstance(v, int) else v for v in r) for r in rows}


async def differences(conn: asyncpg.Connection, tenant: uuid.UUID) -> dict[str, int]:
    """Rows where the roll-ups and the direct recount disagree, per table (all 0: equal).
    A (day, bot, channel) with nothing in it is absent from both."""
    await conn.execute("SELECT set_config('app.tenant_id', $1::text, false)", str(tenant))
    out: dict[str, int] = {}
    for name, recount, rolled in (
        ("daily", RECOUNT, ROLLED),
        ("models", MODELS_RECOUNT, MODELS_ROLLED),
        ("latency", LATENCY_RECOUNT, LATENCY_ROLLED),
    ):
        a = _norm(await conn.fetch(recount, tenant))
        b = _norm(await conn.fetch(rolled, tenant))
        out[name] = len(a ^ b)
    return out
