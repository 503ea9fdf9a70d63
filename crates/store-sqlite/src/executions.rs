//! Executions in SQLite: create with an idempotency key, look up, list with filters and keyset pages, and the status
//! compare-and-set — each write with its event — the agent's session id, and the run's diff (a table of its own).

use std::collections::BTreeMap;

use dashboard_core::{CoreError, Execution, ExecutionId, ExecutionStatus, NewEvent, now};
use dashboard_store::{
    ExecutionPage, ExecutionQuery, ExecutionUpdate, NewExecution, Recorded, StatusCounts, StoreError,
};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{Json, OpResult, SqlTime, parsed, parsed_option, text};
use crate::events::record;
use crate::writer::WriteConnection;

const COLUMNS: &str = "id, function, function_id, function_version, backend, input, status, output, error, usage, \
                       attempt, retry_of, idempotency_key, triggered_by, created_at, started_at, finished_at, \
                       session_id, continues, prompt, instance";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Execution> {
    Ok(Execution {
        id: parsed(row, 0)?,
        function: row.get(1)?,
        function_id: parsed(row, 2)?,
        function_version: row.get(3)?,
        backend: row.get(4)?,
        input: row.get::<_, Json<_>>(5)?.0,
        status: parsed(row, 6)?,
        output: row.get::<_, Option<Json<_>>>(7)?.map(|json| json.0),
        error: row.get(8)?,
        usage: row.get::<_, Option<Json<_>>>(9)?.map(|json| json.0),
        attempt: row.get(10)?,
        retry_of: parsed_option(row, 11)?,
        idempotency_key: row.get(12)?,
        triggered_by: row.get(13)?,
        created_at: row.get::<_, SqlTime>(14)?.0,
        started_at: row.get::<_, Option<SqlTime>>(15)?.map(|time| time.0),
        finished_at: row.get::<_, Option<SqlTime>>(16)?.map(|time| time.0),
        session_id: row.get(17)?,
        continues: parsed_option(row, 18)?,
        prompt: row.get(19)?,
        instance: row.get(20)?,
    })
}

pub(super) fn get(connection: &Connection, id: ExecutionId) -> OpResult<Option<Execution>> {
    let execution = connection
        .prepare_cached(&format!("SELECT {COLUMNS} FROM executions WHERE id = ?1"))?
        .query_row([text(id)], from_row)
        .optional()?;
    Ok(execution)
}

pub(super) fn exists(connection: &Connection, id: ExecutionId) -> OpResult<bool> {
    let found = connection
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")?
        .query_row([text(id)], |_| Ok(()))
        .optional()?;
    Ok(found.is_some())
}

fn by_idempotency_key(connection: &Connection, key: &str) -> OpResult<Option<Execution>> {
    let execution = connection
        .prepare_cached(&format!("SELECT {COLUMNS} FROM executions WHERE idempotency_key = ?1"))?
        .query_row([key], from_row)
        .optional()?;
    Ok(execution)
}

pub(super) fn create(connection: &WriteConnection<'_>, new: NewExecution) -> OpResult<Recorded<Execution>> {
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = by_idempotency_key(connection, key)?
    {
        return Err(StoreError::IdempotencyKeyExists { existing: Box::new(existing) }.into());
    }
    if exists(connection, new.id)? {
        let message = format!("an execution with id {} exists already", new.id);
        return Err(CoreError::invalid_field("id", message).into());
    }
    let execution = new.into_execution(now());
    connection
        .prepare_cached(&format!(
            "INSERT INTO executions ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
        ))?
        .execute(params![
            text(execution.id),
            execution.function,
            text(execution.function_id),
            execution.function_version,
            execution.backend,
            Json(&execution.input),
            execution.status.as_str(),
            execution.output.as_ref().map(Json),
            execution.error,
            execution.usage.as_ref().map(Json),
            execution.attempt,
            execution.retry_of.map(text),
            execution.idempotency_key,
            execution.triggered_by,
            SqlTime(execution.created_at),
            execution.started_at.map(SqlTime),
            execution.finished_at.map(SqlTime),
            execution.session_id,
            execution.continues.map(text),
            execution.prompt,
            execution.instance,
        ])?;
    let event = record(connection, NewEvent::for_execution(&execution))?;
    Ok(Recorded { value: execution, event })
}

