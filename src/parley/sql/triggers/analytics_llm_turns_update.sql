-- Marks the analytics day this change touches as dirty, so the roll-up job recomputes it
-- (decision 0034). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/analytics_llm_turns_update.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS analytics_llm_turns_update ON llm_turns;
CREATE TRIGGER analytics_llm_turns_update AFTER UPDATE ON llm_turns
FOR EACH ROW WHEN (
    OLD.status IS DISTINCT FROM NEW.status
    OR OLD.fallback IS DISTINCT FROM NEW.fallback
    OR OLD.prompt_tokens IS DISTINCT FROM NEW.prompt_tokens
    OR OLD.completion_tokens IS DISTINCT FROM NEW.completion_tokens
    OR OLD.cost_usd IS DISTINCT FROM NEW.cost_usd
    OR OLD.ttft_ms IS DISTINCT FROM NEW.ttft_ms
    OR OLD.model IS DISTINCT FROM NEW.model)
EXECUTE FUNCTION parley_analytics_mark_row();
