//! Approvals in SQLite: a request stored with its events and the `running → waiting` it causes, the decision as a
//! compare-and-set on `pending` with the `waiting → running` it allows, and the reads (by id, the lists, the count of
//! pending ones, a session's grant).

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, CoreError, EventKind, ExecutionId,
    ExecutionStatus, NewEvent, NewItem, now,
};
use dashboard_store::{ApprovalChange, ApprovalQuery, ExecutionUpdate, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{Json, OpResult, SqlTime, parsed, sql_int, text};
use crate::events::record;
use crate::writer::WriteConnection;
use crate::{executions, items};

/// An approval's columns in [`from_row`]'s order; a macro so that the statements below are constants, which the
/// schema's test reads to check that each uses an index.
macro_rules! columns {
    () => {
        "id, execution_id, function, backend, session_id, kind, summary, status, for_session, item_id, \
         grant_key, requested_at, expires_at, decided_by, decided_at, note, answers, details"
    };
}

const GET: &str = concat!("SELECT ", columns!(), " FROM approvals WHERE id = ?1");
const EXISTS: &str = "SELECT 1 FROM approvals WHERE id = ?1";
const INSERT: &str = concat!(
    "INSERT INTO approvals (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
);
/// The compare-and-set: only a pending approval is decided.
const DECIDE: &str = "UPDATE approvals SET status = ?2, for_session = ?3, decided_by = ?4, decided_at = ?5, \
                      note = ?6, answers = ?7, session_id = ?8 WHERE id = ?1 AND status = 'pending'";
const STILL_PENDING: &str = "SELECT 1 FROM approvals WHERE execution_id = ?1 AND status = 'pending' LIMIT 1";
// The lists: each names only the filters in use, and `status = 'pending'` literally, so that the planner can use the
// partial index of pending approvals.
const PENDING: &str =
    concat!("SELECT ", columns!(), " FROM approvals WHERE status = 'pending' ORDER BY id LIMIT ?1");
const PENDING_OF_EXECUTION: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM approvals WHERE status = 'pending' AND execution_id = ?1 ORDER BY id LIMIT ?2"
);
const ALL: &str = concat!("SELECT ", columns!(), " FROM approvals ORDER BY id DESC LIMIT ?1");
const ALL_OF_EXECUTION: &str =
    concat!("SELECT ", columns!(), " FROM approvals WHERE execution_id = ?1 ORDER BY id DESC LIMIT ?2");
const COUNT_PENDING: &str = "SELECT COUNT(*) FROM approvals WHERE status = 'pending'";
/// `status` and `for_session` literally, as the partial index of grants says them.
const SESSION_GRANT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM approvals WHERE session_id = ?1 AND kind = ?2 AND grant_key = ?3 AND status = 'approved' \
     AND for_session = 1 ORDER BY id DESC LIMIT 1"
);

/// Every query of this module, for the schema's test that each uses an index (prune's delete is listed there).
#[cfg(test)]
pub(super) const QUERIES: &[&str] = &[
    GET,
    EXISTS,
    DECIDE,
    STILL_PENDING,
    PENDING,
    PENDING_OF_EXECUTION,
    ALL,
    ALL_OF_EXECUTION,
    COUNT_PENDING,
    SESSION_GRANT,
];

fn from_row(row: &Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: parsed(row, 0)?,
        execution_id: parsed(row, 1)?,
        function: row.get(2)?,
        backend: row.get(3)?,
        session_id: row.get(4)?,
        kind: parsed(row, 5)?,
        summary: row.get(6)?,
        status: parsed(row, 7)?,
        for_session: row.get(8)?,
        item_id: row.get(9)?,
        grant_key: row.get(10)?,
        requested_at: row.get::<_, SqlTime>(11)?.0,
        expires_at: row.get::<_, SqlTime>(12)?.0,
        decided_by: row.get(13)?,
        decided_at: row.get::<_, Option<SqlTime>>(14)?.map(|time| time.0),
        note: row.get(15)?,
        answers: row.get::<_, Option<Json<_>>>(16)?.map(|json| json.0),
        details: row.get::<_, Json<_>>(17)?.0,
    })
}

pub(super) fn get(connection: &Connection, id: ApprovalId) -> OpResult<Option<Approval>> {
    let approval = connection.prepare_cached(GET)?.query_row([text(id)], from_row).optional()?;
    Ok(approval)
}

fn exists(connection: &Connection, id: ApprovalId) -> OpResult<bool> {
    let found = connection.prepare_cached(EXISTS)?.query_row([text(id)], |_| Ok(())).optional()?;
    Ok(found.is_some())
}

/// Stores a new approval with its events, the `running → waiting` a pending one causes, and its item, as
/// `DashboardStore::create_approval` says; checks everything before it writes anything.
pub(super) fn create(
    connection: &WriteConnection<'_>,
    approval: Approval,
    item: Option<NewItem>,
) -> OpResult<ApprovalChange> {
    let execution_id = approval.execution_id;
    let execution = executions::get(connection, execution_id)?
        .ok_or_else(|| StoreError::execution_not_found(execution_id))?;
    if exists(connection, approval.id)? {
        let message = format!("an approval with id {} exists already", approval.id);
        return Err(CoreError::invalid_field("id", message).into());
    }
    let is_pending = approval.is_pending();
    if is_pending && !matches!(execution.status, ExecutionStatus::Running | ExecutionStatus::Waiting) {
        let mismatch =
            StoreError::StatusMismatch { expected: ExecutionStatus::Running, actual: execution.status };
        return Err(mismatch.into());
    }
    insert(connection, &approval)?;
    let mut events =
        vec![record(connection, NewEvent::for_approval(EventKind::ApprovalRequested, &approval))?];
    if !is_pending {
        events.push(record(connection, NewEvent::for_approval(EventKind::ApprovalDecided, &approval))?);
    }
    let execution = if is_pending && execution.status == ExecutionStatus::Running {
        let update = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Waiting);
        let recorded = executions::update(connection, execution_id, update)?;
        events.push(recorded.event);
        recorded.value
    } else {
        execution
    };
    let items = items::upsert_into_existing(connection, execution_id, item.into_iter().collect())?;
    Ok(ApprovalChange { approval, execution, events, items })
}

