-- 0001: the first schema of the SQLite store.
--
-- Migrations are append-only: a released file is never edited; a change is a new file with the next number, listed
-- in `src/sqlite/schema.rs`. `PRAGMA user_version` records how many have been applied.
--
-- Ids are UUID v7 text (lowercase, hyphenated), so id order is creation order and "newest first" is `id DESC`.
-- Times are UTC text of fixed width (`2026-11-24T03:41:05.123456Z`), so text order is time order.
-- JSON values (inputs, outputs, schemas, tags) are stored as JSON text.

CREATE TABLE functions (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL UNIQUE,       -- its unique index also serves "sorted by name"
    description     TEXT NOT NULL,
    backend         TEXT NOT NULL,
    prompt          TEXT,
    input_schema    TEXT NOT NULL,
    config          TEXT NOT NULL,
    timeout_secs    INTEGER,
    max_concurrency INTEGER,
    tags            TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY NOT NULL, -- newest first and the `before` cursor use this index
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
    idempotency_key  TEXT UNIQUE,
    triggered_by     TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);
-- The list filters, each newest first within its value; `status` also serves the unfinished list and the counts.
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_function ON executions (function, id);
CREATE INDEX executions_by_backend ON executions (backend, id);
-- Retention: finished executions, oldest finished first.
CREATE INDEX executions_by_finished_at ON executions (finished_at, id) WHERE finished_at IS NOT NULL;

CREATE TABLE logs (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    ts           TEXT NOT NULL,
    stream       TEXT NOT NULL,
    message      TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)             -- reads after a seq, and the next seq, use this index
);

CREATE TABLE events (
    -- AUTOINCREMENT: an id is never handed out twice, even after the newest events were pruned.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    ts           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    execution_id TEXT,
    function     TEXT,
    backend      TEXT,
    message      TEXT NOT NULL,
    data         TEXT NOT NULL
);
-- Retention: the events of a pruned execution, and old events about no execution.
CREATE INDEX events_by_execution ON events (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX events_about_no_execution ON events (ts) WHERE execution_id IS NULL;
