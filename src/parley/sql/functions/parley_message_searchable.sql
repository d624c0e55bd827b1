-- Trigger function: keeps `message_search` (no policy, no app grant) in step with messages.
-- SECURITY DEFINER because the app role cannot write that table. Decision 0022. Source file
-- (decision 0029): a migration applies it with
-- apply_sql("functions/parley_message_searchable.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_message_searchable() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
BEGIN
    INSERT INTO message_search (tenant_id, message_id, conversation_id, doc)
    VALUES (NEW.tenant_id, NEW.id, NEW.conversation_id,
            parley_search_doc(NEW.tenant_id, NEW.content));
    RETURN NULL;
END
$fn$;
