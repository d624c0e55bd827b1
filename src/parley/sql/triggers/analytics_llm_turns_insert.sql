-- Marks the analytics day this change touches as dirty, so the roll-up job recomputes it
-- (decision 0034). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/analytics_llm_turns_insert.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS analytics_llm_turns_insert ON llm_turns;
CREATE TRIGGER analytics_llm_turns_insert AFTER INSERT ON llm_turns
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION parley_analytics_mark_rows();
