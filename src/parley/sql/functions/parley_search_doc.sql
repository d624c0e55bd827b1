-- The searchable document of a message: its words plus the workspace's own lexeme, so one GIN
-- index answers "this workspace AND these words". Decision 0022. Source file (decision 0029): a
-- migration applies it with apply_sql("functions/parley_search_doc.sql"); edit it only together
-- with such a migration.
CREATE OR REPLACE FUNCTION parley_search_doc(p_tenant uuid, p_content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT to_tsvector('simple'::regconfig, p_content)
           || ('t' || replace(p_tenant::text, '-', ''))::tsvector
$fn$;
