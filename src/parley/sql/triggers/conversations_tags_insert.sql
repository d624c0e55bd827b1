-- A new conversation's tags go to `conversation_tags` (`parley_conversation_tags_sync`). Source
-- file (decision 0029): a migration applies it with
-- apply_sql("triggers/conversations_tags_insert.sql"); edit it only together with such a
-- migration.
DROP TRIGGER IF EXISTS conversations_tags_insert ON conversations;
CREATE TRIGGER conversations_tags_insert AFTER INSERT ON conversations
FOR EACH ROW WHEN (cardinality(NEW.tags) > 0)
EXECUTE FUNCTION parley_conversation_tags_sync();
