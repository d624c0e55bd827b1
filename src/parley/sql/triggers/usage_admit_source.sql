-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_admit_source.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_admit_source ON kb_sources;
CREATE TRIGGER usage_admit_source BEFORE INSERT ON kb_sources FOR EACH ROW EXECUTE FUNCTION parley_usage_on_count('sources');
