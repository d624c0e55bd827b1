-- Conversation ids of the bound workspace whose messages match a query (SECURITY DEFINER over
-- `message_search`, filtered by `app.tenant_id`; `@@` is not leakproof, so RLS would defeat the
-- index). Decision 0022. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_inbox_search.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_inbox_search(p_query text) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
    SELECT DISTINCT s.conversation_id FROM message_search s
    WHERE s.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
      AND s.doc @@ (websearch_to_tsquery('simple'::regconfig, p_query)
                    && to_tsquery('simple'::regconfig,
                                  't' || replace((NULLIF(current_setting('app.tenant_id', true), '')::uuid)::text, '-', '')))
$fn$;
