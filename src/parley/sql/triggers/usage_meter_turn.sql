-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_meter_turn.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_meter_turn ON llm_turns;
CREATE TRIGGER usage_meter_turn AFTER INSERT OR UPDATE OF status ON llm_turns FOR EACH ROW EXECUTE FUNCTION parley_usage_on_turn();
