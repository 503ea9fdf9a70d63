//! The activity feed in SQLite: recording an event inside the transaction of its change, and reading by cursor.

use dashboard_core::{Event, EventKind, NewEvent, now};
use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use crate::codec::{Json, OpResult, SqlTime, parsed_option, sql_int};

/// Records `event` with the next id; called by the operation whose change it describes, in the same transaction.
pub(super) fn record(connection: &Connection, event: NewEvent) -> OpResult<Event> {
    let ts = now();
    connection
        .prepare_cached(
            "INSERT INTO events (ts, kind, execution_id, function, backend, message, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            SqlTime(ts),
            event.kind.as_str(),
            event.execution_id.map(|id| id.to_string()),
            event.function,
            event.backend,
            event.message,
            Json(&event.data),
        ])?;
    // AUTOINCREMENT ids are positive, so the conversion cannot fail.
    let id = u64::try_from(connection.last_insert_rowid()).unwrap_or_default();
    Ok(event.recorded(id, ts))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get(2)?;
    let kind = EventKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            Type::Text,
            format!("unknown event kind {kind:?}").into(),
        )
    })?;
    Ok(Event {
        id: row.get(0)?,
        ts: row.get::<_, SqlTime>(1)?.0,
        kind,
        execution_id: parsed_option(row, 3)?,
        function: row.get(4)?,
        backend: row.get(5)?,
        message: row.get(6)?,
        data: row.get::<_, Json<_>>(7)?.0,
    })
}

pub(super) fn list_after(connection: &Connection, after: u64, limit: usize) -> OpResult<Vec<Event>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, ts, kind, execution_id, function, backend, message, data FROM events \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let events =
        statement.query_map(params![sql_int(after), sql_int(limit)], from_row)?.collect::<Result<_, _>>()?;
    Ok(events)
}

pub(super) fn last_id(connection: &Connection) -> OpResult<u64> {
    let id: u64 = connection
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events")?
        .query_row([], |row| row.get(0))?;
    Ok(id)
}
