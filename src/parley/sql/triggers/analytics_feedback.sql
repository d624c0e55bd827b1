-- Marks the analytics day this change touches as dirty, so the roll-up job recomputes it
-- (decision 0034). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/analytics_feedback.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS analytics_feedback ON message_feedback;
CREATE TRIGGER analytics_feedback AFTER INSERT OR UPDATE OR DELETE ON message_feedback
FOR EACH ROW EXECUTE FUNCTION parley_analytics_mark_feedback();
