-- Recompute the analytics roll-ups of a workspace's UTC days from the source rows (migration
-- 0024, docs/analytics.md). Idempotent: a day's rows are replaced, never incremented, so a
-- late or duplicated event only means the day is recomputed once more.
--
-- Where each figure lives: conversation figures (count, handoffs, resolutions, first reply
-- times) on the day the conversation started; messages on the day they were written; turns,
-- tokens, cost and time to first token on the day the turn started; feedback on the day of
-- the rated message. Time to first token is kept as a histogram (`le_ms` = the bucket's upper
-- bound, buckets 10 % wide from 10 ms) so p50/p95 can be read over any range of days.
CREATE OR REPLACE FUNCTION parley_analytics_recompute(p_tenant uuid, p_days date[])
RETURNS integer
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_rows integer;
    v_bounds integer[] := ARRAY(SELECT DISTINCT round(10 * 1.1 ^ g)::integer
                                FROM generate_series(0, 100) g ORDER BY 1);
BEGIN
    DELETE FROM analytics_daily WHERE tenant_id = p_tenant AND day = ANY(p_days);
    DELETE FROM analytics_daily_models WHERE tenant_id = p_tenant AND day = ANY(p_days);
    DELETE FROM analytics_daily_latency WHERE tenant_id = p_tenant AND day = ANY(p_days);

    INSERT INTO analytics_daily (
        tenant_id, day, bot_id, channel_id, conversations, messages, user_messages,
        bot_messages, operator_messages, turns, answered, fallback, unanswered, handoffs,
        resolved_by_bot, resolved_by_person, feedback_up, feedback_down,
        first_bot_reply_ms_sum, first_bot_replies, first_human_reply_ms_sum,
        first_human_replies, prompt_tokens, completion_tokens, cost_usd)
    SELECT p_tenant, day, bot_id, channel_id,
           sum(conversations), sum(messages), sum(user_messages), sum(bot_messages),
           sum(operator_messages), sum(turns), sum(answered), sum(fallback), sum(unanswered),
           sum(handoffs), sum(resolved_by_bot), sum(resolved_by_person), sum(feedback_up),
           sum(feedback_down), sum(first_bot_reply_ms_sum), sum(first_bot_replies),
           sum(first_human_reply_ms_sum), sum(first_human_replies), sum(prompt_tokens),
           sum(completion_tokens), sum(cost_usd)
    FROM (
        -- Conversations, on the day they started.
        SELECT d.day, c.bot_id, c.channel_id,
               count(*) AS conversations, 0 AS messages, 0 AS user_messages,
               0 AS bot_messages, 0 AS operator_messages, 0 AS turns, 0 AS answered,
               0 AS fallback, 0 AS unanswered,
               count(*) FILTER (WHERE c.handoff_requested_at IS NOT NULL
                                   OR c.handoff_status IN ('waiting', 'assigned')
                                   OR c.first_human_reply_ms IS NOT NULL) AS handoffs,
               count(*) FILTER (WHERE c.handoff_requested_at IS NULL
                                   AND c.handoff_status IN ('bot', 'resolved')
                                   AND c.first_human_reply_ms IS NULL
                                   AND c.first_bot_reply_ms IS NOT NULL
                                   AND c.fallback_streak = 0
                                   AND c.last_feedback IS DISTINCT FROM 'down')
                   AS resolved_by_bot,
               count(*) FILTER (WHERE c.handoff_status = 'resolved'
                                   AND (c.handoff_requested_at IS NOT NULL
                                        OR c.first_human_reply_ms IS NOT NULL))
                   AS resolved_by_person,
               0 AS feedback_up, 0 AS feedback_down,
               coalesce(sum(c.first_bot_reply_ms), 0) AS first_bot_reply_ms_sum,
               count(c.first_bot_reply_ms) AS first_bot_replies,
               coalesce(sum(c.first_human_reply_ms), 0) AS first_human_reply_ms_sum,
               count(c.first_human_reply_ms) AS first_human_replies,
               0 AS prompt_tokens, 0 AS completion_tokens, 0 AS cost_usd
        FROM parley_analytics_days(p_days) d
        JOIN conversations c
          ON c.tenant_id = p_tenant AND c.created_at >= d.lo AND c.created_at < d.hi
        GROUP BY 1, 2, 3
        UNION ALL
        -- Messages, on the day they were written.
        SELECT d.day, c.bot_id, c.channel_id, 0, count(*),
               count(*) FILTER (WHERE m.role = 'user'),
               count(*) FILTER (WHERE m.role = 'assistant'),
               count(*) FILTER (WHERE m.role = 'operator'),
               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        FROM parley_analytics_days(p_days) d
        JOIN messages m
          ON m.tenant_id = p_tenant AND m.created_at >= d.lo AND m.created_at < d.hi
        JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
        GROUP BY 1, 2, 3
        UNION ALL
        -- Turns (the LLM ledger), on the day they started.
        SELECT d.day, c.bot_id, c.channel_id, 0, 0, 0, 0, 0, count(*),
               count(*) FILTER (WHERE t.status = 'succeeded' AND NOT t.fallback),
               count(*) FILTER (WHERE t.status = 'succeeded' AND t.fallback),
               count(*) FILTER (WHERE t.status = 'failed'),
               0, 0, 0, 0, 0, 0, 0, 0, 0,
               sum(t.prompt_tokens), sum(t.completion_tokens), sum(t.cost_usd)
        FROM parley_analytics_days(p_days) d
        JOIN llm_turns t
          ON t.tenant_id = p_tenant AND t.created_at >= d.lo AND t.created_at < d.hi
        JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
        GROUP BY 1, 2, 3
        UNION ALL
        -- Feedback, on the day of the rated message.
        SELECT d.day, c.bot_id, c.channel_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
               count(*) FILTER (WHERE f.rating = 'up'),
               count(*) FILTER (WHERE f.rating = 'down'),
               0, 0, 0, 0, 0, 0, 0
        FROM parley_analytics_days(p_days) d
        JOIN messages m
          ON m.tenant_id = p_tenant AND m.created_at >= d.lo AND m.created_at < d.hi
        JOIN message_feedback f ON f.tenant_id = m.tenant_id AND f.message_id = m.id
        JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
        GROUP BY 1, 2, 3
    ) AS parts
    GROUP BY day, bot_id, channel_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    INSERT INTO analytics_daily_models (
        tenant_id, day, bot_id, channel_id, provider, model, turns, prompt_tokens,
        completion_tokens, cost_usd)
    SELECT p_tenant, d.day, c.bot_id, c.channel_id, t.provider, t.model, count(*),
           sum(t.prompt_tokens), sum(t.completion_tokens), sum(t.cost_usd)
    FROM parley_analytics_days(p_days) d
    JOIN llm_turns t ON t.tenant_id = p_tenant AND t.created_at >= d.lo AND t.created_at < d.hi
    JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
    GROUP BY 2, 3, 4, 5, 6;

    INSERT INTO analytics_daily_latency (tenant_id, day, bot_id, channel_id, le_ms, turns)
    SELECT p_tenant, d.day, c.bot_id, c.channel_id,
           coalesce(v_bounds[width_bucket(t.ttft_ms, v_bounds) + 1], 2147483647), count(*)
    FROM parley_analytics_days(p_days) d
    JOIN llm_turns t ON t.tenant_id = p_tenant AND t.created_at >= d.lo AND t.created_at < d.hi
    JOIN conversations c ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id
    WHERE t.status = 'succeeded' AND t.ttft_ms IS NOT NULL
    GROUP BY 2, 3, 4, 5;
    RETURN v_rows;
END
$fn$;
