//! Approvals in PostgreSQL: a request stored with its events and the `running → waiting` it causes, the decision as a
//! compare-and-set on `pending` with the `waiting → running` it allows, and the reads (by id, the lists, the count of
//! pending ones, a session's grant).
//!
//! Locks are always taken execution first, then approval — a request locks its execution before it inserts, a
//! decision reads which execution its approval belongs to, locks that, then the approval — so that two operations on
//! one execution never wait on each other in a cycle (pruning, too, locks executions before it deletes approvals).

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, CoreError, EventKind,
    ExecutionStatus, NewEvent, NewItem, now,
};
use dashboard_store::{ApprovalChange, ApprovalQuery, ExecutionUpdate, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::codec::{Columns, OpResult, json_text, sql_int, text, text_option};
use crate::transaction::{Tx, execute, one, row, rows};
use crate::{executions, items};

/// An approval's columns in [`from_row`]'s order; a macro so that the statements below are constants.
macro_rules! columns {
    () => {
        "id, execution_id, function, backend, session_id, kind, summary, status, for_session, item_id, \
         grant_key, requested_at, expires_at, decided_by, decided_at, note, answers, details"
    };
}

const GET: &str = concat!("SELECT ", columns!(), " FROM approvals WHERE id = $1");
const GET_FOR_UPDATE: &str = concat!("SELECT ", columns!(), " FROM approvals WHERE id = $1 FOR UPDATE");
const EXECUTION_OF: &str = "SELECT execution_id FROM approvals WHERE id = $1";
const EXISTS: &str = "SELECT 1 FROM approvals WHERE id = $1";
/// Writes nothing on a taken id (waiting for another transaction inserting the same one, for its outcome).
const INSERT: &str = concat!(
    "INSERT INTO approvals (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
     ON CONFLICT DO NOTHING"
);
/// The compare-and-set: only a pending approval is decided.
const DECIDE: &str = "UPDATE approvals SET status = $2, for_session = $3, decided_by = $4, decided_at = $5, \
                      note = $6, answers = $7, session_id = $8 WHERE id = $1 AND status = 'pending'";
const STILL_PENDING: &str = "SELECT 1 FROM approvals WHERE execution_id = $1 AND status = 'pending' LIMIT 1";
// The lists: each names only the filters in use, and `status = 'pending'` literally, so that the planner can use the
// partial index of pending approvals.
const PENDING: &str =
    concat!("SELECT ", columns!(), " FROM approvals WHERE status = 'pending' ORDER BY id LIMIT $1");
const PENDING_OF_EXECUTION: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM approvals WHERE status = 'pending' AND execution_id = $1 ORDER BY id LIMIT $2"
);
const ALL: &str = concat!("SELECT ", columns!(), " FROM approvals ORDER BY id DESC LIMIT $1");
const ALL_OF_EXECUTION: &str =
    concat!("SELECT ", columns!(), " FROM approvals WHERE execution_id = $1 ORDER BY id DESC LIMIT $2");
const COUNT_PENDING: &str = "SELECT COUNT(*) FROM approvals WHERE status = 'pending'";
/// `status` and `for_session` literally, as the partial index of grants says them, and the key by its md5 as the
/// index holds it (a key may be too long for a btree), then by itself.
const SESSION_GRANT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM approvals WHERE session_id = $1 AND kind = $2 AND md5(grant_key) = md5($3::text) AND grant_key = $3 \
     AND status = 'approved' AND for_session ORDER BY id DESC LIMIT 1"
);

fn from_row(row: &Row) -> OpResult<Approval> {
    let columns = Columns(row);
    Ok(Approval {
        id: columns.id(0)?,
        execution_id: columns.id(1)?,
        function: columns.get(2)?,
        backend: columns.get(3)?,
        session_id: columns.get(4)?,
        kind: columns.parsed(5)?,
        summary: columns.get(6)?,
        status: columns.parsed(7)?,
        for_session: columns.get(8)?,
        item_id: columns.get(9)?,
        grant_key: columns.get(10)?,
        requested_at: columns.get(11)?,
        expires_at: columns.get(12)?,
        decided_by: columns.get(13)?,
        decided_at: columns.get(14)?,
        note: columns.get(15)?,
        answers: columns.json_option(16)?,
        details: columns.json(17)?,
    })
}

