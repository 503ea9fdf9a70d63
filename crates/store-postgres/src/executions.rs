//! Executions in PostgreSQL: create with an idempotency key, look up, list with filters and keyset pages, and the
//! status compare-and-set — each write with its event — the agent's session id, and the run's diff (a table of its
//! own).
//!
//! Concurrency: every change of an execution first locks its row (`FOR UPDATE`), so a compare-and-set holds across
//! instances, and log and item appends (which lock it too) number without gaps. A start that names its instance also
//! needs the execution's lease: free, or its own and live (see [`update`]). A repeated idempotency key is caught
//! by the unique index, also when two instances insert it at once: the second waits for the first to commit, then
//! finds its execution.

use std::collections::BTreeMap;

use dashboard_core::{CoreError, Execution, ExecutionId, ExecutionStatus, NewEvent, Timestamp, now};
use dashboard_store::{
    ExecutionPage, ExecutionQuery, ExecutionUpdate, NewExecution, StatusCounts, StoreError,
};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{Columns, OpResult, json_text, sql_int, text, text_option};
use crate::transaction::{Tx, execute, row, rows};

/// An execution's columns in [`from_row`]'s order; a macro so that the statements below (and those of
/// `cluster.rs`) are constants.
macro_rules! columns {
    () => {
        "id, function, function_id, function_version, backend, input, status, output, error, usage, attempt, \
         retry_of, idempotency_key, triggered_by, created_at, started_at, finished_at, session_id, continues, \
         prompt, instance"
    };
}
pub(crate) use columns;

const GET: &str = concat!("SELECT ", columns!(), " FROM executions WHERE id = $1");
/// The row locked for a change: the compare-and-set and the numbering of logs and items happen under this lock.
const GET_FOR_UPDATE: &str = concat!("SELECT ", columns!(), " FROM executions WHERE id = $1 FOR UPDATE");
const LOCK: &str = "SELECT 1 FROM executions WHERE id = $1 FOR UPDATE";
const BY_IDEMPOTENCY_KEY: &str =
    concat!("SELECT ", columns!(), " FROM executions WHERE idempotency_key = $1");
const EXISTS: &str = "SELECT 1 FROM executions WHERE id = $1";
/// Writes nothing on a taken id or idempotency key (waiting, when another transaction is inserting the same, for its
/// outcome); the caller then finds out which.
const INSERT: &str = concat!(
    "INSERT INTO executions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
     ON CONFLICT DO NOTHING"
);
const UPDATE: &str = "UPDATE executions SET status = $2, output = $3, error = $4, usage = $5, started_at = $6, \
                      finished_at = $7, instance = $8 WHERE id = $1";
/// A start by instance `$2` takes the execution's lease when it is free, or its own and live: `lease_owner = $2`, and
/// the lease's end kept while live, else now — so that its owner's heartbeat renews it, or the others find it ended.
/// Changes nothing (and the start is refused) under another instance's lease or its own ended one. "Now" is the
/// clock's, not the transaction's start: a lease that ended while the start waited for the row's lock has ended.
const TAKE_LEASE: &str = "UPDATE executions \
     SET lease_owner = $2, lease_expires_at = GREATEST(lease_expires_at, clock_timestamp()) \
     WHERE id = $1 AND (lease_owner IS NULL OR (lease_owner = $2 AND lease_expires_at > clock_timestamp()))";
const UPSERT_DIFF: &str = "INSERT INTO diffs (execution_id, diff) VALUES ($1, $2) \
                           ON CONFLICT (execution_id) DO UPDATE SET diff = excluded.diff";
const SET_SESSION: &str =
    concat!("UPDATE executions SET session_id = $2 WHERE id = $1 RETURNING ", columns!());
const GET_DIFF: &str = "SELECT diff FROM diffs WHERE execution_id = $1";
/// `status IN (…)` literally, as the partial index of unfinished executions says it.
const UNFINISHED: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM executions WHERE status IN ('queued', 'running', 'waiting') ORDER BY id"
);
const COUNT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM executions GROUP BY status";

/// An execution from the columns `columns!()` names, in that order.
pub(crate) fn from_row(row: &Row) -> OpResult<Execution> {
    let columns = Columns(row);
    Ok(Execution {
        id: columns.id(0)?,
        function: columns.get(1)?,
        function_id: columns.id(2)?,
        function_version: columns.unsigned(3)?,
        backend: columns.get(4)?,
        input: columns.json(5)?,
        status: columns.parsed(6)?,
        output: columns.json_option(7)?,
        error: columns.get(8)?,
        usage: columns.json_option(9)?,
        attempt: columns.unsigned(10)?,
        retry_of: columns.id_option(11)?,
        idempotency_key: columns.get(12)?,
        triggered_by: columns.get(13)?,
        created_at: columns.get(14)?,
        started_at: columns.get(15)?,
        finished_at: columns.get(16)?,
        session_id: columns.get(17)?,
        continues: columns.id_option(18)?,
        prompt: columns.get(19)?,
        instance: columns.get(20)?,
    })
}

