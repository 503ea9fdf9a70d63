//! Schedules in PostgreSQL: create, look up, list, replace, delete — each write with its event — the due ones, and a
//! fire as a compare-and-set on the due time.
//!
//! Concurrency: a fire is one `UPDATE … WHERE enabled AND next_run_at = <due>`, so the row's lock decides between
//! instances firing the same due time at once: the others wait for the first to commit, then find the due time moved
//! on and change nothing. The fire's execution is inserted after that update, in the same transaction, so that an
//! execution that cannot be stored (a taken id or idempotency key) undoes the fire too.

use dashboard_core::{
    CoreError, EventKind, Execution, NewEvent, Overlap, Schedule, ScheduleId, Timestamp, now,
};
use dashboard_store::{FireAction, ScheduleFire, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::codec::{Columns, OpResult, bigint, json_text, sql_int, text, unreadable};
use crate::executions;
use crate::transaction::{Tx, row, rows};

/// A schedule's columns in [`from_row`]'s order; a macro so that the statements below are constants.
macro_rules! columns {
    () => {
        "id, function, cron, timezone, input, overlap, enabled, next_run_at, last_run_at, last_execution, skipped, \
         created_at, updated_at"
    };
}

const GET: &str = concat!("SELECT ", columns!(), " FROM schedules WHERE id = $1");
const LIST: &str = concat!("SELECT ", columns!(), " FROM schedules ORDER BY id");
/// Writes nothing on a taken id (waiting, when another transaction is inserting the same, for its outcome).
const INSERT: &str = concat!(
    "INSERT INTO schedules (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING RETURNING ",
    columns!()
);
/// The declaration, the next due time and `updated_at`; the history and `created_at` stay as stored.
const UPDATE: &str = concat!(
    "UPDATE schedules SET function = $2, cron = $3, timezone = $4, input = $5, overlap = $6, enabled = $7, \
     next_run_at = $8, updated_at = $9 WHERE id = $1 RETURNING ",
    columns!()
);
const DELETE: &str = concat!("DELETE FROM schedules WHERE id = $1 RETURNING ", columns!());
/// `enabled` literally, as the partial index of due schedules says it.
const DUE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2"
);
/// A fire that runs: the compare-and-set on `$2` (the due time), then the next due time `$3`, when it ran (`$4`) and
/// what (`$5`).
const FIRE_RUN: &str = concat!(
    "UPDATE schedules SET next_run_at = $3, last_run_at = $4, last_execution = $5 \
     WHERE id = $1 AND enabled AND next_run_at = $2 RETURNING ",
    columns!()
);
/// A fire that is skipped: the compare-and-set on `$2`, the next due time `$3`, one more skip.
const FIRE_SKIP: &str = concat!(
    "UPDATE schedules SET next_run_at = $3, skipped = skipped + 1 \
     WHERE id = $1 AND enabled AND next_run_at = $2 RETURNING ",
    columns!()
);

/// A schedule from the columns `columns!()` names, in that order.
fn from_row(row: &Row) -> OpResult<Schedule> {
    let columns = Columns(row);
    let overlap: &str = columns.get(5)?;
    let overlap = [Overlap::Skip, Overlap::Queue]
        .into_iter()
        .find(|known| known.as_str() == overlap)
        .ok_or_else(|| unreadable("schedules.overlap", format!("unknown overlap {overlap:?}")))?;
    Ok(Schedule {
        id: columns.id(0)?,
        function: columns.get(1)?,
        cron: columns.get(2)?,
        timezone: columns.get(3)?,
        input: columns.json(4)?,
        overlap,
        enabled: columns.get(6)?,
        next_run_at: columns.get(7)?,
        last_run_at: columns.get(8)?,
        last_execution: columns.id_option(9)?,
        skipped: columns.unsigned(10)?,
        created_at: columns.get(11)?,
        updated_at: columns.get(12)?,
    })
}

fn from_rows(rows: &[Row]) -> OpResult<Vec<Schedule>> {
    rows.iter().map(from_row).collect()
}

/// The schedule the row holds; [`StoreError::NotFound`] when there is none.
fn found(id: ScheduleId, found: Option<Row>) -> OpResult<Schedule> {
    from_row(&found.ok_or_else(|| StoreError::schedule_not_found(id))?)
}