fn from_rows(rows: &[Row]) -> OpResult<Vec<Approval>> {
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(client: &impl GenericClient, id: ApprovalId) -> OpResult<Option<Approval>> {
    row(client, GET, &[&id.as_uuid()]).await?.as_ref().map(from_row).transpose()
}

/// Stores a new approval with its events, the `running → waiting` a pending one causes, and its item, as
/// `DashboardStore::create_approval` says; checks everything before it writes anything.
pub(crate) async fn create(
    tx: &mut Tx<'_>,
    approval: Approval,
    item: Option<NewItem>,
) -> OpResult<ApprovalChange> {
    let execution_id = approval.execution_id;
    let execution = executions::get_for_update(tx, execution_id).await?;
    if row(&tx.db, EXISTS, &[&approval.id.as_uuid()]).await?.is_some() {
        return Err(taken(approval.id));
    }
    let is_pending = approval.is_pending();
    if is_pending && !matches!(execution.status, ExecutionStatus::Running | ExecutionStatus::Waiting) {
        let mismatch =
            StoreError::StatusMismatch { expected: ExecutionStatus::Running, actual: execution.status };
        return Err(mismatch.into());
    }
    if insert(tx, &approval).await? == 0 {
        // Another instance inserted the same id between the look above and the insert.
        return Err(taken(approval.id));
    }
    tx.record(NewEvent::for_approval(EventKind::ApprovalRequested, &approval));
    if !is_pending {
        tx.record(NewEvent::for_approval(EventKind::ApprovalDecided, &approval));
    }
    let execution = if is_pending && execution.status == ExecutionStatus::Running {
        let update = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Waiting);
        executions::update(tx, execution_id, update).await?
    } else {
        execution
    };
    let items = items::upsert_into_locked(tx, execution_id, item.into_iter().collect()).await?;
    // The events are filled in by the caller from the commit.
    Ok(ApprovalChange { approval, execution, events: Vec::new(), items })
}

/// The refusal of an approval whose id exists already.
fn taken(id: ApprovalId) -> crate::codec::OpError {
    CoreError::invalid_field("id", format!("an approval with id {id} exists already")).into()
}

async fn insert(tx: &Tx<'_>, approval: &Approval) -> OpResult<u64> {
    execute(
        &tx.db,
        INSERT,
        &[
            &approval.id.as_uuid(),
            &approval.execution_id.as_uuid(),
            &text(&approval.function),
            &text(&approval.backend),
            &text_option(approval.session_id.as_deref()),
            &approval.kind.as_str(),
            &text(&approval.summary),
            &approval.status.as_str(),
            &approval.for_session,
            &text_option(approval.item_id.as_deref()),
            &text_option(approval.grant_key.as_deref()),
            &approval.requested_at,
            &approval.expires_at,
            &text_option(approval.decided_by.as_deref()),
            &approval.decided_at,
            &text_option(approval.note.as_deref()),
            &approval.answers.as_ref().map(json_text).transpose()?,
            &json_text(&approval.details)?,
        ],
    )
    .await
}

