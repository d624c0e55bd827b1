-- A change of a conversation's tags is mirrored in `conversation_tags`
-- (`parley_conversation_tags_sync`). Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/conversations_tags_update.sql"); edit it only together with such a
-- migration.
DROP TRIGGER IF EXISTS conversations_tags_update ON conversations;
CREATE TRIGGER conversations_tags_update AFTER UPDATE OF tags ON conversations
FOR EACH ROW WHEN (OLD.tags IS DISTINCT FROM NEW.tags)
EXECUTE FUNCTION parley_conversation_tags_sync();
