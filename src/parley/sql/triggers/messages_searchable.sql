-- Each stored message gets its searchable document (`parley_message_searchable`). Source file
-- (decision 0029): a migration applies it with apply_sql("triggers/messages_searchable.sql"); edit
-- it only together with such a migration.
DROP TRIGGER IF EXISTS messages_searchable ON messages;
CREATE TRIGGER messages_searchable AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION parley_message_searchable();
