-- Marks the analytics day this change touches as dirty, so the roll-up job recomputes it
-- (decision 0034). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/analytics_messages_delete.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS analytics_messages_delete ON messages;
CREATE TRIGGER analytics_messages_delete AFTER DELETE ON messages
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
EXECUTE FUNCTION parley_analytics_mark_rows();