pub(crate) async fn get(client: &impl GenericClient, id: ScheduleId) -> OpResult<Option<Schedule>> {
    row(client, GET, &[&id.as_uuid()]).await?.as_ref().map(from_row).transpose()
}

pub(crate) async fn list(client: &impl GenericClient) -> OpResult<Vec<Schedule>> {
    from_rows(&rows(client, LIST, &[]).await?)
}

pub(crate) async fn due(client: &impl GenericClient, at: Timestamp, limit: usize) -> OpResult<Vec<Schedule>> {
    from_rows(&rows(client, DUE, &[&at, &sql_int(limit.max(1))]).await?)
}

/// Stores a new schedule with `schedule.created`; returns it as stored (times at PostgreSQL's microseconds).
pub(crate) async fn create(tx: &mut Tx<'_>, schedule: Schedule) -> OpResult<Schedule> {
    let inserted = row(
        &tx.db,
        INSERT,
        &[
            &schedule.id.as_uuid(),
            &text(&schedule.function),
            &text(&schedule.cron),
            &text(&schedule.timezone),
            &json_text(&schedule.input)?,
            &schedule.overlap.as_str(),
            &schedule.enabled,
            &schedule.next_run_at,
            &schedule.last_run_at,
            &schedule.last_execution.map(|id| id.as_uuid()),
            &bigint("skipped", schedule.skipped)?,
            &schedule.created_at,
            &schedule.updated_at,
        ],
    )
    .await?;
    let Some(inserted) = inserted else {
        let message = format!("a schedule with id {} exists already", schedule.id);
        return Err(CoreError::invalid_field("id", message).into());
    };
    let schedule = from_row(&inserted)?;
    tx.record(NewEvent::for_schedule(EventKind::ScheduleCreated, &schedule));
    Ok(schedule)
}

/// Replaces the declaration of a stored schedule, with `schedule.updated`, as `DashboardStore::update_schedule` says.
pub(crate) async fn update(tx: &mut Tx<'_>, schedule: Schedule) -> OpResult<Schedule> {
    let updated = row(
        &tx.db,
        UPDATE,
        &[
            &schedule.id.as_uuid(),
            &text(&schedule.function),
            &text(&schedule.cron),
            &text(&schedule.timezone),
            &json_text(&schedule.input)?,
            &schedule.overlap.as_str(),
            &schedule.enabled,
            &schedule.next_run_at,
            &schedule.updated_at,
        ],
    )
    .await?;
    let schedule = found(schedule.id, updated)?;
    tx.record(NewEvent::for_schedule(EventKind::ScheduleUpdated, &schedule));
    Ok(schedule)
}

pub(crate) async fn delete(tx: &mut Tx<'_>, id: ScheduleId) -> OpResult<Schedule> {
    let schedule = found(id, row(&tx.db, DELETE, &[&id.as_uuid()]).await?)?;
    tx.record(NewEvent::for_schedule(EventKind::ScheduleDeleted, &schedule));
    Ok(schedule)
}

/// Fires a schedule for one due time, as `DashboardStore::fire_schedule` says: the schedule after the fire and the
/// execution it queued, or `None` when another fire (or a change) got there first and nothing was written. The
/// events are recorded with `tx`: `execution.queued` then `schedule.fired`, or `schedule.skipped`.
pub(crate) async fn fire(
    tx: &mut Tx<'_>,
    fire: ScheduleFire,
) -> OpResult<Option<(Schedule, Option<Execution>)>> {
    let ScheduleFire { id, due, next, action } = fire;
    match action {
        FireAction::Run(new) => {
            let at = now();
            let changed =
                row(&tx.db, FIRE_RUN, &[&id.as_uuid(), &due, &next, &at, &new.id.as_uuid()]).await?;
            let Some(changed) = changed else { return Ok(None) };
            let schedule = from_row(&changed)?;
            let execution = executions::create_at(tx, new, at).await?;
            tx.record(NewEvent::schedule_fired(&schedule, &execution, due));
            Ok(Some((schedule, Some(execution))))
        }
        FireAction::Skip { reason } => {
            let changed = row(&tx.db, FIRE_SKIP, &[&id.as_uuid(), &due, &next]).await?;
            let Some(changed) = changed else { return Ok(None) };
            let schedule = from_row(&changed)?;
            tx.record(NewEvent::schedule_skipped(&schedule, due, &reason));
            Ok(Some((schedule, None)))
        }
    }
}
