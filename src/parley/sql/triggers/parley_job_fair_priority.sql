-- Each queued job gets its fair priority (`parley_job_fair_priority`), decision 0023. Source file
-- (decision 0029): a migration applies it with apply_sql("triggers/parley_job_fair_priority.sql");
-- edit it only together with such a migration.
DROP TRIGGER IF EXISTS parley_job_fair_priority ON pgqueuer;
CREATE TRIGGER parley_job_fair_priority BEFORE INSERT OR UPDATE OF status ON pgqueuer FOR EACH ROW EXECUTE FUNCTION parley_job_fair_priority();
