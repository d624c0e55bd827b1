-- Trigger function: adds a stored message's words to its conversation's searchable document in
-- `conversation_search` (no policy, no app grant; decisions 0022 and 0039). A conversation's
-- document is kept in parts of about 8 KB of text: the message joins the newest part while it
-- fits, else starts the next one. Parts keep each row's rewrite (and the GIN entries an update
-- re-adds) small however long the conversation runs, and keep every document far below the
-- 1 MB a tsvector may hold. Writers hold the conversation's lock (decision 0038); the upsert
-- keeps a writer that does not correct anyway.
-- SECURITY DEFINER because the app role cannot write that table. Source file (decision 0029): a
-- migration applies it with apply_sql("functions/parley_message_searchable.sql"); edit it only
-- together with such a migration.
CREATE OR REPLACE FUNCTION parley_message_searchable() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    v_bytes integer := octet_length(NEW.content);
    v_doc tsvector := parley_search_doc(NEW.tenant_id, NEW.content);
    v_part integer;
BEGIN
    SELECT max(s.part) INTO v_part FROM conversation_search s
    WHERE s.tenant_id = NEW.tenant_id AND s.conversation_id = NEW.conversation_id;
    IF v_part IS NOT NULL THEN
        UPDATE conversation_search s SET doc = s.doc || v_doc, bytes = s.bytes + v_bytes
        WHERE s.tenant_id = NEW.tenant_id AND s.conversation_id = NEW.conversation_id
          AND s.part = v_part AND s.bytes + v_bytes <= 8192;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO conversation_search AS s (tenant_id, conversation_id, part, bytes, doc)
    VALUES (NEW.tenant_id, NEW.conversation_id, coalesce(v_part + 1, 0), v_bytes, v_doc)
    ON CONFLICT (tenant_id, conversation_id, part)
    DO UPDATE SET doc = s.doc || EXCLUDED.doc, bytes = s.bytes + EXCLUDED.bytes;
    RETURN NULL;
END
$fn$;