fn from_rows(rows: &[Row]) -> OpResult<Vec<Execution>> {
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(client: &impl GenericClient, id: ExecutionId) -> OpResult<Option<Execution>> {
    row(client, GET, &[&id.as_uuid()]).await?.as_ref().map(from_row).transpose()
}

/// The execution, its row locked until the transaction ends; [`StoreError::NotFound`] when there is none.
pub(crate) async fn get_for_update(tx: &Tx<'_>, id: ExecutionId) -> OpResult<Execution> {
    let found = row(&tx.db, GET_FOR_UPDATE, &[&id.as_uuid()]).await?;
    let found = found.ok_or_else(|| StoreError::execution_not_found(id))?;
    from_row(&found)
}

/// Locks the execution's row until the transaction ends, so that the seqs of its logs and items read next stay the
/// last ones; [`StoreError::NotFound`] when there is none.
pub(crate) async fn lock(tx: &Tx<'_>, id: ExecutionId) -> OpResult<()> {
    match row(&tx.db, LOCK, &[&id.as_uuid()]).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::execution_not_found(id).into()),
    }
}

pub(crate) async fn create(tx: &mut Tx<'_>, new: NewExecution) -> OpResult<Execution> {
    create_at(tx, new, now()).await
}

/// Stores a new execution created at `created_at`, with its `execution.queued` event (see
/// `DashboardStore::create_execution`); a schedule's fire stores its execution through it, made at the fire's time.
pub(crate) async fn create_at(
    tx: &mut Tx<'_>,
    new: NewExecution,
    created_at: Timestamp,
) -> OpResult<Execution> {
    let execution = new.into_execution(created_at);
    let inserted = execute(
        &tx.db,
        INSERT,
        &[
            &execution.id.as_uuid(),
            &text(&execution.function),
            &execution.function_id.as_uuid(),
            &i64::from(execution.function_version),
            &text(&execution.backend),
            &json_text(&execution.input)?,
            &execution.status.as_str(),
            &execution.output.as_ref().map(json_text).transpose()?,
            &text_option(execution.error.as_deref()),
            &execution.usage.as_ref().map(json_text).transpose()?,
            &i64::from(execution.attempt),
            &execution.retry_of.map(|id| id.as_uuid()),
            &text_option(execution.idempotency_key.as_deref()),
            &text_option(execution.triggered_by.as_deref()),
            &execution.created_at,
            &execution.started_at,
            &execution.finished_at,
            &text_option(execution.session_id.as_deref()),
            &execution.continues.map(|id| id.as_uuid()),
            &text_option(execution.prompt.as_deref()),
            &text_option(execution.instance.as_deref()),
        ],
    )
    .await?;
    if inserted == 0 {
        // The key first, as the contract checks it first; this statement sees what the insert waited for.
        if let Some(key) = &execution.idempotency_key {
            let existing = row(&tx.db, BY_IDEMPOTENCY_KEY, &[&text(key)]).await?;
            if let Some(existing) = existing {
                return Err(
                    StoreError::IdempotencyKeyExists { existing: Box::new(from_row(&existing)?) }.into()
                );
            }
        }
        if row(&tx.db, EXISTS, &[&execution.id.as_uuid()]).await?.is_some() {
            let message = format!("an execution with id {} exists already", execution.id);
            return Err(CoreError::invalid_field("id", message).into());
        }
        return Err(StoreError::Unavailable {
            message: format!(
                "the execution {} was refused by a conflict that is gone: try again",
                execution.id
            ),
            source: None,
        }
        .into());
    }
    tx.record(NewEvent::for_execution(&execution));
    Ok(execution)
}

