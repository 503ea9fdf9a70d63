//! `agent-dashboard migrate-store`: copies everything a SQLite file holds into an empty PostgreSQL database.
//!
//! The file is opened read-only, under the same exclusive lock a `SqliteStore` takes, so a dashboard still running on
//! it is refused rather than copied half-way through a change. A thread reads each table in key order and hands rows
//! over in batches through a short channel while they are written with binary `COPY`, so a file of any size is never
//! in memory at once; all tables go in one PostgreSQL transaction, so the target gets everything or nothing. Values
//! convert exactly: ids from text to `uuid`, times from SQLite's fixed-width UTC text to `timestamptz` (both keep
//! microseconds), JSON text unchanged, `0`/`1` flags to `boolean`; plain text meets the store's one rule (a NUL
//! character becomes U+FFFD, see `codec.rs`). Ids, seqs and event ids are kept; the claims of pending notification
//! deliveries are not (the target's instances claim them afresh).

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::pin::pin;

use dashboard_core::CoreError;
use dashboard_store::StoreError;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::codec::unavailable;
use crate::{PostgresStore, redacted_url};

/// The schema version of the SQLite files this build copies: that of the SQLite store of the same build
/// (`SqliteStore::schema_version()`, checked by `tests/import.rs`). An older file is brought up to it by opening it
/// once with this build's server; a newer one by that newer build's own `migrate-store`.
pub const SQLITE_SCHEMA_VERSION: u32 = 9;

/// A batch holds at most this many rows …
const BATCH_ROWS: usize = 1000;
/// … or about this many bytes of values, whichever comes first (a diff or an approval's details may be large).
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Batches read ahead of the writer: the most rows in memory at once are about this many batches.
const BATCHES_AHEAD: usize = 2;

/// What `import_sqlite` copied, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Functions.
    pub functions: u64,
    /// Executions, whatever their status.
    pub executions: u64,
    /// Log lines.
    pub logs: u64,
    /// Transcript items.
    pub items: u64,
    /// Diffs of executions.
    pub diffs: u64,
    /// Approvals.
    pub approvals: u64,
    /// Events of the activity feed, with their ids.
    pub events: u64,
    /// Schedules, with where each stands (next and last run, skips).
    pub schedules: u64,
    /// Deliveries of the notification outbox, whatever their status (the claims of pending ones are not copied).
    pub deliveries: u64,
    /// The last event id now taken: the next event recorded gets a larger one.
    pub last_event_id: u64,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} functions, {} executions, {} log lines, {} transcript items, {} diffs, {} approvals, {} events, \
             {} schedules, {} notification deliveries (the next event id is above {})",
            self.functions,
            self.executions,
            self.logs,
            self.items,
            self.diffs,
            self.approvals,
            self.events,
            self.schedules,
            self.deliveries,
            self.last_event_id
        )
    }
}

/// How a SQLite column converts.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A UUID as text → `uuid`.
    Id,
    /// Text, plain or JSON → `text`.
    Text,
    /// An integer → `bigint`.
    Integer,
    /// A real (or an integer) → `double precision`.
    Real,
    /// A time as SQLite's UTC text → `timestamptz`.
    Time,
    /// `0` or `1` → `boolean`.
    Flag,
}

impl Kind {
    fn postgres_type(self) -> Type {
        match self {
            Self::Id => Type::UUID,
            Self::Text => Type::TEXT,
            Self::Integer => Type::INT8,
            Self::Real => Type::FLOAT8,
            Self::Time => Type::TIMESTAMPTZ,
            Self::Flag => Type::BOOL,
        }
    }
}

/// A table that is copied: its name and its columns, the same in both schemas.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// The file's columns after `columns` that are not copied: they are left empty (a claim that means nothing to
    /// the instances sharing the target).
    not_copied: &'static [&'static str],
}

use Kind::{Flag, Id, Integer, Real, Text, Time};

