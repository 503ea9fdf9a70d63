-- 0009: schedules — a function triggered by a cron expression — and the notification outbox, the deliveries of
-- recorded events to the receivers of `[[notifications]]`, written in the same transaction as their event.
--
-- Both tables have no rowid: their ids are UUIDs as text (v7 for deliveries, so id order is creation order; v7 or v8
-- for schedules), and every read is by id or through the partial index of what is due. Times are UTC text of fixed
-- width, as everywhere; `input` and `event` are JSON text; `enabled` is 0 or 1.
--
-- The indexes are what the loops read, and no more:
-- - `schedules_due`: the enabled schedules by due time (the scheduler's tick, earliest first; id breaks ties, as the
--   primary key follows every entry of an index of a table without rowid).
-- - `notification_deliveries_due`: the pending deliveries by their next attempt (the sender's claim); a delivery
--   leaves it when it is delivered or given up.
--
-- `event_id` is the event's id in `events`, and `event` the event as recorded (serde of `dashboard_core::Event`), so a
-- delivery outlives its event when events are pruned. `execution_id` is the event's execution, for the list's
-- filter. `lease_owner` and `lease_expires_at` are the sender's claim. New, empty tables: the migration copies
-- nothing. The PostgreSQL importer reads this schema.

CREATE TABLE schedules (
    id             TEXT PRIMARY KEY,
    function       TEXT NOT NULL,
    cron           TEXT NOT NULL,
    timezone       TEXT NOT NULL,
    input          TEXT NOT NULL,
    overlap        TEXT NOT NULL,
    enabled        INTEGER NOT NULL,
    next_run_at    TEXT,
    last_run_at    TEXT,
    last_execution TEXT,
    skipped        INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled = 1;

CREATE TABLE notification_deliveries (
    id               TEXT PRIMARY KEY,
    notification     TEXT NOT NULL,
    event_id         INTEGER NOT NULL,
    event            TEXT NOT NULL,
    execution_id     TEXT,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    response_status  INTEGER,
    created_at       TEXT NOT NULL,
    finished_at      TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT
) WITHOUT ROWID;

CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
-- Retention deletes the finished deliveries by when they finished; the list filters by execution, newest first.
CREATE INDEX notification_deliveries_finished ON notification_deliveries (finished_at) WHERE status <> 'pending';
CREATE INDEX notification_deliveries_by_execution ON notification_deliveries (execution_id, id)
    WHERE execution_id IS NOT NULL;
