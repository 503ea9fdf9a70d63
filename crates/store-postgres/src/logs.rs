//! Execution logs in PostgreSQL: appends numbered after the last stored line — under the execution's row lock, so
//! concurrent appends, from any instance, number without gaps — and reads after a seq.

use dashboard_core::{ExecutionId, LogLine, NewLogLine, now};
use dashboard_store::Signal;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::codec::{Columns, OpResult, sql_int, text};
use crate::executions;
use crate::transaction::{Tx, execute, one, rows};

/// The seq of the last stored line; read after the execution's row is locked, by a statement of its own (so that, at
/// read committed, it sees every append committed before the lock was granted).
const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE execution_id = $1";
/// A whole batch in one statement: the lines are numbered after `$2` in the order given.
const INSERT: &str = "INSERT INTO logs (execution_id, seq, ts, stream, message) \
                      SELECT $1, $2 + line.n, $3, line.stream, line.message \
                      FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS line (stream, message, n)";
const READ_AFTER: &str =
    "SELECT seq, ts, stream, message FROM logs WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// Appends `lines` to the log of execution `id`, which must exist; the seq of the last line (of the last stored one
/// when `lines` is empty).
pub(crate) async fn append(tx: &mut Tx<'_>, id: ExecutionId, lines: Vec<NewLogLine>) -> OpResult<u64> {
    executions::lock(tx, id).await?;
    append_to_locked(tx, id, lines).await
}

/// Appends `lines` to the log of an execution whose row this transaction has locked.
pub(crate) async fn append_to_locked(
    tx: &mut Tx<'_>,
    id: ExecutionId,
    lines: Vec<NewLogLine>,
) -> OpResult<u64> {
    let execution_id = id.as_uuid();
    let last: i64 = one(&tx.db, LAST_SEQ, &[&execution_id]).await?.try_get(0)?;
    if lines.is_empty() {
        return Ok(u64::try_from(last).unwrap_or_default());
    }
    let n_lines = sql_int(lines.len());
    let streams: Vec<&str> = lines.iter().map(|line| line.stream.as_str()).collect();
    let messages: Vec<_> = lines.iter().map(|line| text(&line.message)).collect();
    execute(&tx.db, INSERT, &[&execution_id, &last, &now(), &streams, &messages]).await?;
    let last_seq = u64::try_from(last + n_lines).unwrap_or_default();
    tx.signal(Signal::Logs { execution_id: id, last_seq });
    Ok(last_seq)
}

fn from_row(row: &Row) -> OpResult<LogLine> {
    let columns = Columns(row);
    Ok(LogLine {
        seq: columns.unsigned(0)?,
        ts: columns.get(1)?,
        stream: columns.parsed(2)?,
        message: columns.get(3)?,
    })
}

pub(crate) async fn read_after(
    client: &impl GenericClient,
    id: ExecutionId,
    after: u64,
    limit: usize,
) -> OpResult<Vec<LogLine>> {
    let found = rows(client, READ_AFTER, &[&id.as_uuid(), &sql_int(after), &sql_int(limit)]).await?;
    found.iter().map(from_row).collect()
}
