//! Transcript items in SQLite: upserts by id (a new id numbered after the last stored item), and reads after a seq.

use dashboard_core::{ExecutionId, Item, ItemBody, ItemStatus, NewItem, now};
use dashboard_store::{StoreError, merge_items_by_id};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{Json, OpResult, SqlTime, sql_int, text};
use crate::executions::exists;

/// Upserts `items`; the writer runs one operation at a time, so the next seq read here is still next at the insert.
pub(super) fn upsert(connection: &Connection, id: ExecutionId, items: Vec<NewItem>) -> OpResult<Vec<Item>> {
    if !exists(connection, id)? {
        return Err(StoreError::execution_not_found(id).into());
    }
    upsert_into_existing(connection, id, items)
}

/// Upserts `items` of an execution the caller has found in this transaction; the items as stored.
pub(super) fn upsert_into_existing(
    connection: &Connection,
    id: ExecutionId,
    items: Vec<NewItem>,
) -> OpResult<Vec<Item>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let execution_id = text(id);
    let mut last_seq: u64 = connection
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM items WHERE execution_id = ?1")?
        .query_row([&execution_id], |row| row.get(0))?;
    // One time for the whole batch, formatted once rather than per item.
    let at = now();
    let at_text = SqlTime(at).text()?;
    let mut find =
        connection.prepare_cached("SELECT seq, ts FROM items WHERE execution_id = ?1 AND item_id = ?2")?;
    let mut update = connection.prepare_cached(
        "UPDATE items SET status = ?3, kind = ?4, updated_at = ?5, body = ?6 WHERE execution_id = ?1 AND seq = ?2",
    )?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO items (execution_id, seq, item_id, status, kind, ts, updated_at, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
    )?;
    let mut stored = Vec::with_capacity(items.len());
    for NewItem { id: item_id, status, body } in merge_items_by_id(items) {
        let found: Option<(u64, SqlTime)> = find
            .query_row(params![execution_id, item_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let body_json = Json(&body);
        let (seq, ts) = match found {
            Some((seq, ts)) => {
                update.execute(params![
                    execution_id,
                    sql_int(seq),
                    status.as_str(),
                    body.kind(),
                    &at_text,
                    body_json
                ])?;
                (seq, ts.0)
            }
            None => {
                last_seq += 1;
                insert.execute(params![
                    execution_id,
                    sql_int(last_seq),
                    item_id,
                    status.as_str(),
                    body.kind(),
                    &at_text,
                    body_json
                ])?;
                (last_seq, at)
            }
        };
        stored.push(Item { id: item_id, seq, status, ts, updated_at: at, body });
    }
    Ok(stored)
}

pub(super) fn read_after(
    connection: &Connection,
    id: ExecutionId,
    after: u64,
    limit: usize,
) -> OpResult<Vec<Item>> {
    let mut statement = connection.prepare_cached(
        "SELECT item_id, seq, status, ts, updated_at, body FROM items WHERE execution_id = ?1 AND seq > ?2 \
         ORDER BY seq LIMIT ?3",
    )?;
    let items = statement
        .query_map(params![text(id), sql_int(after), sql_int(limit)], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(items)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: row.get(0)?,
        seq: row.get(1)?,
        status: status_from_row(row, 2)?,
        ts: row.get::<_, SqlTime>(3)?.0,
        updated_at: row.get::<_, SqlTime>(4)?.0,
        body: row.get::<_, Json<ItemBody>>(5)?.0,
    })
}

fn status_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<ItemStatus> {
    let text: String = row.get(index)?;
    ItemStatus::ALL.into_iter().find(|status| status.as_str() == text).ok_or_else(|| {
        let error = format!("{text:?} is not an item status");
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, error.into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_read_back_as_written() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        for status in ItemStatus::ALL {
            let back = connection
                .query_row("SELECT ?1", [status.as_str()], |row| status_from_row(row, 0))
                .expect("a status");
            assert_eq!(back, status);
        }
    }
}
