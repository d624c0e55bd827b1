-- The passages (chunk, source title/url) of fused chunk ids (migration 0016). SECURITY INVOKER: the
-- first statement binds the tenant for the calling transaction, so the tenant policies (RLS)
-- filter everything it reads or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_kb_passages.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_kb_passages(p_tenant uuid, p_ids uuid[])
RETURNS TABLE (
    r_chunk_id uuid, r_source_id uuid, r_title text, r_url text, r_page integer,
    r_heading text, r_text text
)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT c.id, c.source_id, s.title::text, s.url, c.page, c.heading, c.text
    FROM kb_chunks c
    JOIN kb_sources s ON s.tenant_id = p_tenant AND s.id = c.source_id
    WHERE c.tenant_id = p_tenant AND c.id = ANY(p_ids);
END
$fn$;