fn insert(connection: &Connection, approval: &Approval) -> OpResult<()> {
    connection.prepare_cached(INSERT)?.execute(params![
        text(approval.id),
        text(approval.execution_id),
        approval.function,
        approval.backend,
        approval.session_id,
        approval.kind.as_str(),
        approval.summary,
        approval.status.as_str(),
        approval.for_session,
        approval.item_id,
        approval.grant_key,
        SqlTime(approval.requested_at),
        SqlTime(approval.expires_at),
        approval.decided_by,
        approval.decided_at.map(SqlTime),
        approval.note,
        approval.answers.as_ref().map(Json),
        Json(&approval.details),
    ])?;
    Ok(())
}

/// Decides a pending approval, records `approval.decided`, moves its execution back to `running` when it waits on
/// nothing else, and upserts the item, as `DashboardStore::decide_approval` says.
pub(super) fn decide(
    connection: &WriteConnection<'_>,
    id: ApprovalId,
    decision: ApprovalDecision,
    item: Option<NewItem>,
) -> OpResult<ApprovalChange> {
    let stored = get(connection, id)?.ok_or_else(|| StoreError::approval_not_found(id))?;
    if !stored.is_pending() {
        return Err(StoreError::AlreadyDecided { existing: Box::new(stored) }.into());
    }
    if decision.status == ApprovalStatus::Pending {
        return Err(CoreError::invalid_field("status", "a decision cannot leave the approval pending").into());
    }
    let approval = decision.apply(&stored, now());
    let n_changed = connection.prepare_cached(DECIDE)?.execute(params![
        text(id),
        approval.status.as_str(),
        approval.for_session,
        approval.decided_by,
        approval.decided_at.map(SqlTime),
        approval.note,
        approval.answers.as_ref().map(Json),
        approval.session_id,
    ])?;
    if n_changed == 0 {
        // The writer runs one operation at a time and the approval was pending above: this cannot happen, but if it
        // did, the answer would be the compare-and-set's.
        return Err(StoreError::AlreadyDecided { existing: Box::new(stored) }.into());
    }
    let mut events = vec![record(connection, NewEvent::for_approval(EventKind::ApprovalDecided, &approval))?];
    let execution_id = approval.execution_id;
    let execution = executions::get(connection, execution_id)?
        .ok_or_else(|| StoreError::execution_not_found(execution_id))?;
    let execution =
        if execution.status == ExecutionStatus::Waiting && !still_pending(connection, execution_id)? {
            let update = ExecutionUpdate::new(ExecutionStatus::Waiting, ExecutionStatus::Running);
            let recorded = executions::update(connection, execution_id, update)?;
            events.push(recorded.event);
            recorded.value
        } else {
            execution
        };
    let items = items::upsert_into_existing(connection, execution_id, item.into_iter().collect())?;
    Ok(ApprovalChange { approval, execution, events, items })
}

/// Whether an approval of the execution is still pending.
fn still_pending(connection: &Connection, execution_id: ExecutionId) -> OpResult<bool> {
    let found =
        connection.prepare_cached(STILL_PENDING)?.query_row([text(execution_id)], |_| Ok(())).optional()?;
    Ok(found.is_some())
}

pub(super) fn list(connection: &Connection, query: &ApprovalQuery) -> OpResult<Vec<Approval>> {
    let limit = sql_int(query.limit.max(1));
    let approvals: rusqlite::Result<Vec<Approval>> = match (query.pending_only, query.execution) {
        (true, None) => connection.prepare_cached(PENDING)?.query_map([limit], from_row)?.collect(),
        (false, None) => connection.prepare_cached(ALL)?.query_map([limit], from_row)?.collect(),
        (true, Some(execution_id)) => connection
            .prepare_cached(PENDING_OF_EXECUTION)?
            .query_map(params![text(execution_id), limit], from_row)?
            .collect(),
        (false, Some(execution_id)) => connection
            .prepare_cached(ALL_OF_EXECUTION)?
            .query_map(params![text(execution_id), limit], from_row)?
            .collect(),
    };
    Ok(approvals?)
}

pub(super) fn count_pending(connection: &Connection) -> OpResult<u64> {
    let count: u64 = connection.prepare_cached(COUNT_PENDING)?.query_row([], |row| row.get(0))?;
    Ok(count)
}

pub(super) fn session_grant(
    connection: &Connection,
    session_id: &str,
    kind: ApprovalKind,
    grant_key: &str,
) -> OpResult<Option<Approval>> {
    let grant = connection
        .prepare_cached(SESSION_GRANT)?
        .query_row(params![session_id, kind.as_str(), grant_key], from_row)
        .optional()?;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_status_is_read_back_as_written() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        for kind in ApprovalKind::ALL {
            let back: ApprovalKind =
                connection.query_row("SELECT ?1", [kind.as_str()], |row| parsed(row, 0)).expect("a kind");
            assert_eq!(back, kind);
        }
        for status in ApprovalStatus::ALL {
            let back: ApprovalStatus =
                connection.query_row("SELECT ?1", [status.as_str()], |row| parsed(row, 0)).expect("a status");
            assert_eq!(back, status);
        }
    }
}
