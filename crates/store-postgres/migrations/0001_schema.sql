-- 0001: the whole schema of the dashboard on PostgreSQL, as SQLite's migrations 1–8 left it, plus what several
-- instances share: leases on executions, the instances, login sessions, the cluster's secret, and the event counter
-- that makes event ids follow commit order.
--
-- Ids are uuid, times timestamptz (microseconds, as the dashboard keeps them), JSON values text (exactly as
-- serde_json wrote them: jsonb would reorder keys), counts bigint.

CREATE TABLE functions (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL UNIQUE,
    description           text NOT NULL,
    backend               text NOT NULL,
    prompt                text,
    input_schema          text NOT NULL,
    config                text NOT NULL,
    timeout_secs          bigint,
    max_concurrency       bigint,
    tags                  text NOT NULL,
    metadata              text NOT NULL,
    version               bigint NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    approval_policy       text NOT NULL DEFAULT 'auto',
    approval_timeout_secs bigint,
    max_cost_usd          double precision,
    daily_cost_usd        double precision,
    daily_tokens          bigint
);

CREATE TABLE executions (
    id               uuid PRIMARY KEY,          -- newest first and the `before` cursor use this index
    function         text NOT NULL,
    function_id      uuid NOT NULL,
    function_version bigint NOT NULL,
    backend          text NOT NULL,
    input            text NOT NULL,
    status           text NOT NULL,
    output           text,
    error            text,
    usage            text,
    attempt          bigint NOT NULL,
    retry_of         uuid,
    idempotency_key  text,
    triggered_by     text,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    session_id       text,
    continues        uuid,
    prompt           text,
    instance         text,
    -- The instance that claimed it and until when its claim holds (renewed by that instance's heartbeat).
    lease_owner      text,
    lease_expires_at timestamptz,
    -- A cancel asked on another instance than the one running it, and by whom.
    cancel_requested boolean NOT NULL DEFAULT false,
    cancel_by        text
);
CREATE UNIQUE INDEX executions_by_idempotency_key ON executions (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_function ON executions (function, id);
CREATE INDEX executions_by_backend ON executions (backend, id);
CREATE INDEX executions_by_finished_at ON executions (finished_at, id) WHERE finished_at IS NOT NULL;
CREATE INDEX executions_by_session ON executions (session_id, id) WHERE session_id IS NOT NULL;
CREATE INDEX executions_by_caller ON executions (triggered_by, id) WHERE triggered_by IS NOT NULL;
CREATE INDEX executions_by_function_id ON executions (function_id, id);
-- What claims and lease recovery look at: the unfinished executions only.
CREATE INDEX executions_unfinished ON executions (id) INCLUDE (function_id, status, lease_owner, lease_expires_at)
    WHERE status IN ('queued', 'running', 'waiting');

CREATE TABLE logs (
    execution_id uuid NOT NULL,
    seq          bigint NOT NULL,
    ts           timestamptz NOT NULL,
    stream       text NOT NULL,
    message      text NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE items (
    execution_id uuid NOT NULL,
    seq          bigint NOT NULL,
    item_id      text NOT NULL,
    status       text NOT NULL,
    kind         text NOT NULL,
    ts           timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    body         text NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE UNIQUE INDEX items_by_item_id ON items (execution_id, item_id);

CREATE TABLE diffs (
    execution_id uuid PRIMARY KEY,
    diff         text NOT NULL
);

CREATE TABLE approvals (
    id           uuid PRIMARY KEY,
    execution_id uuid NOT NULL,
    function     text NOT NULL,
    backend      text NOT NULL,
    session_id   text,
    kind         text NOT NULL,
    summary      text NOT NULL,
    status       text NOT NULL,
    for_session  boolean NOT NULL,
    item_id      text,
    grant_key    text,
    requested_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    decided_by   text,
    decided_at   timestamptz,
    note         text,
    answers      text,
    details      text NOT NULL
);
CREATE INDEX approvals_pending ON approvals (id) WHERE status = 'pending';
CREATE INDEX approvals_by_execution ON approvals (execution_id, id);
-- A grant key is a whole command line, of any length, and a btree refuses a row over ~2.7 kB: the index holds its
-- md5, and a lookup compares both (`md5(grant_key) = md5($x) AND grant_key = $x`).
CREATE INDEX approvals_session_grants ON approvals (session_id, kind, md5(grant_key), id)
    WHERE status = 'approved' AND for_session;

CREATE TABLE events (
    id           bigint PRIMARY KEY,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL,
    execution_id uuid,
    function     text,
    backend      text,
    message      text NOT NULL,
    data         text NOT NULL
);
CREATE INDEX events_by_execution ON events (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX events_about_no_execution ON events (ts) WHERE execution_id IS NULL;

-- The last event id handed out. A transaction that records events takes this row's lock (UPDATE … RETURNING) as
-- its last step before COMMIT, so ids are handed out in commit order: a reader that has seen id N never later finds
-- a new event with an id ≤ N (the trait's promise), which a sequence would break between concurrent transactions.
CREATE TABLE event_counter (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_id  bigint NOT NULL
);
INSERT INTO event_counter (only_row, last_id) VALUES (true, 0);

-- The instances that share this database, as their heartbeats left them.
CREATE TABLE instances (
    id           text PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    running      bigint NOT NULL
);

-- Login sessions, by the SHA-256 of the cookie's value.
CREATE TABLE logins (
    id_hash    text PRIMARY KEY,
    token_name text NOT NULL,
    csrf       text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX logins_by_token ON logins (token_name, created_at);

-- The key of callback tokens, made once by the first instance and read by every other.
CREATE TABLE cluster_secret (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   bytea NOT NULL
);
