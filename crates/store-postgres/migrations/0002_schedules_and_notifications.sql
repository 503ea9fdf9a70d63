-- 0002: schedules — a function triggered by a cron expression — and the notification outbox, the deliveries of
-- recorded events to the receivers of `[[notifications]]`, written in the same transaction as their event. The same
-- tables as SQLite's migration 9, in PostgreSQL's types: ids uuid, times timestamptz, `input` and `event` JSON text
-- (as serde_json wrote them, see 0001), `enabled` boolean, counts bigint.
--
-- `event_id` is the event's id in `events`, and `event` the event as recorded (serde of `dashboard_core::Event`), so a
-- delivery outlives its event when events are pruned. `execution_id` is the event's execution, for the list's
-- filter. `lease_owner` and `lease_expires_at` are the claim of the instance sending it.
--
-- The indexes are what the loops read:
-- - `schedules_due`: the enabled schedules by due time (the scheduler's tick, earliest first).
-- - `notification_deliveries_due`: the pending deliveries by their next attempt (the sender's claim); a delivery
--   leaves it when it is delivered or given up.
-- - `notification_deliveries_finished`: the finished ones by when they finished (retention).
-- - `notification_deliveries_by_execution`: the deliveries of one execution's events, newest first (the list's filter).

CREATE TABLE schedules (
    id             uuid PRIMARY KEY,
    function       text NOT NULL,
    cron           text NOT NULL,
    timezone       text NOT NULL,
    input          text NOT NULL,
    overlap        text NOT NULL,
    enabled        boolean NOT NULL,
    next_run_at    timestamptz,
    last_run_at    timestamptz,
    last_execution uuid,
    skipped        bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at, id) WHERE enabled;

CREATE TABLE notification_deliveries (
    id               uuid PRIMARY KEY,          -- UUID v7: newest first and the `before` cursor use this index
    notification     text NOT NULL,
    event_id         bigint NOT NULL,
    event            text NOT NULL,
    execution_id     uuid,
    status           text NOT NULL,
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_error       text,
    response_status  bigint,
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX notification_deliveries_finished ON notification_deliveries (finished_at)
    WHERE status IN ('delivered', 'failed');
CREATE INDEX notification_deliveries_by_execution ON notification_deliveries (execution_id, id)
    WHERE execution_id IS NOT NULL;
