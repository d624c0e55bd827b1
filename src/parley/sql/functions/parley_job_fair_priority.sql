-- Trigger function: fairness between workspaces in the job queue; a workspace's queued backlog
-- lowers the priority of its new jobs. Decision 0023. Source file (decision 0029): a migration
-- applies it with apply_sql("functions/parley_job_fair_priority.sql"); edit it only together with
-- such a migration.
CREATE OR REPLACE FUNCTION parley_job_fair_priority() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $fn$
DECLARE
    v_backlog integer;
BEGIN
    IF NEW.status <> 'queued' OR (TG_OP = 'UPDATE' AND OLD.status = 'queued') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- Our payloads are JSON objects; a job without a workspace keeps its priority.
        IF NEW.payload IS NULL OR get_byte(NEW.payload, 0) <> 123 THEN
            RETURN NEW;
        END IF;
        NEW.fair_tenant := (convert_from(NEW.payload, 'UTF8')::jsonb ->> 'tenant_id')::uuid;
    END IF;
    IF NEW.fair_tenant IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT count(*) INTO v_backlog FROM (
        SELECT 1 FROM pgqueuer
        WHERE fair_tenant = NEW.fair_tenant AND status = 'queued' AND id <> NEW.id
        LIMIT 100
    ) AS queued;
    NEW.priority := LEAST(NEW.priority, 0) - v_backlog / 10;
    RETURN NEW;
END
$fn$;
