//! Transcript items in PostgreSQL: upserts by id — a new id numbered after the last stored item, under the
//! execution's row lock, so concurrent upserts from any instance number without gaps — and reads after a seq.

use std::collections::HashMap;

use dashboard_core::{ExecutionId, Item, ItemStatus, NewItem, Timestamp, now};
use dashboard_store::{Signal, merge_items_by_id};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::codec::{Columns, OpResult, json_text, sql_int, text, unreadable};
use crate::executions;
use crate::transaction::{Tx, execute, one, rows};

/// The seq of the last stored item; read after the execution's row is locked, by a statement of its own.
const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM items WHERE execution_id = $1";
const FIND: &str = "SELECT item_id, seq, ts FROM items WHERE execution_id = $1 AND item_id = ANY($2)";
/// The new items of a batch, `ts = updated_at = $2`.
const INSERT: &str = "INSERT INTO items (execution_id, seq, item_id, status, kind, ts, updated_at, body) \
                      SELECT $1, item.seq, item.item_id, item.status, item.kind, $2, $2, item.body \
                      FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
                      AS item (seq, item_id, status, kind, body)";
/// The known items of a batch: each keeps its seq and `ts`.
const UPDATE: &str = "UPDATE items SET status = item.status, kind = item.kind, updated_at = $2, body = item.body \
                      FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS item (seq, status, kind, body) \
                      WHERE items.execution_id = $1 AND items.seq = item.seq";
const READ_AFTER: &str = "SELECT item_id, seq, status, ts, updated_at, body FROM items \
                          WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// Upserts `items` of execution `id`, which must exist (also when `items` is empty); the items as stored.
pub(crate) async fn upsert(tx: &mut Tx<'_>, id: ExecutionId, items: Vec<NewItem>) -> OpResult<Vec<Item>> {
    executions::lock(tx, id).await?;
    upsert_into_locked(tx, id, items).await
}

/// Items of one batch bound as the columns of [`INSERT`] or [`UPDATE`].
#[derive(Default)]
struct Batch {
    seqs: Vec<i64>,
    item_ids: Vec<String>,
    statuses: Vec<&'static str>,
    kinds: Vec<&'static str>,
    bodies: Vec<String>,
}

/// Upserts `items` of an execution whose row this transaction has locked; the items as stored, one per id, in the
/// order of first mention.
pub(crate) async fn upsert_into_locked(
    tx: &mut Tx<'_>,
    id: ExecutionId,
    items: Vec<NewItem>,
) -> OpResult<Vec<Item>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let execution_id = id.as_uuid();
    let items = merge_items_by_id(items);
    let mut last_seq: i64 = one(&tx.db, LAST_SEQ, &[&execution_id]).await?.try_get(0)?;
    let item_ids: Vec<String> = items.iter().map(|item| text(&item.id).into_owned()).collect();
    let mut known: HashMap<String, (i64, Timestamp)> = HashMap::new();
    for found in rows(&tx.db, FIND, &[&execution_id, &item_ids]).await? {
        known.insert(found.try_get(0)?, (found.try_get(1)?, found.try_get(2)?));
    }
    let at = now();
    let (mut inserts, mut updates) = (Batch::default(), Batch::default());
    let mut stored = Vec::with_capacity(items.len());
    for (NewItem { id: item_id, status, body }, column_id) in items.into_iter().zip(item_ids) {
        let (seq, ts, batch) = match known.get(&column_id) {
            Some(&(seq, ts)) => (seq, ts, &mut updates),
            None => {
                last_seq += 1;
                (last_seq, at, &mut inserts)
            }
        };
        batch.seqs.push(seq);
        batch.item_ids.push(column_id);
        batch.statuses.push(status.as_str());
        batch.kinds.push(body.kind());
        batch.bodies.push(json_text(&body)?);
        let seq = u64::try_from(seq).map_err(|_| unreadable("items.seq", seq))?;
        stored.push(Item { id: item_id, seq, status, ts, updated_at: at, body });
    }
    if !inserts.seqs.is_empty() {
        let Batch { seqs, item_ids, statuses, kinds, bodies } = &inserts;
        execute(&tx.db, INSERT, &[&execution_id, &at, seqs, item_ids, statuses, kinds, bodies]).await?;
    }
    if !updates.seqs.is_empty() {
        let Batch { seqs, statuses, kinds, bodies, .. } = &updates;
        execute(&tx.db, UPDATE, &[&execution_id, &at, seqs, statuses, kinds, bodies]).await?;
    }
    let mut seqs: Vec<u64> = stored.iter().map(|item| item.seq).collect();
    seqs.sort_unstable();
    tx.signal(Signal::Items { execution_id: id, seqs });
    Ok(stored)
}

pub(crate) async fn read_after(
    client: &impl GenericClient,
    id: ExecutionId,
    after: u64,
    limit: usize,
) -> OpResult<Vec<Item>> {
    let found = rows(client, READ_AFTER, &[&id.as_uuid(), &sql_int(after), &sql_int(limit)]).await?;
    found.iter().map(from_row).collect()
}

fn from_row(row: &Row) -> OpResult<Item> {
    let columns = Columns(row);
    Ok(Item {
        id: columns.get(0)?,
        seq: columns.unsigned(1)?,
        status: status(columns.get::<&str>(2)?)?,
        ts: columns.get(3)?,
        updated_at: columns.get(4)?,
        body: columns.json(5)?,
    })
}

/// An item status stored as its text.
fn status(text: &str) -> OpResult<ItemStatus> {
    ItemStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| unreadable("items.status", format!("{text:?} is not an item status")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_read_back_as_written() {
        for item_status in ItemStatus::ALL {
            assert_eq!(status(item_status.as_str()).ok(), Some(item_status));
        }
        assert!(status("maybe").is_err());
    }
}
