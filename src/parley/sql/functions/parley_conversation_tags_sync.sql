-- Trigger function: keeps `conversation_tags` (one row per conversation and tag) equal to
-- `conversations.tags`, so the staff list's tag filter reads a btree `(tenant_id, tag,
-- conversation_id)` newest first. The array's `@>` is not leakproof, so under row-level
-- security a GIN index on `tags` cannot serve the app role (decision 0039). SECURITY INVOKER:
-- the writer's own workspace policy applies to the rows it writes. Source file (decision
-- 0029): a migration applies it with apply_sql("functions/parley_conversation_tags_sync.sql");
-- edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_conversation_tags_sync() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM conversation_tags g
        WHERE g.tenant_id = NEW.tenant_id AND g.conversation_id = NEW.id
          AND NOT (g.tag = ANY (NEW.tags));
    END IF;
    INSERT INTO conversation_tags (tenant_id, tag, conversation_id)
    SELECT DISTINCT NEW.tenant_id, t, NEW.id FROM unnest(NEW.tags) t WHERE t IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;
