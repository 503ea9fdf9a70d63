-- 0003: executions keyed by their id alone, and idempotency keys indexed only where there is one.
--
-- Version 1 made `executions` a rowid table with a TEXT primary key, so every execution was stored twice over: in the
-- rowid table and in the key's own index (each with the 36-character id), and the UNIQUE `idempotency_key` column
-- indexed every NULL too (most executions have no key). Without a rowid the id is the table's key, one B-tree; the
-- idempotency index becomes partial, so an execution without a key writes nothing there. A lookup by key
-- (`idempotency_key = ?`) still uses it, since that comparison is never true for a NULL. Uniqueness is unchanged.
--
-- The other indexes are the same as before; SQLite drops them with the old table, so they are made again.

CREATE TABLE executions_by_id (
    id               TEXT PRIMARY KEY NOT NULL,
    function         TEXT NOT NULL,
    function_id      TEXT NOT NULL,
    function_version INTEGER NOT NULL,
    backend          TEXT NOT NULL,
    input            TEXT NOT NULL,
    status           TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    usage            TEXT,
    attempt          INTEGER NOT NULL,
    retry_of         TEXT,
    idempotency_key  TEXT,
    triggered_by     TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
) WITHOUT ROWID;

INSERT INTO executions_by_id
    SELECT id, function, function_id, function_version, backend, input, status, output, error, usage, attempt,
           retry_of, idempotency_key, triggered_by, created_at, started_at, finished_at
    FROM executions;
DROP TABLE executions;
ALTER TABLE executions_by_id RENAME TO executions;

CREATE UNIQUE INDEX executions_by_idempotency_key ON executions (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_function ON executions (function, id);
CREATE INDEX executions_by_backend ON executions (backend, id);
CREATE INDEX executions_by_finished_at ON executions (finished_at, id) WHERE finished_at IS NOT NULL;
