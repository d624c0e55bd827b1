-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_admit_bot.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_admit_bot ON bots;
CREATE TRIGGER usage_admit_bot BEFORE INSERT ON bots FOR EACH ROW EXECUTE FUNCTION parley_usage_on_count('bots');
