-- The instance that ran each execution (`Execution.instance`): one instance per SQLite file, but the id is shown and
-- kept when a file moves to PostgreSQL (`agent-dashboard migrate-store`).
ALTER TABLE executions ADD COLUMN instance TEXT;
