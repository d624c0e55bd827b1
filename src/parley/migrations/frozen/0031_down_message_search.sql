-- Frozen (migration 0031's downgrade): the search objects as migration 0030 left them, before
-- conversation_search replaced message_search (decision 0039). History: never edited.
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

-- One page of full-text search candidates: the ids of the bound workspace's conversations
-- whose messages match `p_query`, newest conversation first, below `p_before`, at most
-- `p_limit` (1..5000). The caller applies its other filters to these ids and asks again below
-- the last one when they leave its page short (decision 0032).
--
-- Why it is shaped this way: returning every matching conversation (the first version) made a
-- common word cost a DISTINCT over thousands of rows per page, and one query over the whole
-- workspace lets the planner combine the word's GIN list with a million-row range. Here the
-- search walks back in time windows (conversation ids are UUIDv7, so a window is an id range
-- on `ix_message_search_conversation`), newest first, each window sized from the density of
-- matches seen so far, until the page is full or the workspace's oldest conversation is
-- passed. Each window runs as dynamic SQL planned with the actual words and bounds, so its
-- cost is at most the smaller of "the window's rows" and "the word's matches": a common word
-- fills the page from the first small window; a rare one needs a few wider windows, each
-- answered from the GIN index.
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
    v_left integer := least(greatest(coalesce(p_limit, 50), 1), 5000);
    v_oldest uuid;
    v_hi uuid;
    v_lo uuid;
    v_hi_ms bigint;
    v_lo_ms bigint;
    v_start_ms bigint;
    v_window bigint := 86400000;  -- the first window: one day, in milliseconds
    v_found bigint;
    v_total bigint := 0;
BEGIN
    IF v_tenant IS NULL OR p_query IS NULL THEN
        RETURN;
    END IF;
    v_query := websearch_to_tsquery('simple'::regconfig, p_query);
    IF numnode(v_query) = 0 THEN
        RETURN;  -- no word at all
    END IF;
    -- The workspace's own lexeme is in every document (parley_search_doc), so the GIN path
    -- answers "this workspace AND these words" inside the index.
    v_query := v_query && to_tsquery('simple'::regconfig,
                                      't' || replace(v_tenant::text, '-', ''));
    SELECT s.conversation_id INTO v_oldest FROM message_search s
    WHERE s.tenant_id = v_tenant ORDER BY s.conversation_id LIMIT 1;
    IF v_oldest IS NULL THEN
        RETURN;
    END IF;
    v_hi := coalesce(p_before, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid);
    v_hi_ms := CASE WHEN p_before IS NULL
        THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 60000
        ELSE ('x' || left(replace(p_before::text, '-', ''), 12))::bit(48)::bigint END;
    v_start_ms := v_hi_ms;
    LOOP
        v_lo_ms := greatest(v_hi_ms - v_window, 0);
        v_lo := (lpad(to_hex(v_lo_ms), 12, '0') || repeat('0', 20))::uuid;
        IF v_lo <= v_oldest THEN
            v_lo := '00000000-0000-0000-0000-000000000000'::uuid;  -- the last window
        END IF;
        RETURN QUERY EXECUTE
            'SELECT s.conversation_id FROM message_search s '
            'WHERE s.tenant_id = $1 AND s.conversation_id < $2 AND s.conversation_id >= $3 '
            '  AND s.doc @@ $4 '
            'GROUP BY s.conversation_id ORDER BY s.conversation_id DESC LIMIT $5'
        USING v_tenant, v_hi, v_lo, v_query, v_left;
        GET DIAGNOSTICS v_found = ROW_COUNT;
        v_left := v_left - v_found::integer;
        v_total := v_total + v_found;
        EXIT WHEN v_left <= 0 OR v_lo = '00000000-0000-0000-0000-000000000000'::uuid;
        v_hi := v_lo;
        v_hi_ms := v_lo_ms;
        -- The next window: wide enough for what is missing at the density seen so far (half
        -- again, for luck), at least twice the last one; sixteen times when nothing matched.
        v_window := CASE WHEN v_total = 0 THEN v_window * 16
            ELSE greatest(v_window * 2,
                          (v_start_ms - v_hi_ms) * v_left * 3 / (2 * v_total)) END;
    END LOOP;
END
$fn$;

