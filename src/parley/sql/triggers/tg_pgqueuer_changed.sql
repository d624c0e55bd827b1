-- pgqueuer 1.6.0's change-notification trigger (statement level), as the library installs it.
-- Source file (decision 0029): a migration applies it with
-- apply_sql("triggers/tg_pgqueuer_changed.sql"); edit it only together with such a migration.
DROP TRIGGER IF EXISTS tg_pgqueuer_changed ON pgqueuer;
CREATE TRIGGER tg_pgqueuer_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgqueuer
EXECUTE FUNCTION fn_pgqueuer_changed();
