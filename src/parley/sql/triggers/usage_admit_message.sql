-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_admit_message.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_admit_message ON messages;
CREATE TRIGGER usage_admit_message BEFORE INSERT ON messages FOR EACH ROW WHEN (NEW.role = 'user') EXECUTE FUNCTION parley_usage_on_message();