/// Every table of the SQLite store that holds the dashboard's data, in the order they are copied.
const TABLES: [Table; 9] = [
    Table {
        name: "functions",
        columns: &[
            ("id", Id),
            ("name", Text),
            ("description", Text),
            ("backend", Text),
            ("prompt", Text),
            ("input_schema", Text),
            ("config", Text),
            ("timeout_secs", Integer),
            ("max_concurrency", Integer),
            ("tags", Text),
            ("metadata", Text),
            ("version", Integer),
            ("created_at", Time),
            ("updated_at", Time),
            ("approval_policy", Text),
            ("approval_timeout_secs", Integer),
            ("max_cost_usd", Real),
            ("daily_cost_usd", Real),
            ("daily_tokens", Integer),
        ],
        not_copied: &[],
    },
    Table {
        name: "executions",
        columns: &[
            ("id", Id),
            ("function", Text),
            ("function_id", Id),
            ("function_version", Integer),
            ("backend", Text),
            ("input", Text),
            ("status", Text),
            ("output", Text),
            ("error", Text),
            ("usage", Text),
            ("attempt", Integer),
            ("retry_of", Id),
            ("idempotency_key", Text),
            ("triggered_by", Text),
            ("created_at", Time),
            ("started_at", Time),
            ("finished_at", Time),
            ("session_id", Text),
            ("continues", Id),
            ("prompt", Text),
            ("instance", Text),
        ],
        not_copied: &[],
    },
    Table {
        name: "logs",
        columns: &[("execution_id", Id), ("seq", Integer), ("ts", Time), ("stream", Text), ("message", Text)],
        not_copied: &[],
    },
    Table {
        name: "items",
        columns: &[
            ("execution_id", Id),
            ("seq", Integer),
            ("item_id", Text),
            ("status", Text),
            ("kind", Text),
            ("ts", Time),
            ("updated_at", Time),
            ("body", Text),
        ],
        not_copied: &[],
    },
    Table { name: "diffs", columns: &[("execution_id", Id), ("diff", Text)], not_copied: &[] },
    Table {
        name: "approvals",
        columns: &[
            ("id", Id),
            ("execution_id", Id),
            ("function", Text),
            ("backend", Text),
            ("session_id", Text),
            ("kind", Text),
            ("summary", Text),
            ("status", Text),
            ("for_session", Flag),
            ("item_id", Text),
            ("grant_key", Text),
            ("requested_at", Time),
            ("expires_at", Time),
            ("decided_by", Text),
            ("decided_at", Time),
            ("note", Text),
            ("answers", Text),
            ("details", Text),
        ],
        not_copied: &[],
    },
    Table {
        name: "events",
        columns: &[
            ("id", Integer),
            ("ts", Time),
            ("kind", Text),
            ("execution_id", Id),
            ("function", Text),
            ("backend", Text),
            ("message", Text),
            ("data", Text),
        ],
        not_copied: &[],
    },
    Table {
        name: "schedules",
        columns: &[
            ("id", Id),
            ("function", Text),
            ("cron", Text),
            ("timezone", Text),
            ("input", Text),
            ("overlap", Text),
            ("enabled", Flag),
            ("next_run_at", Time),
            ("last_run_at", Time),
            ("last_execution", Id),
            ("skipped", Integer),
            ("created_at", Time),
            ("updated_at", Time),
        ],
        not_copied: &[],
    },
    Table {
        name: "notification_deliveries",
        columns: &[
            ("id", Id),
            ("notification", Text),
            ("event_id", Integer),
            ("event", Text),
            ("execution_id", Id),
            ("status", Text),
            ("attempts", Integer),
            ("next_attempt_at", Time),
            ("last_error", Text),
            ("response_status", Integer),
            ("created_at", Time),
            ("finished_at", Time),
        ],
        // A pending delivery is claimed afresh by the instances on the target.
        not_copied: &["lease_owner", "lease_expires_at"],
    },
];

impl Table {
    fn column_list(&self) -> String {
        self.columns.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }
}