/// Decides a pending approval, records `approval.decided`, moves its execution back to `running` when it waits on
/// nothing else, and upserts the item, as `DashboardStore::decide_approval` says.
pub(crate) async fn decide(
    tx: &mut Tx<'_>,
    id: ApprovalId,
    decision: ApprovalDecision,
    item: Option<NewItem>,
) -> OpResult<ApprovalChange> {
    let found = row(&tx.db, EXECUTION_OF, &[&id.as_uuid()]).await?;
    let execution_id: Uuid = found.ok_or_else(|| StoreError::approval_not_found(id))?.try_get(0)?;
    let execution = executions::get_for_update(tx, execution_id.into()).await?;
    let stored = row(&tx.db, GET_FOR_UPDATE, &[&id.as_uuid()]).await?;
    let stored = from_row(&stored.ok_or_else(|| StoreError::approval_not_found(id))?)?;
    if !stored.is_pending() {
        return Err(StoreError::AlreadyDecided { existing: Box::new(stored) }.into());
    }
    if decision.status == ApprovalStatus::Pending {
        return Err(CoreError::invalid_field("status", "a decision cannot leave the approval pending").into());
    }
    let approval = decision.apply(&stored, now());
    let n_changed = execute(
        &tx.db,
        DECIDE,
        &[
            &id.as_uuid(),
            &approval.status.as_str(),
            &approval.for_session,
            &text_option(approval.decided_by.as_deref()),
            &approval.decided_at,
            &text_option(approval.note.as_deref()),
            &approval.answers.as_ref().map(json_text).transpose()?,
            &text_option(approval.session_id.as_deref()),
        ],
    )
    .await?;
    if n_changed == 0 {
        // The row is locked and was pending above: this cannot happen, but if it did, the answer would be the
        // compare-and-set's.
        return Err(StoreError::AlreadyDecided { existing: Box::new(stored) }.into());
    }
    tx.record(NewEvent::for_approval(EventKind::ApprovalDecided, &approval));
    let is_waiting_on_nothing = execution.status == ExecutionStatus::Waiting
        && row(&tx.db, STILL_PENDING, &[&execution_id]).await?.is_none();
    let execution = if is_waiting_on_nothing {
        let update = ExecutionUpdate::new(ExecutionStatus::Waiting, ExecutionStatus::Running);
        executions::update(tx, execution.id, update).await?
    } else {
        execution
    };
    let items = items::upsert_into_locked(tx, execution.id, item.into_iter().collect()).await?;
    Ok(ApprovalChange { approval, execution, events: Vec::new(), items })
}

pub(crate) async fn list(client: &impl GenericClient, query: &ApprovalQuery) -> OpResult<Vec<Approval>> {
    let limit = sql_int(query.limit.max(1));
    let found = match (query.pending_only, query.execution) {
        (true, None) => rows(client, PENDING, &[&limit]).await?,
        (false, None) => rows(client, ALL, &[&limit]).await?,
        (true, Some(execution_id)) => {
            rows(client, PENDING_OF_EXECUTION, &[&execution_id.as_uuid(), &limit]).await?
        }
        (false, Some(execution_id)) => {
            rows(client, ALL_OF_EXECUTION, &[&execution_id.as_uuid(), &limit]).await?
        }
    };
    from_rows(&found)
}

pub(crate) async fn count_pending(client: &impl GenericClient) -> OpResult<u64> {
    Columns(&one(client, COUNT_PENDING, &[]).await?).unsigned(0)
}

pub(crate) async fn session_grant(
    client: &impl GenericClient,
    session_id: &str,
    kind: ApprovalKind,
    grant_key: &str,
) -> OpResult<Option<Approval>> {
    let found = row(client, SESSION_GRANT, &[&text(session_id), &kind.as_str(), &text(grant_key)]).await?;
    found.as_ref().map(from_row).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PostgresOptions, PostgresStore, testing};

    /// 20,000 approvals of 200 sessions approved for the session, each on its own long command.
    const MANY_GRANTS: &str = "
        INSERT INTO approvals (id, execution_id, function, backend, session_id, kind, summary, status, for_session,
                               grant_key, requested_at, expires_at, details)
        SELECT gen_random_uuid(), gen_random_uuid(), 'f', 'demo', 'thread-' || (n % 200), 'command', 'a command',
               'approved', true, repeat(md5(n::text), 100), now(), now() + interval '1 hour', '{}'
        FROM generate_series(1, 20000) AS n;
        ANALYZE approvals;";

    #[tokio::test]
    async fn a_session_grant_is_looked_up_through_the_index_of_md5s() {
        let Some(url) = testing::database("store_grant_plan").await else { return };
        let store =
            PostgresStore::connect(PostgresOptions::new(&url)).await.expect("a store on the test database");
        let client = store.client().await.expect("a connection");
        client.batch_execute(MANY_GRANTS).await.expect("20,000 grants");
        let key = "x".repeat(10_000);
        let rows = client
            .query(&format!("EXPLAIN {SESSION_GRANT}"), &[&"thread-7", &"command", &key])
            .await
            .expect("a plan");
        let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("approvals_session_grants"), "the index of grants is not used:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
}
