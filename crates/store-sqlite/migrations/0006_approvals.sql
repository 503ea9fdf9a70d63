-- 0006: approvals — an agent asking a person's permission, and what became of it — and each function's policy for
-- such requests.
--
-- `approvals` keeps a rowid, unlike the log and the transcript: a row carries the request's details (a command and
-- its cwd, or a whole diff: up to 256 KiB of JSON), and SQLite advises tables without a rowid only for small rows.
-- Its id is a UUID v7 as text, so id order is request order: pending ones are listed oldest first (`id`), all of them
-- newest first (`id DESC`). `details` and `answers` are JSON text; `for_session` is 0 or 1; times are UTC text of
-- fixed width, as everywhere. `details` comes last, so a row's small columns stay at its front.
--
-- The indexes are what its queries need and no more:
-- - `approvals_pending`: the inbox and the header's count read only pending approvals, which are few; a partial index
--   holds just them, in id order, and an approval leaves it when it is decided.
-- - `approvals_by_execution`: an execution's approvals (the status page, whether one is still pending when another
--   is decided, expiry when a run ends, retention).
-- - `approvals_session_grants`: the grant that answers a request again in a later turn of the session — only
--   approvals approved for the session, newest first within (session, kind, grant key).
--
-- `approval_policy` and `approval_timeout_secs` are columns of `functions`: every function made before keeps the
-- default, `auto` (the agent's own sandbox decides) and no timeout of its own (an hour). A new, empty table and two
-- columns with defaults: the migration copies nothing.

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY NOT NULL,
    execution_id TEXT NOT NULL,
    function     TEXT NOT NULL,
    backend      TEXT NOT NULL,
    session_id   TEXT,
    kind         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    status       TEXT NOT NULL,
    for_session  INTEGER NOT NULL,
    item_id      TEXT,
    grant_key    TEXT,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    note         TEXT,
    answers      TEXT,
    details      TEXT NOT NULL
);

CREATE INDEX approvals_pending ON approvals (id) WHERE status = 'pending';
CREATE INDEX approvals_by_execution ON approvals (execution_id, id);
CREATE INDEX approvals_session_grants ON approvals (session_id, kind, grant_key, id)
    WHERE status = 'approved' AND for_session = 1;

ALTER TABLE functions ADD COLUMN approval_policy TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE functions ADD COLUMN approval_timeout_secs INTEGER;