/// One value, converted, ready to be written.
#[derive(Debug)]
enum Value {
    Id(Option<Uuid>),
    Text(Option<String>),
    Integer(Option<i64>),
    Real(Option<f64>),
    Time(Option<OffsetDateTime>),
    Flag(Option<bool>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Id(value) => value,
            Self::Text(value) => value,
            Self::Integer(value) => value,
            Self::Real(value) => value,
            Self::Time(value) => value,
            Self::Flag(value) => value,
        }
    }

    /// Roughly how many bytes it holds, to keep batches small.
    fn size(&self) -> usize {
        match self {
            Self::Text(Some(text)) => text.len(),
            _ => 16,
        }
    }
}

/// What the reading thread hands the writer.
enum Message {
    /// Rows of the table `TABLES[table]`, in key order.
    Rows { table: usize, rows: Vec<Vec<Value>> },
    /// Every table was read whole.
    Done,
}

/// Copies every function, execution, log line, transcript item, diff, approval, event, schedule and notification
/// delivery of the SQLite store file at `path` into `target`, keeping their ids, in one transaction; returns how many
/// of each it copied.
///
/// Executions keep their status. Those `queued` are claimed by the instances as any other; those `running` or
/// `waiting` — the file's server stopped without ending them — are given a lease that has already ended, held by the
/// instance that ran them, so the first instance to look ends them as interrupted, as a restart on the file would
/// have. The event counter is set past the largest event id the file ever handed out, so no id is taken twice.
///
/// Errors: [`StoreError::Invalid`] (field `from`) when the file does not exist, is not an Agent Dashboard database,
/// has another schema version than [`SQLITE_SCHEMA_VERSION`], or is in use by a running dashboard;
/// [`StoreError::Invalid`] (field `to`) when the target holds functions, executions, events or schedules already (so a
/// second run cannot copy twice); [`StoreError::Unavailable`] when either database fails, or a value of the file cannot be
/// read. On any error the target is left as it was.
pub async fn import_sqlite(path: &Path, target: &PostgresStore) -> Result<ImportReport, StoreError> {
    let source_path = path.to_path_buf();
    let source = tokio::task::spawn_blocking(move || Source::open(&source_path))
        .await
        .map_err(|error| StoreError::unavailable("the thread that opens the SQLite file failed", error))??;
    let event_sequence = source.event_sequence;

    let mut client = target.client().await?;
    let transaction = client
        .transaction()
        .await
        .map_err(|error| unavailable(error, "could not begin the import's transaction"))?;
    // The session's timeouts (`session.rs`) are lifted: a copy of any size is not cut short, nor the session ended
    // while it waits between batches for the file's reader, and a second import waits for this one's lock.
    transaction
        .batch_execute(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; \
             SET LOCAL idle_in_transaction_session_timeout = 0",
        )
        .await
        .map_err(|error| unavailable(error, "could not lift the session's timeouts for the import"))?;
    // Held to the commit: a second import waits for this one, then finds the tables full and is refused.
    transaction
        .batch_execute("LOCK TABLE functions, executions, events, schedules IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(|error| unavailable(error, "could not lock the target's tables"))?;
    let holds_data = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM functions) OR EXISTS (SELECT 1 FROM executions) \
                    OR EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM schedules)",
            &[],
        )
        .await
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(|error| unavailable(error, "could not look whether the target is empty"))?;
    if holds_data {
        return Err(CoreError::invalid_field(
            "to",
            format!(
                "the database {} holds functions, executions, events or schedules already; migrate-store copies \
                 into an empty database only, so that nothing is copied twice",
                redacted_url(&target.options.url)
            ),
        )
        .into());
    }

    let (sender, mut receiver) = mpsc::channel(BATCHES_AHEAD);
    let reader = tokio::task::spawn_blocking(move || source.read_all(&sender));
    let mut counts = [0u64; TABLES.len()];
    let mut done = false;
    let mut table_index = 0;
    while !done {
        let Some(message) = receiver.recv().await else { break };
        match message? {
            Message::Done => done = true,
            Message::Rows { table, rows } => {
                table_index = table;
                counts[table] += copy_rows(&transaction, table, rows).await?;
            }
        }
    }
    drop(receiver);
    let read = reader
        .await
        .map_err(|error| StoreError::unavailable("the thread that reads the SQLite file failed", error));
    if !done {
        read?;
        return Err(StoreError::Unavailable {
            message: format!(
                "the reading of the SQLite file stopped after the table {}",
                TABLES[table_index].name
            ),
            source: None,
        });
    }

    // The file's server left these without an end: their lease has ended already, held by whoever ran them.
    transaction
        .batch_execute(
            "UPDATE executions SET lease_owner = instance, lease_expires_at = now() \
             WHERE status IN ('running', 'waiting')",
        )
        .await
        .map_err(|error| unavailable(error, "could not mark the executions the file left running"))?;
    let last_event_id: i64 = transaction
        .query_one(
            "UPDATE event_counter SET last_id = GREATEST(last_id, $1, (SELECT COALESCE(max(id), 0) FROM events)) \
             RETURNING last_id",
            &[&event_sequence],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|error| unavailable(error, "could not set the event counter"))?;
    transaction.commit().await.map_err(|error| unavailable(error, "could not commit the import"))?;

    let [functions, executions, logs, items, diffs, approvals, events, schedules, deliveries] = counts;
    Ok(ImportReport {
        functions,
        executions,
        logs,
        items,
        diffs,
        approvals,
        events,
        schedules,
        deliveries,
        last_event_id: u64::try_from(last_event_id).unwrap_or(0),
    })
}

