-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_meter_inbound.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_meter_inbound ON inbound_events;
CREATE TRIGGER usage_meter_inbound AFTER INSERT ON inbound_events FOR EACH ROW EXECUTE FUNCTION parley_usage_on_call('webhook_events');
