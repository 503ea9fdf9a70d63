//! Schedules in SQLite: create, look up, list, replace, delete — each write with its event — the due ones, and the
//! fire: a compare-and-set on the due time that stores the execution it queues, or the skip, in the same step.

use dashboard_core::{CoreError, EventKind, NewEvent, Overlap, Schedule, ScheduleId, Timestamp, now};
use dashboard_store::{FireAction, FiredSchedule, Recorded, ScheduleFire, StoreError};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{Json, OpResult, SqlTime, parsed, parsed_option, sql_int, text};
use crate::events::record;
use crate::executions;
use crate::writer::WriteConnection;

/// A schedule's columns in [`from_row`]'s order; a macro so that the statements below are constants, which the
/// schema's test reads to check that each uses an index.
macro_rules! columns {
    () => {
        "id, function, cron, timezone, input, overlap, enabled, next_run_at, last_run_at, last_execution, skipped, \
         created_at, updated_at"
    };
}

const GET: &str = concat!("SELECT ", columns!(), " FROM schedules WHERE id = ?1");
const EXISTS: &str = "SELECT 1 FROM schedules WHERE id = ?1";
pub(super) const LIST: &str = concat!("SELECT ", columns!(), " FROM schedules ORDER BY id");
const INSERT: &str = concat!(
    "INSERT INTO schedules (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);
/// Replaces the declaration, the next due time and `updated_at`; the history and `created_at` stay as stored.
const UPDATE: &str = "UPDATE schedules SET function = ?2, cron = ?3, timezone = ?4, input = ?5, overlap = ?6, \
                      enabled = ?7, next_run_at = ?8, updated_at = ?9 WHERE id = ?1";
const DELETE: &str = "DELETE FROM schedules WHERE id = ?1";
/// `enabled = 1` literally, as the partial index of due schedules says it; the index's entries end with the id, so
/// ties are broken without a sort.
const DUE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE enabled = 1 AND next_run_at <= ?1 ORDER BY next_run_at, id LIMIT ?2"
);
// The fire's compare-and-set, one statement per action: only an enabled schedule still due at the time being fired
// changes, and the one that changes it is the one that fires.
const FIRE_RUN: &str = "UPDATE schedules SET next_run_at = ?2, last_run_at = ?4, last_execution = ?5 \
                        WHERE id = ?1 AND enabled = 1 AND next_run_at = ?3";
const FIRE_SKIP: &str = "UPDATE schedules SET next_run_at = ?2, skipped = skipped + 1 \
                         WHERE id = ?1 AND enabled = 1 AND next_run_at = ?3";

/// Every query of this module, for the schema's test that each uses an index.
#[cfg(test)]
pub(super) const QUERIES: &[&str] = &[GET, EXISTS, UPDATE, DELETE, DUE, FIRE_RUN, FIRE_SKIP];

fn from_row(row: &Row<'_>) -> rusqlite::Result<Schedule> {
    Ok(Schedule {
        id: parsed(row, 0)?,
        function: row.get(1)?,
        cron: row.get(2)?,
        timezone: row.get(3)?,
        input: row.get::<_, Json<_>>(4)?.0,
        overlap: overlap_from_row(row, 5)?,
        enabled: row.get(6)?,
        next_run_at: row.get::<_, Option<SqlTime>>(7)?.map(|time| time.0),
        last_run_at: row.get::<_, Option<SqlTime>>(8)?.map(|time| time.0),
        last_execution: parsed_option(row, 9)?,
        skipped: row.get(10)?,
        created_at: row.get::<_, SqlTime>(11)?.0,
        updated_at: row.get::<_, SqlTime>(12)?.0,
    })
}

/// Reads an overlap stored as its API text (`skip`, `queue`).
fn overlap_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<Overlap> {
    let stored: String = row.get(index)?;
    [Overlap::Skip, Overlap::Queue].into_iter().find(|overlap| overlap.as_str() == stored).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown overlap {stored:?}").into(),
        )
    })
}

pub(super) fn get(connection: &Connection, id: ScheduleId) -> OpResult<Option<Schedule>> {
    let schedule = connection.prepare_cached(GET)?.query_row([text(id)], from_row).optional()?;
    Ok(schedule)
}

pub(super) fn list(connection: &Connection) -> OpResult<Vec<Schedule>> {
    let schedules = connection.prepare_cached(LIST)?.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(schedules)
}