/// The compare-and-set of `DashboardStore::update_execution`, under the execution's row lock; records its event.
///
/// A start (`queued → running`) that names its instance must also hold the lease (see [`TAKE_LEASE`]): an instance
/// whose claim ran out — released, or claimed since by another — would otherwise run the execution under no lease or
/// another's (left `running` for ever if it dies, its function's `max_concurrency` exceeded). Refused, it is a
/// [`StoreError::StatusMismatch`] from `queued` to `queued` — the execution is not this caller's to start — and
/// nothing is written.
pub(crate) async fn update(tx: &mut Tx<'_>, id: ExecutionId, update: ExecutionUpdate) -> OpResult<Execution> {
    let mut execution = get_for_update(tx, id).await?;
    if execution.status != update.from {
        return Err(StoreError::StatusMismatch { expected: update.from, actual: execution.status }.into());
    }
    dashboard_store::check_transition(update.from, update.to)?;
    if let (ExecutionStatus::Queued, ExecutionStatus::Running, Some(instance)) =
        (update.from, update.to, &update.instance)
        && execute(&tx.db, TAKE_LEASE, &[&id.as_uuid(), &text(instance)]).await? == 0
    {
        let refused =
            StoreError::StatusMismatch { expected: ExecutionStatus::Queued, actual: ExecutionStatus::Queued };
        return Err(refused.into());
    }
    let from = update.from;
    if let Some(diff) = &update.diff {
        execute(&tx.db, UPSERT_DIFF, &[&id.as_uuid(), &text(diff)]).await?;
    }
    update.apply_to(&mut execution);
    execute(
        &tx.db,
        UPDATE,
        &[
            &id.as_uuid(),
            &execution.status.as_str(),
            &execution.output.as_ref().map(json_text).transpose()?,
            &text_option(execution.error.as_deref()),
            &execution.usage.as_ref().map(json_text).transpose()?,
            &execution.started_at,
            &execution.finished_at,
            &text_option(execution.instance.as_deref()),
        ],
    )
    .await?;
    // `running` again after `waiting` is `execution.resumed`, not a second start.
    tx.record(NewEvent::for_change(from, &execution));
    Ok(execution)
}

pub(crate) async fn set_session_id(
    client: &impl GenericClient,
    id: ExecutionId,
    session_id: &str,
) -> OpResult<Execution> {
    let updated = row(client, SET_SESSION, &[&id.as_uuid(), &text(session_id)]).await?;
    from_row(&updated.ok_or_else(|| StoreError::execution_not_found(id))?)
}

pub(crate) async fn get_diff(client: &impl GenericClient, id: ExecutionId) -> OpResult<Option<String>> {
    match row(client, GET_DIFF, &[&id.as_uuid()]).await? {
        Some(found) => Ok(Some(Columns(&found).get(0)?)),
        None => Ok(None),
    }
}

/// One page of the list. The SQL names only the filters in use, so the planner can pick the index of each.
pub(crate) async fn list(client: &impl GenericClient, query: &ExecutionQuery) -> OpResult<ExecutionPage> {
    let limit = query.limit.max(1);
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(status) = query.status {
        conditions.push(format!("status = {}", bind(&mut values, status.as_str())));
    }
    if let Some(function) = &query.function {
        conditions.push(format!("function = {}", bind(&mut values, text(function).into_owned())));
    }
    if let Some(backend) = &query.backend {
        conditions.push(format!("backend = {}", bind(&mut values, text(backend).into_owned())));
    }
    if let Some(session_id) = &query.session_id {
        conditions.push(format!("session_id = {}", bind(&mut values, text(session_id).into_owned())));
    }
    if let Some(needle) = &query.text {
        // `strpos` compares literally (no `%` or `_` wildcards), and `translate` folds ASCII letters only — `lower`
        // would fold every letter its locale knows: the same rule as every other store.
        let needle = bind(&mut values, text(&needle.to_ascii_lowercase()).into_owned());
        conditions.push(format!(
            "strpos(translate(input, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), {needle}) > 0"
        ));
    }
    if let Some(before) = query.before {
        conditions.push(format!("id < {}", bind(&mut values, before.as_uuid())));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    // One more than asked for tells whether another page follows.
    let limit_parameter = bind(&mut values, sql_int(limit.saturating_add(1)));
    let sql =
        format!("SELECT {} FROM executions {filter} ORDER BY id DESC LIMIT {limit_parameter}", columns!());
    let parameters: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|value| value.as_ref() as &(dyn ToSql + Sync)).collect();
    let mut items = from_rows(&rows(client, &sql, &parameters).await?)?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|execution| execution.id)
    } else {
        None
    };
    Ok(ExecutionPage { items, next_cursor })
}

/// Adds `value` to the parameters of a statement being built; its placeholder (`$n`).
pub(crate) fn bind(
    values: &mut Vec<Box<dyn ToSql + Sync + Send>>,
    value: impl ToSql + Sync + Send + 'static,
) -> String {
    values.push(Box::new(value));
    format!("${}", values.len())
}

pub(crate) async fn list_unfinished(client: &impl GenericClient) -> OpResult<Vec<Execution>> {
    from_rows(&rows(client, UNFINISHED, &[]).await?)
}

pub(crate) async fn count_by_status(client: &impl GenericClient) -> OpResult<StatusCounts> {
    let mut counts: BTreeMap<ExecutionStatus, u64> = ExecutionStatus::ALL.map(|status| (status, 0)).into();
    for found in rows(client, COUNT_BY_STATUS, &[]).await? {
        let columns = Columns(&found);
        counts.insert(columns.parsed(0)?, columns.unsigned(1)?);
    }
    Ok(StatusCounts(counts))
}
