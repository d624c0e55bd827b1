-- One page of full-text search candidates: the ids of the bound workspace's conversations
-- whose messages match `p_query`, newest conversation first, below `p_before`, at most
-- `p_limit` (1..5000). The caller applies its other filters to these ids and asks again below
-- the last one when they leave its page short (decision 0032).
--
-- Why it is shaped this way: returning every matching conversation (the first version) made a
-- common word cost a DISTINCT over thousands of rows per page. Here the query carries the
-- order and the LIMIT, and runs as dynamic SQL so it is planned with the actual words: for a
-- common word the planner walks `ix_message_search_conversation` backwards and stops after a
-- page; for a rare word it reads the GIN index and sorts the few matches.
--
-- SECURITY DEFINER because `message_search` has no policy and the app role no privilege on it
-- (decision 0022); it reads only the workspace the transaction is bound to (`app.tenant_id`).
CREATE OR REPLACE FUNCTION parley_inbox_search_page(
    p_query text, p_before uuid, p_limit integer
) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    v_tenant uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    v_query tsquery;
BEGIN
    IF v_tenant IS NULL OR p_query IS NULL THEN
        RETURN;
    END IF;
    v_query := websearch_to_tsquery('simple'::regconfig, p_query);
    IF numnode(v_query) = 0 THEN
        RETURN;  -- no word at all: an empty tsquery would match nothing useful
    END IF;
    -- The workspace's own lexeme is in every document (parley_search_doc), so the GIN path
    -- answers "this workspace AND these words" inside the index.
    v_query := v_query && to_tsquery('simple'::regconfig,
                                      't' || replace(v_tenant::text, '-', ''));
    RETURN QUERY EXECUTE
        'SELECT s.conversation_id FROM message_search s '
        'WHERE s.tenant_id = $1 AND s.conversation_id < $2 AND s.doc @@ $3 '
        'GROUP BY s.conversation_id ORDER BY s.conversation_id DESC LIMIT $4'
    USING v_tenant,
          coalesce(p_before, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid),
          v_query,
          least(greatest(coalesce(p_limit, 50), 1), 5000);
END
$fn$;
