//! Execution logs in SQLite: appends numbered after the last stored line, and reads after a seq.

use dashboard_core::{ExecutionId, LogLine, NewLogLine, now};
use dashboard_store::StoreError;
use rusqlite::{Connection, Row, params};

use crate::codec::{OpResult, SqlTime, parsed, sql_int, text};
use crate::executions::exists;

/// Appends `lines`; the writer runs one operation at a time, so the next seq read here is still next at the insert.
pub(super) fn append(connection: &Connection, id: ExecutionId, lines: Vec<NewLogLine>) -> OpResult<u64> {
    if !exists(connection, id)? {
        return Err(StoreError::execution_not_found(id).into());
    }
    append_to_existing(connection, id, lines)
}

/// Appends `lines` to the log of an execution the caller has found in this transaction.
pub(super) fn append_to_existing(
    connection: &Connection,
    id: ExecutionId,
    lines: Vec<NewLogLine>,
) -> OpResult<u64> {
    let execution_id = text(id);
    let last: u64 = connection
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM logs WHERE execution_id = ?1")?
        .query_row([&execution_id], |row| row.get(0))?;
    // One time for the whole batch, formatted once rather than per line.
    let ts = SqlTime(now()).text()?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO logs (execution_id, seq, ts, stream, message) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut seq = last;
    for NewLogLine { stream, message } in lines {
        seq += 1;
        insert.execute(params![execution_id, seq, &ts, stream.as_str(), message])?;
    }
    Ok(seq)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<LogLine> {
    Ok(LogLine {
        seq: row.get(0)?,
        ts: row.get::<_, SqlTime>(1)?.0,
        stream: parsed(row, 2)?,
        message: row.get(3)?,
    })
}

pub(super) fn read_after(
    connection: &Connection,
    id: ExecutionId,
    after: u64,
    limit: usize,
) -> OpResult<Vec<LogLine>> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, ts, stream, message FROM logs WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let lines = statement
        .query_map(params![text(id), sql_int(after), sql_int(limit)], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(lines)
}