/// Writes one batch of `TABLES[table]` with binary `COPY`; how many rows it wrote.
async fn copy_rows(
    transaction: &tokio_postgres::Transaction<'_>,
    table: usize,
    rows: Vec<Vec<Value>>,
) -> Result<u64, StoreError> {
    let spec = &TABLES[table];
    let failed =
        |error| unavailable(error, &format!("could not copy the table {} into PostgreSQL", spec.name));
    let statement = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", spec.name, spec.column_list());
    let sink = transaction.copy_in(&statement).await.map_err(failed)?;
    let types: Vec<Type> = spec.columns.iter().map(|(_, kind)| kind.postgres_type()).collect();
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for row in &rows {
        let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(Value::as_sql).collect();
        writer.as_mut().write(&values).await.map_err(failed)?;
    }
    writer.as_mut().finish().await.map_err(failed)
}

/// The SQLite file, open read-only and locked against any dashboard.
struct Source {
    path: PathBuf,
    connection: Connection,
    /// The file's exclusive lock, as a `SqliteStore` takes it; released when dropped, after the connection.
    _lock: File,
    /// The largest event id SQLite ever handed out (`sqlite_sequence`), which may be above every event still there.
    event_sequence: i64,
}

impl Source {
    /// Opens and checks the file: it exists, no dashboard has it open, it is an Agent Dashboard database of
    /// [`SQLITE_SCHEMA_VERSION`].
    fn open(path: &Path) -> Result<Self, StoreError> {
        let refuse = |message: String| StoreError::from(CoreError::invalid_field("from", message));
        let shown = path.display();
        let lock = File::open(path).map_err(|error| match error.kind() {
            ErrorKind::NotFound => refuse(format!("{shown} does not exist")),
            _ => StoreError::unavailable(format!("cannot open {shown}: {error}"), error),
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // A store of this very process may hold the file: closing this descriptor would drop that store's
                // SQLite locks (POSIX record locks belong to the process), so it is kept open instead.
                std::mem::forget(lock);
                return Err(refuse(format!(
                    "{shown} is in use by a running Agent Dashboard; stop it first, so that nothing changes while \
                     the file is copied"
                )));
            }
            Err(TryLockError::Error(error)) => {
                return Err(StoreError::unavailable(format!("could not lock {shown}: {error}"), error));
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags)
            .map_err(|error| sqlite_failed(path, "could not open the file", error))?;
        let version: u32 =
            connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(|error| {
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                    refuse(format!("{shown} is not an SQLite database"))
                } else {
                    sqlite_failed(path, "could not read the schema version", error)
                }
            })?;
        if version == 0 {
            return Err(refuse(format!("{shown} is not an Agent Dashboard database")));
        }
        if version < SQLITE_SCHEMA_VERSION {
            return Err(refuse(format!(
                "{shown} has schema version {version}, older than this Agent Dashboard's ({SQLITE_SCHEMA_VERSION}): \
                 start this version's server on it once (it brings the file up to date), stop it, then copy it"
            )));
        }
        if version > SQLITE_SCHEMA_VERSION {
            return Err(refuse(format!(
                "{shown} has schema version {version}, written by a newer Agent Dashboard (this one reads \
                 {SQLITE_SCHEMA_VERSION}): copy it with that version's migrate-store"
            )));
        }
        for table in &TABLES {
            let found = column_names(&connection, table.name)
                .map_err(|error| sqlite_failed(path, "could not read the schema", error))?;
            if found.is_empty() {
                return Err(refuse(format!(
                    "{shown} is not an Agent Dashboard database (it has no table {})",
                    table.name
                )));
            }
            // Every column is copied by name: one this build does not know would be lost, so the file is refused.
            let expected: Vec<&str> =
                table.columns.iter().map(|(name, _)| *name).chain(table.not_copied.iter().copied()).collect();
            if found != expected {
                return Err(refuse(format!(
                    "{shown} is not an Agent Dashboard database of schema version {SQLITE_SCHEMA_VERSION}: its table \
                     {} has the columns {}, not {}",
                    table.name,
                    found.join(", "),
                    expected.join(", ")
                )));
            }
        }
        let event_sequence: i64 = connection
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'events'", [], |row| {
                row.get(0)
            })
            .map_err(|error| sqlite_failed(path, "could not read the last event id", error))?;
        Ok(Self { path: path.to_path_buf(), connection, _lock: lock, event_sequence })
    }

    /// Reads every table, in one read transaction, and sends its rows in batches, then [`Message::Done`]; an error is
    /// sent too. Stops early when the writer has gone (it failed, and said so).
    fn read_all(self, sender: &mpsc::Sender<Result<Message, StoreError>>) {
        let outcome = self.send_tables(sender);
        let last = match outcome {
            Ok(()) => Ok(Message::Done),
            Err(Stop::Failed(error)) => Err(error),
            Err(Stop::WriterGone) => return,
        };
        // The writer may be gone by now too; then nobody needs to hear. The connection closes before the lock is
        // released (fields drop in order).
        let _ = sender.blocking_send(last);
    }

    fn send_tables(&self, sender: &mpsc::Sender<Result<Message, StoreError>>) -> Result<(), Stop> {
        let failed = |what: &str, error| Stop::Failed(sqlite_failed(&self.path, what, error));
        // One snapshot of the whole file, though nothing should change it while its lock is held.
        let snapshot = self
            .connection
            .unchecked_transaction()
            .map_err(|error| failed("could not begin reading", error))?;
        for (index, table) in TABLES.iter().enumerate() {
            let what = format!("could not read the table {}", table.name);
            let mut statement = snapshot
                .prepare(&format!("SELECT {} FROM {}", table.column_list(), table.name))
                .map_err(|error| failed(&what, error))?;
            let mut rows = statement.query([]).map_err(|error| failed(&what, error))?;
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(row) = rows.next().map_err(|error| failed(&what, error))? {
                let values = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(column, (name, kind))| {
                        convert(row, column, *kind).map_err(|detail| (name, detail))
                    })
                    .collect::<Result<Vec<Value>, _>>()
                    .map_err(|(name, detail)| {
                        Stop::Failed(StoreError::Unavailable {
                            message: format!(
                                "{}: the table {}, row {}: the column {name} {detail}",
                                self.path.display(),
                                table.name,
                                row_key(row)
                            ),
                            source: None,
                        })
                    })?;
                bytes += values.iter().map(Value::size).sum::<usize>();
                batch.push(values);
                if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
                    send(sender, Message::Rows { table: index, rows: std::mem::take(&mut batch) })?;
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                send(sender, Message::Rows { table: index, rows: batch })?;
            }
        }
        Ok(())
    }
}

