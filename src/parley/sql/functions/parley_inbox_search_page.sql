-- One page of full-text search candidates: the ids of the bound workspace's conversations
-- whose messages match `p_query` (all its words in one conversation), newest conversation
-- first, below `p_before`, at most `p_limit` (1..5000). The caller applies its other filters to
-- these ids and asks again below the last one when they leave its page short (decision 0032).
--
-- Why it is shaped this way (decision 0039): a conversation's words are one document
-- (`conversation_search`, in parts of about 8 KB), so a page is at most `p_limit` rows however
-- many messages match, and the search takes one of two paths by how common the words are. The
-- planner's estimate for the words alone (its statistics of the most common lexemes) gives
-- their density, the share of documents that match:
-- - common words (density at least 1 %): read the workspace's newest documents in id order and
--   keep those that match; the page fills within about 3 × page / density rows, so a word in
--   every tenth conversation costs a few hundred rows. If that many rows did not fill it (the
--   word is common elsewhere, rare here), the rest comes from the other path below them.
-- - rarer words: the GIN index answers "this workspace AND these words" (the workspace's own
--   lexeme is in every document, parley_search_doc) with every match, which is then few.
-- Each statement is dynamic SQL planned with the actual words and bounds.
--
-- VOLATILE because it runs EXPLAIN (not allowed in a STABLE function); it writes nothing.
-- SECURITY DEFINER because `conversation_search` has no policy and the app role no privilege
-- on it (decision 0022); it reads only the workspace the transaction is bound to
-- (`app.tenant_id`). Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_inbox_search_page.sql"); edit it only together with such a
-- migration.
CREATE OR REPLACE FUNCTION parley_inbox_search_page(
    p_query text, p_before uuid, p_limit integer
) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    v_tenant uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    v_words tsquery;
    v_query tsquery;
    v_hi uuid := coalesce(p_before, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid);
    v_left integer := least(greatest(coalesce(p_limit, 50), 1), 5000);
    v_plan json;
    v_density float8;
    v_scan integer;
    v_id uuid;
    v_last uuid;
    v_low uuid;
    v_read bigint;
BEGIN
    IF v_tenant IS NULL OR p_query IS NULL THEN
        RETURN;
    END IF;
    v_words := websearch_to_tsquery('simple'::regconfig, p_query);
    IF numnode(v_words) = 0 THEN
        RETURN;  -- no word at all
    END IF;
    v_query := v_words && to_tsquery('simple'::regconfig,
                                      't' || replace(v_tenant::text, '-', ''));
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM conversation_search WHERE doc @@ $1'
    INTO v_plan USING v_words;
    SELECT (v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8 / greatest(c.reltuples, 1)
    INTO v_density FROM pg_class c WHERE c.oid = 'conversation_search'::regclass;
    IF coalesce(v_density, 0) >= 0.01 THEN
        v_scan := least(greatest(ceil(3 * v_left / v_density)::integer, 500), 20000);
        FOR v_id IN EXECUTE
            'SELECT x.conversation_id FROM ('
            '  SELECT s.conversation_id, s.doc FROM conversation_search s'
            '  WHERE s.tenant_id = $1 AND s.conversation_id < $2'
            '  ORDER BY s.conversation_id DESC, s.part DESC LIMIT $4) x '
            'WHERE x.doc @@ $3 '
            'GROUP BY x.conversation_id ORDER BY x.conversation_id DESC LIMIT $5'
        USING v_tenant, v_hi, v_query, v_scan, v_left
        LOOP
            RETURN NEXT v_id;
            v_last := v_id;
            v_left := v_left - 1;
        END LOOP;
        IF v_left = 0 THEN
            RETURN;
        END IF;
        -- Not full: go on below the rows read (a conversation whose parts the cut divided is
        -- read again, unless it was returned already) — unless they were all there is.
        EXECUTE
            'SELECT x.conversation_id, count(*) OVER () FROM ('
            '  SELECT s.conversation_id FROM conversation_search s'
            '  WHERE s.tenant_id = $1 AND s.conversation_id < $2'
            '  ORDER BY s.conversation_id DESC, s.part DESC LIMIT $3) x '
            'ORDER BY x.conversation_id LIMIT 1'
        INTO v_low, v_read USING v_tenant, v_hi, v_scan;
        IF v_low IS NULL OR v_read < v_scan THEN
            RETURN;  -- every row below the cursor was read
        END IF;
        RETURN QUERY EXECUTE
            'SELECT s.conversation_id FROM conversation_search s '
            'WHERE s.tenant_id = $1 AND s.conversation_id <= $2 AND s.doc @@ $3 '
            '  AND s.conversation_id IS DISTINCT FROM $4 '
            'GROUP BY s.conversation_id ORDER BY s.conversation_id DESC LIMIT $5'
        USING v_tenant, v_low, v_query, v_last, v_left;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT s.conversation_id FROM conversation_search s '
        'WHERE s.tenant_id = $1 AND s.conversation_id < $2 AND s.doc @@ $3 '
        'GROUP BY s.conversation_id ORDER BY s.conversation_id DESC LIMIT $4'
    USING v_tenant, v_hi, v_query, v_left;
END
$fn$;
