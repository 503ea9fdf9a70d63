//! Retention in SQLite: deletes old finished executions with their logs, items, diffs, approvals and events, a bounded
//! batch per call, and the outbox's deliveries that were delivered or given up long enough ago.

use dashboard_core::Timestamp;
use rusqlite::{Connection, params};

use crate::codec::{OpResult, SqlTime, sql_int};

/// The deliveries that are finished — delivered or given up — and old enough to go.
pub(super) const PRUNE_DELIVERIES: &str =
    "DELETE FROM notification_deliveries WHERE status <> 'pending' AND finished_at < ?1";

/// Deletes up to `limit` executions that finished before `cutoff` (oldest finished first), their logs, items, diffs,
/// approvals and events, the events about no execution older than `cutoff`, and every delivery that was delivered or
/// given up before `cutoff` (pending ones stay, however old). Event ids are never reused: the events table is
/// `AUTOINCREMENT`, whose counter survives deletes.
pub(super) fn finished_before(connection: &Connection, cutoff: Timestamp, limit: usize) -> OpResult<usize> {
    let cutoff = SqlTime(cutoff);
    let doomed: Vec<String> = connection
        .prepare_cached(
            "SELECT id FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?1 \
             ORDER BY finished_at, id LIMIT ?2",
        )?
        .query_map(params![cutoff, sql_int(limit)], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut delete_logs = connection.prepare_cached("DELETE FROM logs WHERE execution_id = ?1")?;
    let mut delete_items = connection.prepare_cached("DELETE FROM items WHERE execution_id = ?1")?;
    let mut delete_diffs = connection.prepare_cached("DELETE FROM diffs WHERE execution_id = ?1")?;
    let mut delete_approvals = connection.prepare_cached("DELETE FROM approvals WHERE execution_id = ?1")?;
    let mut delete_events = connection.prepare_cached("DELETE FROM events WHERE execution_id = ?1")?;
    let mut delete_execution = connection.prepare_cached("DELETE FROM executions WHERE id = ?1")?;
    for id in &doomed {
        delete_logs.execute([id])?;
        delete_items.execute([id])?;
        delete_diffs.execute([id])?;
        delete_approvals.execute([id])?;
        delete_events.execute([id])?;
        delete_execution.execute([id])?;
    }
    connection
        .prepare_cached("DELETE FROM events WHERE execution_id IS NULL AND ts < ?1")?
        .execute([cutoff])?;
    // Not bounded by `limit`, which counts executions: a caller stops calling once fewer come back. No index serves
    // it; the outbox holds what is pending plus what finished since the last prune, so the scan is short.
    connection.prepare_cached(PRUNE_DELIVERIES)?.execute([cutoff])?;
    Ok(doomed.len())
}