pub(super) fn update(
    connection: &WriteConnection<'_>,
    id: ExecutionId,
    update: ExecutionUpdate,
) -> OpResult<Recorded<Execution>> {
    let mut execution = get(connection, id)?.ok_or_else(|| StoreError::execution_not_found(id))?;
    if execution.status != update.from {
        return Err(StoreError::StatusMismatch { expected: update.from, actual: execution.status }.into());
    }
    dashboard_store::check_transition(update.from, update.to)?;
    let from = update.from;
    if let Some(diff) = &update.diff {
        connection
            .prepare_cached(
                "INSERT INTO diffs (execution_id, diff) VALUES (?1, ?2) \
                 ON CONFLICT (execution_id) DO UPDATE SET diff = excluded.diff",
            )?
            .execute(params![text(id), diff])?;
    }
    update.apply_to(&mut execution);
    connection
        .prepare_cached(
            "UPDATE executions SET status = ?2, output = ?3, error = ?4, usage = ?5, started_at = ?6, \
             finished_at = ?7, instance = ?8 WHERE id = ?1",
        )?
        .execute(params![
            text(id),
            execution.status.as_str(),
            execution.output.as_ref().map(Json),
            execution.error,
            execution.usage.as_ref().map(Json),
            execution.started_at.map(SqlTime),
            execution.finished_at.map(SqlTime),
            execution.instance,
        ])?;
    // `running` again after `waiting` is `execution.resumed`, not a second start.
    let event = record(connection, NewEvent::for_change(from, &execution))?;
    Ok(Recorded { value: execution, event })
}

pub(super) fn set_session_id(
    connection: &Connection,
    id: ExecutionId,
    session_id: &str,
) -> OpResult<Execution> {
    let n_changed = connection
        .prepare_cached("UPDATE executions SET session_id = ?2 WHERE id = ?1")?
        .execute(params![text(id), session_id])?;
    if n_changed == 0 {
        return Err(StoreError::execution_not_found(id).into());
    }
    Ok(get(connection, id)?.ok_or_else(|| StoreError::execution_not_found(id))?)
}

pub(super) fn get_diff(connection: &Connection, id: ExecutionId) -> OpResult<Option<String>> {
    let diff = connection
        .prepare_cached("SELECT diff FROM diffs WHERE execution_id = ?1")?
        .query_row([text(id)], |row| row.get(0))
        .optional()?;
    Ok(diff)
}

/// One page of the list. The SQL names only the filters in use, so the planner can pick the index of each.
pub(super) fn list(connection: &Connection, query: &ExecutionQuery) -> OpResult<ExecutionPage> {
    let limit = query.limit.max(1);
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(status) = query.status {
        conditions.push("status = ?");
        values.push(Box::new(status.as_str()));
    }
    if let Some(function) = &query.function {
        conditions.push("function = ?");
        values.push(Box::new(function.clone()));
    }
    if let Some(backend) = &query.backend {
        conditions.push("backend = ?");
        values.push(Box::new(backend.clone()));
    }
    if let Some(session_id) = &query.session_id {
        conditions.push("session_id = ?");
        values.push(Box::new(session_id.clone()));
    }
    if let Some(needle) = &query.text {
        // `instr` compares literally (no `%` or `_` wildcards), and SQLite's `lower` folds ASCII letters only: the
        // same rule as every other store.
        conditions.push("instr(lower(input), ?) > 0");
        values.push(Box::new(needle.to_ascii_lowercase()));
    }
    if let Some(before) = query.before {
        conditions.push("id < ?");
        values.push(Box::new(text(before)));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    // One more than asked for tells whether another page follows.
    values.push(Box::new(limit.saturating_add(1)));
    let sql = format!("SELECT {COLUMNS} FROM executions {filter} ORDER BY id DESC LIMIT ?");
    let mut statement = connection.prepare_cached(&sql)?;
    let parameters: Vec<&dyn ToSql> = values.iter().map(|value| value.as_ref()).collect();
    let mut items: Vec<Execution> = statement.query_map(&*parameters, from_row)?.collect::<Result<_, _>>()?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|execution| execution.id)
    } else {
        None
    };
    Ok(ExecutionPage { items, next_cursor })
}

pub(super) fn list_unfinished(connection: &Connection) -> OpResult<Vec<Execution>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM executions WHERE status IN ('queued', 'running', 'waiting') ORDER BY id"
    ))?;
    let executions = statement.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(executions)
}

pub(super) fn count_by_status(connection: &Connection) -> OpResult<StatusCounts> {
    let mut counts: BTreeMap<ExecutionStatus, u64> = ExecutionStatus::ALL.map(|status| (status, 0)).into();
    let mut statement =
        connection.prepare_cached("SELECT status, COUNT(*) FROM executions GROUP BY status")?;
    let rows =
        statement.query_map([], |row| Ok((parsed::<ExecutionStatus>(row, 0)?, row.get::<_, u64>(1)?)))?;
    for row in rows {
        let (status, count) = row?;
        counts.insert(status, count);
    }
    Ok(StatusCounts(counts))
}
