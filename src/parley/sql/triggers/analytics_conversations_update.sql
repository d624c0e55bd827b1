-- Marks the analytics day this change touches as dirty, so the roll-up job recomputes it
-- (decision 0034). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/analytics_conversations_update.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS analytics_conversations_update ON conversations;
CREATE TRIGGER analytics_conversations_update AFTER UPDATE ON conversations
FOR EACH ROW WHEN (
    OLD.handoff_status IS DISTINCT FROM NEW.handoff_status
    OR OLD.handoff_requested_at IS DISTINCT FROM NEW.handoff_requested_at
    OR OLD.first_bot_reply_ms IS DISTINCT FROM NEW.first_bot_reply_ms
    OR OLD.first_human_reply_ms IS DISTINCT FROM NEW.first_human_reply_ms
    OR OLD.fallback_streak IS DISTINCT FROM NEW.fallback_streak
    OR OLD.last_feedback IS DISTINCT FROM NEW.last_feedback
    OR OLD.bot_id IS DISTINCT FROM NEW.bot_id
    OR OLD.channel_id IS DISTINCT FROM NEW.channel_id)
EXECUTE FUNCTION parley_analytics_mark_row();
