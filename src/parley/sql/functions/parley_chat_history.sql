-- A page of a conversation's history, after the widget token's liveness check. SECURITY INVOKER:
-- the first statement binds the tenant for the calling transaction, so the tenant policies (RLS)
-- filter everything it reads or writes. Source file (decision 0029): a migration applies it with
-- apply_sql("functions/parley_chat_history.sql"); edit it only together with such a migration.
CREATE OR REPLACE FUNCTION parley_chat_history(
    p_tenant uuid, p_conversation uuid, p_before uuid, p_limit integer,
    p_epoch integer
) RETURNS jsonb
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_rows jsonb;
BEGIN
    PERFORM parley_widget_live(p_tenant, p_conversation, p_epoch);
    SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.id DESC), '[]'::jsonb) INTO v_rows
    FROM (SELECT * FROM messages
          WHERE tenant_id = p_tenant AND conversation_id = p_conversation
            AND (p_before IS NULL OR id < p_before)
          ORDER BY id DESC LIMIT p_limit) m;
    RETURN v_rows;
END
$fn$;
