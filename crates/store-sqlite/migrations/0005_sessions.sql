-- 0005: sessions and diffs — the agent's conversation an execution is a turn of, the execution it follows, and the
-- unified diff of its run.
--
-- `session_id` (the agent's own id: a Codex thread, a Claude Code session), `continues` (the execution a follow-up
-- turn continues) and `prompt` (a follow-up turn's prompt, as asked) are read with the execution, so they are columns
-- of `executions`; all are NULL for every execution made before. Adding columns to a table without a rowid rewrites nothing.
--
-- A diff may be megabytes, and only the status page and `GET /api/executions/{id}/diff` read it, so it lives in a
-- table of its own, keyed by the execution, one B-tree: the executions list never reads it.

ALTER TABLE executions ADD COLUMN session_id TEXT;
ALTER TABLE executions ADD COLUMN continues TEXT;
ALTER TABLE executions ADD COLUMN prompt TEXT;

-- The turns of a session are listed by it (the status page shows them); most executions have none.
CREATE INDEX executions_by_session ON executions (session_id, id) WHERE session_id IS NOT NULL;

CREATE TABLE diffs (
    execution_id TEXT PRIMARY KEY NOT NULL,
    diff         TEXT NOT NULL
) WITHOUT ROWID;