pub(super) fn due(connection: &Connection, at: Timestamp, limit: usize) -> OpResult<Vec<Schedule>> {
    let schedules = connection
        .prepare_cached(DUE)?
        .query_map(params![SqlTime(at), sql_int(limit.max(1))], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(schedules)
}

/// Stores a new schedule with `schedule.created`; a schedule with its id is refused, naming `id`.
pub(super) fn create(connection: &WriteConnection<'_>, schedule: Schedule) -> OpResult<Recorded<Schedule>> {
    let found = connection.prepare_cached(EXISTS)?.query_row([text(schedule.id)], |_| Ok(())).optional()?;
    if found.is_some() {
        let message = format!("a schedule with id {} exists already", schedule.id);
        return Err(CoreError::invalid_field("id", message).into());
    }
    connection.prepare_cached(INSERT)?.execute(params![
        text(schedule.id),
        schedule.function,
        schedule.cron,
        schedule.timezone,
        Json(&schedule.input),
        schedule.overlap.as_str(),
        schedule.enabled,
        schedule.next_run_at.map(SqlTime),
        schedule.last_run_at.map(SqlTime),
        schedule.last_execution.map(text),
        sql_int(schedule.skipped),
        SqlTime(schedule.created_at),
        SqlTime(schedule.updated_at),
    ])?;
    let event = record(connection, NewEvent::for_schedule(EventKind::ScheduleCreated, &schedule))?;
    Ok(Recorded { value: schedule, event })
}

/// Replaces a schedule's declaration with `schedule.updated`, keeping its history and creation time as stored.
pub(super) fn update(connection: &WriteConnection<'_>, schedule: Schedule) -> OpResult<Recorded<Schedule>> {
    let stored = get(connection, schedule.id)?.ok_or_else(|| StoreError::schedule_not_found(schedule.id))?;
    let schedule = Schedule {
        created_at: stored.created_at,
        last_run_at: stored.last_run_at,
        last_execution: stored.last_execution,
        skipped: stored.skipped,
        ..schedule
    };
    connection.prepare_cached(UPDATE)?.execute(params![
        text(schedule.id),
        schedule.function,
        schedule.cron,
        schedule.timezone,
        Json(&schedule.input),
        schedule.overlap.as_str(),
        schedule.enabled,
        schedule.next_run_at.map(SqlTime),
        SqlTime(schedule.updated_at),
    ])?;
    let event = record(connection, NewEvent::for_schedule(EventKind::ScheduleUpdated, &schedule))?;
    Ok(Recorded { value: schedule, event })
}

/// Deletes a schedule with `schedule.deleted`; the executions it fired stay.
pub(super) fn delete(connection: &WriteConnection<'_>, id: ScheduleId) -> OpResult<Recorded<Schedule>> {
    let schedule = get(connection, id)?.ok_or_else(|| StoreError::schedule_not_found(id))?;
    connection.prepare_cached(DELETE)?.execute([text(id)])?;
    let event = record(connection, NewEvent::for_schedule(EventKind::ScheduleDeleted, &schedule))?;
    Ok(Recorded { value: schedule, event })
}

/// Fires a schedule for one due time, as `DashboardStore::fire_schedule` says: the compare-and-set first, so that a
/// loser reads and writes nothing more; then the execution, stored as `create_execution` stores it (should that be
/// refused, the operation fails and its savepoint undoes the compare-and-set too), and the schedule's event.
pub(super) fn fire(connection: &WriteConnection<'_>, fire: ScheduleFire) -> OpResult<Option<FiredSchedule>> {
    let id = text(fire.id);
    let (due, next) = (SqlTime(fire.due), fire.next.map(SqlTime));
    let n_changed = match &fire.action {
        FireAction::Run(execution) => connection.prepare_cached(FIRE_RUN)?.execute(params![
            id,
            next,
            due,
            SqlTime(now()),
            text(execution.id)
        ])?,
        FireAction::Skip { .. } => connection.prepare_cached(FIRE_SKIP)?.execute(params![id, next, due])?,
    };
    if n_changed == 0 {
        return Ok(None);
    }
    let fired = match fire.action {
        FireAction::Run(execution) => {
            let queued = executions::create(connection, execution)?;
            let schedule =
                get(connection, fire.id)?.ok_or_else(|| StoreError::schedule_not_found(fire.id))?;
            let event = record(connection, NewEvent::schedule_fired(&schedule, &queued.value, fire.due))?;
            FiredSchedule { schedule, execution: Some(queued.value), events: vec![queued.event, event] }
        }
        FireAction::Skip { reason } => {
            let schedule =
                get(connection, fire.id)?.ok_or_else(|| StoreError::schedule_not_found(fire.id))?;
            let event = record(connection, NewEvent::schedule_skipped(&schedule, fire.due, &reason))?;
            FiredSchedule { schedule, execution: None, events: vec![event] }
        }
    };
    Ok(Some(fired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_overlap_is_read_back_as_written() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        for overlap in [Overlap::Skip, Overlap::Queue] {
            let back = connection
                .query_row("SELECT ?1", [overlap.as_str()], |row| overlap_from_row(row, 0))
                .expect("an overlap");
            assert_eq!(back, overlap);
        }
        let unknown = connection.query_row("SELECT 'sometimes'", [], |row| overlap_from_row(row, 0));
        assert!(unknown.is_err());
    }
}
