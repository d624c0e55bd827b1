-- Plans enforced before the work is done, metered in the same transaction (decision 0035).
-- Source file (decision 0029): a migration applies it with apply_sql("triggers/usage_admit_conversation.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS usage_admit_conversation ON conversations;
CREATE TRIGGER usage_admit_conversation BEFORE INSERT ON conversations FOR EACH ROW EXECUTE FUNCTION parley_usage_on_conversation();
