-- Every change of a conversation's handler goes through `parley_conversation_handling`. Source
-- file (decision 0029): a migration applies it with
-- apply_sql("triggers/conversations_handling.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS conversations_handling ON conversations;
CREATE TRIGGER conversations_handling BEFORE UPDATE OF handoff_status, assignee_id
ON conversations FOR EACH ROW EXECUTE FUNCTION parley_conversation_handling();