/// The columns of `table` in the file, in their order; none when there is no such table.
fn column_names(connection: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    statement.query_map([table], |row| row.get(0))?.collect()
}

/// Why the reading thread stopped before the end.
enum Stop {
    /// Reading failed; the writer is told.
    Failed(StoreError),
    /// The writer failed and stopped listening; it has its own error to tell.
    WriterGone,
}

fn send(sender: &mpsc::Sender<Result<Message, StoreError>>, message: Message) -> Result<(), Stop> {
    sender.blocking_send(Ok(message)).map_err(|_| Stop::WriterGone)
}

/// An error of SQLite on the file, saying what failed.
fn sqlite_failed(path: &Path, what: &str, error: rusqlite::Error) -> StoreError {
    StoreError::unavailable(format!("{}: {what}: {error}", path.display()), error)
}

/// The first column of a row as text, to name the row in an error.
fn row_key(row: &rusqlite::Row<'_>) -> String {
    match row.get_ref(0) {
        Ok(ValueRef::Text(text)) => String::from_utf8_lossy(text).into_owned(),
        Ok(ValueRef::Integer(number)) => number.to_string(),
        _ => "?".to_owned(),
    }
}

/// How SQLite's store writes times: UTC, microseconds, fixed width.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The value of column `index` as `kind` converts it; the error ends a sentence that names the column.
fn convert(row: &rusqlite::Row<'_>, index: usize, kind: Kind) -> Result<Value, String> {
    let value = row.get_ref(index).map_err(|error| format!("cannot be read: {error}"))?;
    let text = |value: ValueRef<'_>| -> Result<Option<String>, String> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| "holds text that is not UTF-8".to_owned()),
            other => Err(format!("holds {:?}, not text", other.data_type())),
        }
    };
    Ok(match kind {
        Kind::Text => {
            Value::Text(
                text(value)?.map(|text| {
                    if text.contains('\0') { crate::codec::text(&text).into_owned() } else { text }
                }),
            )
        }
        Kind::Id => Value::Id(
            text(value)?
                .map(|text| Uuid::parse_str(&text).map_err(|_| format!("holds {text:?}, not a UUID")))
                .transpose()?,
        ),
        Kind::Time => Value::Time(text(value)?.map(|text| parse_time(&text)).transpose()?),
        Kind::Integer => Value::Integer(match value {
            ValueRef::Null => None,
            ValueRef::Integer(number) => Some(number),
            other => return Err(format!("holds {:?}, not an integer", other.data_type())),
        }),
        Kind::Real => Value::Real(match value {
            ValueRef::Null => None,
            ValueRef::Real(number) => Some(number),
            // SQLite may keep a whole number of a REAL column as an integer.
            ValueRef::Integer(number) => Some(number as f64),
            other => return Err(format!("holds {:?}, not a number", other.data_type())),
        }),
        Kind::Flag => Value::Flag(match value {
            ValueRef::Null => None,
            ValueRef::Integer(0) => Some(false),
            ValueRef::Integer(1) => Some(true),
            other => return Err(format!("holds {other:?}, not 0 or 1")),
        }),
    })
}

/// A time as SQLite's store writes it, or any RFC 3339 time.
fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    PrimitiveDateTime::parse(text, TIME_FORMAT)
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .map_err(|_| format!("holds {text:?}, not a time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_sqlite_wrote_them() {
        let time = parse_time("2026-11-24T03:41:05.123456Z").expect("a time");
        assert_eq!(time.microsecond(), 123_456);
        assert_eq!(time.offset(), time::UtcOffset::UTC);
        assert_eq!(
            parse_time("2026-11-24T04:41:05.5+01:00").expect("RFC 3339"),
            parse_time("2026-11-24T03:41:05.500000Z").expect("a time")
        );
        assert!(parse_time("yesterday").is_err());
    }
}
