-- Trigger function: what a change of handler implies (service clocks, open/closed, a timeline
-- row), whoever changes the row. Decision 0021. Source file (decision 0029): a migration applies
-- it with apply_sql("functions/parley_conversation_handling.sql"); edit it only together with such
-- a migration.
CREATE OR REPLACE FUNCTION parley_conversation_handling() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
-- One place for what a change of handler implies, whoever makes it: the clocks of the service
-- figures, open/closed, and a timeline row. The actor and reason come from the transaction
-- (`parley.actor`, `parley.handoff_reason`), set by whoever changes the row.
DECLARE
    v_actor text := nullif(current_setting('parley.actor', true), '');
    v_reason text := nullif(current_setting('parley.handoff_reason', true), '');
BEGIN
    IF NEW.handoff_status IS NOT DISTINCT FROM OLD.handoff_status
       AND NEW.assignee_id IS NOT DISTINCT FROM OLD.assignee_id THEN
        RETURN NEW;
    END IF;
    IF NEW.handoff_status IN ('bot', 'waiting') THEN
        NEW.assignee_id := NULL;
    END IF;
    IF NEW.handoff_status = 'waiting' AND OLD.handoff_status IN ('bot', 'resolved') THEN
        NEW.handoff_requested_at := now();
    END IF;
    IF NEW.handoff_status = 'resolved' AND OLD.handoff_status <> 'resolved' THEN
        NEW.status := 'closed';
        NEW.resolved_at := now();
        NEW.resolution_ms := (extract(epoch FROM now() - NEW.created_at) * 1000)::integer;
    ELSIF NEW.handoff_status <> 'resolved' AND OLD.handoff_status = 'resolved' THEN
        NEW.status := 'open';
        NEW.resolved_at := NULL;
    END IF;
    IF NEW.handoff_status = 'bot' THEN
        NEW.fallback_streak := 0;
    END IF;
    INSERT INTO conversation_events (tenant_id, id, conversation_id, kind, actor,
                                     from_status, to_status, assignee_id, reason, created_at)
    VALUES (NEW.tenant_id, encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid, NEW.id,
            CASE WHEN NEW.handoff_status IS DISTINCT FROM OLD.handoff_status
                 THEN 'status' ELSE 'assignee' END,
            coalesce(v_actor, 'system'), OLD.handoff_status, NEW.handoff_status,
            NEW.assignee_id, v_reason, now());
    RETURN NEW;
END
$fn$;
