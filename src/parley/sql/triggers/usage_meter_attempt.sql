-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_meter_attempt.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_meter_attempt ON webhook_attempts;
CREATE TRIGGER usage_meter_attempt AFTER INSERT ON webhook_attempts FOR EACH ROW EXECUTE FUNCTION parley_usage_on_call('integration_calls');
