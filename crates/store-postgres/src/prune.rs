//! Retention in PostgreSQL: deletes old finished executions with their logs, items, diffs, approvals and events, a
//! bounded batch per call, and the notification deliveries that finished before the cutoff.

use dashboard_core::Timestamp;
use uuid::Uuid;

use crate::codec::{OpResult, sql_int};
use crate::deliveries;
use crate::transaction::{Tx, execute, rows};

/// The batch, oldest finished first, locked; rows another instance is pruning (or changing) right now are skipped
/// rather than waited for, so instances pruning at once share the work.
const DOOMED: &str = "SELECT id FROM executions WHERE finished_at IS NOT NULL AND finished_at < $1 \
                      ORDER BY finished_at, id LIMIT $2 FOR UPDATE SKIP LOCKED";
/// What goes with the batch, table by table.
const DELETES: [&str; 6] = [
    "DELETE FROM logs WHERE execution_id = ANY($1)",
    "DELETE FROM items WHERE execution_id = ANY($1)",
    "DELETE FROM diffs WHERE execution_id = ANY($1)",
    "DELETE FROM approvals WHERE execution_id = ANY($1)",
    "DELETE FROM events WHERE execution_id = ANY($1)",
    "DELETE FROM executions WHERE id = ANY($1)",
];
const OLD_EVENTS_ABOUT_NO_EXECUTION: &str = "DELETE FROM events WHERE execution_id IS NULL AND ts < $1";

/// Deletes up to `limit` executions that finished before `cutoff` (oldest finished first), their logs, items, diffs,
/// approvals and events, the events about no execution older than `cutoff`, and the deliveries delivered or given up
/// before `cutoff` (pending ones stay). Event ids are never reused: they come from `event_counter`, which deletes do
/// not touch.
pub(crate) async fn finished_before(tx: &mut Tx<'_>, cutoff: Timestamp, limit: usize) -> OpResult<usize> {
    let mut doomed = Vec::new();
    for found in rows(&tx.db, DOOMED, &[&cutoff, &sql_int(limit)]).await? {
        doomed.push(found.try_get::<_, Uuid>(0)?);
    }
    if !doomed.is_empty() {
        for delete in DELETES {
            execute(&tx.db, delete, &[&doomed]).await?;
        }
    }
    execute(&tx.db, OLD_EVENTS_ABOUT_NO_EXECUTION, &[&cutoff]).await?;
    deliveries::prune_finished_before(tx, cutoff).await?;
    Ok(doomed.len())
}
