//! The activity feed in PostgreSQL, read by cursor. Events are written by [`Tx::commit`](crate::transaction::Tx),
//! with ids taken from `event_counter` in commit order.

use dashboard_core::{Event, EventKind};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::codec::{Columns, OpResult, sql_int, unreadable};
use crate::transaction::{one, rows};

const LIST_AFTER: &str = "SELECT id, ts, kind, execution_id, function, backend, message, data FROM events \
                          WHERE id > $1 ORDER BY id LIMIT $2";
/// The newest event stored (not the counter, which keeps counting past pruned events).
const LAST_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM events";

fn from_row(row: &Row) -> OpResult<Event> {
    let columns = Columns(row);
    let kind: &str = columns.get(2)?;
    let kind = EventKind::parse(kind)
        .ok_or_else(|| unreadable("events.kind", format!("unknown event kind {kind:?}")))?;
    Ok(Event {
        id: columns.unsigned(0)?,
        ts: columns.get(1)?,
        kind,
        execution_id: columns.id_option(3)?,
        function: columns.get(4)?,
        backend: columns.get(5)?,
        message: columns.get(6)?,
        data: columns.json(7)?,
    })
}

pub(crate) async fn list_after(
    client: &impl GenericClient,
    after: u64,
    limit: usize,
) -> OpResult<Vec<Event>> {
    let found = rows(client, LIST_AFTER, &[&sql_int(after), &sql_int(limit)]).await?;
    found.iter().map(from_row).collect()
}

pub(crate) async fn last_id(client: &impl GenericClient) -> OpResult<u64> {
    Columns(&one(client, LAST_ID, &[]).await?).unsigned(0)
}
