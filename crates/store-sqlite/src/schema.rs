//! Opening connections with the store's settings, and the append-only migrations applied at open.

use std::path::Path;
use std::time::Duration;

use dashboard_store::StoreError;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::codec::unavailable;
use crate::options::SqliteOptions;

/// Every migration, in order; `PRAGMA user_version` is how many of them the file has. Append only: a released
/// migration is never edited, because files in the field have already run it.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_logs_without_rowid.sql"),
    include_str!("../migrations/0003_executions_without_rowid.sql"),
    include_str!("../migrations/0004_items.sql"),
    include_str!("../migrations/0005_sessions.sql"),
    include_str!("../migrations/0006_approvals.sql"),
    include_str!("../migrations/0007_budgets.sql"),
    include_str!("../migrations/0008_instances.sql"),
    include_str!("../migrations/0009_schedules_and_notifications.sql"),
];

/// The schema version this build writes: the number of migrations.
pub(super) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Statements kept prepared per connection; enough for every query the store makes.
const STATEMENT_CACHE: usize = 64;

/// The WAL file is truncated back to this size after a checkpoint, so one burst does not keep it large for ever.
const JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Opens the writer's connection: WAL, the chosen `synchronous` level, and the schema brought up to date.
pub(super) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let mut connection = open(path, options)?;
    let failed = |error: rusqlite::Error| {
        unavailable(&error, format!("{}: could not set up the database: {error}", path.display()))
    };
    let journal_mode: String =
        connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(failed)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable {
            message: format!(
                "{}: the file system does not support SQLite's write-ahead log (journal mode stayed {journal_mode:?})",
                path.display()
            ),
            source: None,
        });
    }
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES};",
            options.synchronous.pragma_value()
        ))
        .map_err(failed)?;
    migrate(&mut connection).map_err(|error| match error {
        MigrationError::Sqlite(error) => {
            unavailable(&error, format!("{}: could not migrate the schema: {error}", path.display()))
        }
        MigrationError::TooNew(found) => StoreError::Unavailable {
            message: format!(
                "{}: the file has schema version {found}, written by a newer Agent Dashboard; this one knows versions up \
                 to {SCHEMA_VERSION}",
                path.display()
            ),
            source: None,
        },
    })?;
    check_writable(&connection).map_err(|message| StoreError::Unavailable {
        message: format!("{}: {message}", path.display()),
        source: None,
    })?;
    Ok(connection)
}

/// Refuses a database this process cannot write, before anyone is told the store is open: SQLite opens a file it
/// may only read for reading without a word, and every write would then fail.
fn check_writable(connection: &Connection) -> Result<(), String> {
    if connection.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(
            "the database is read-only for this process (the file's mode or owner, or a read-only file \
                    system); the dashboard must be able to write it"
                .to_owned(),
        );
    }
    probe(connection).map_err(|error| format!("a test write failed: {error}"))
}

/// Commits one page: the schema version written back unchanged. A real write through the write-ahead log, so it
/// fails as every write would (a full disk, a file made read-only) without a table of its own.
pub(super) fn probe(connection: &Connection) -> rusqlite::Result<()> {
    let version: u32 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    connection.pragma_update(None, "user_version", version)
}

/// Opens a reader's connection: it may only read, so a bug can never write around the writer.
pub(super) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let connection = open(path, options)?;
    connection.execute_batch("PRAGMA query_only = ON").map_err(|error| {
        unavailable(&error, format!("{}: could not open a reader: {error}", path.display()))
    })?;
    Ok(connection)
}

fn open(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|error| {
        unavailable(&error, format!("{}: could not open the database: {error}", path.display()))
    })?;
    connection.busy_timeout(options.busy_timeout).map_err(|error| {
        unavailable(&error, format!("{}: could not set the busy timeout: {error}", path.display()))
    })?;
    tune(&connection).map_err(|error| {
        unavailable(&error, format!("{}: could not set up the connection: {error}", path.display()))
    })?;
    Ok(connection)
}

/// The statement cache, and the query planner's stability guarantee: a plan never depends on the values bound to it.
/// Without that guarantee SQLite marks a statement whose plan could change with a bound value (`LIMIT ?`, among
/// others) and prepares it anew whenever such a value changes — a cached statement parsed again on most runs. Every
/// query here has one right index whatever the values, so nothing is lost.
fn tune(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

enum MigrationError {
    Sqlite(rusqlite::Error),
    TooNew(u32),
}

impl From<rusqlite::Error> for MigrationError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

/// Applies the migrations the file has not had yet, each in its own transaction together with the new version.
fn migrate(connection: &mut Connection) -> Result<(), MigrationError> {
    let applied: u32 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if applied > SCHEMA_VERSION {
        return Err(MigrationError::TooNew(applied));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = index + 1;
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        transaction.execute_batch(migration)?;
        transaction.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        transaction.commit()?;
    }
    Ok(())
}

/// A migrated in-memory database, with the settings of the store's own connections: for the tests of the queries.
#[cfg(test)]
pub(super) fn migrated() -> Connection {
    let mut connection = Connection::open_in_memory().expect("an in-memory database");
    tune(&connection).expect("the connection's settings");
    assert!(migrate(&mut connection).is_ok());
    connection
}

/// The busy timeout: how long a connection waits for a lock held by another process before it gives up.
pub(super) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_record_the_version() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        assert!(migrate(&mut connection).is_ok());
        assert!(migrate(&mut connection).is_ok(), "a second open must not run them again");
        let version: u32 =
            connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("the version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_version_1_file_keeps_its_log_lines_when_they_move_to_a_table_without_rowid() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        connection.execute_batch(MIGRATIONS[0]).expect("the first migration");
        connection.execute_batch("PRAGMA user_version = 1").expect("set the version");
        connection
            .execute_batch(
                "INSERT INTO logs VALUES ('e1', 1, 't1', 'agent', 'first'), ('e1', 2, 't2', 'system', 'second')",
            )
            .expect("lines of version 1");
        assert!(migrate(&mut connection).is_ok());
        let lines: Vec<(u32, String)> = connection
            .prepare("SELECT seq, message FROM logs WHERE execution_id = 'e1' ORDER BY seq")
            .expect("a query")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("lines");
        assert_eq!(lines, [(1, "first".to_owned()), (2, "second".to_owned())]);
        assert!(connection.prepare("SELECT rowid FROM logs").is_err(), "logs has no rowid now");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        connection
            .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .expect("set the version");
        assert!(
            matches!(migrate(&mut connection), Err(MigrationError::TooNew(found)) if found == SCHEMA_VERSION + 1)
        );
    }

    #[test]
    fn a_version_2_file_keeps_its_executions_and_their_idempotency_keys_without_a_rowid() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        connection.execute_batch(MIGRATIONS[0]).expect("the first migration");
        connection.execute_batch(MIGRATIONS[1]).expect("the second migration");
        connection.execute_batch("PRAGMA user_version = 2").expect("set the version");
        let columns = "(id, function, function_id, function_version, backend, input, status, output, error, usage, \
                       attempt, retry_of, idempotency_key, triggered_by, created_at, started_at, finished_at)";
        connection
            .execute_batch(&format!(
                "INSERT INTO executions {columns} VALUES \
                 ('e1', 'f', 'f1', 2, 'demo', '{{\"a\":1}}', 'succeeded', '{{\"b\":2}}', NULL, NULL, 1, NULL, \
                  'key-1', 'ci', 't1', 't2', 't3'), \
                 ('e2', 'f', 'f1', 2, 'demo', '{{}}', 'queued', NULL, NULL, NULL, 2, 'e1', NULL, NULL, 't4', NULL, NULL), \
                 ('e3', 'f', 'f1', 2, 'demo', '{{}}', 'queued', NULL, NULL, NULL, 1, NULL, NULL, NULL, 't5', NULL, NULL)"
            ))
            .expect("executions of version 2");
        assert!(migrate(&mut connection).is_ok());

        // id, input, output, idempotency key, finished at
        type Kept = (String, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Kept> = connection
            .prepare("SELECT id, input, output, idempotency_key, finished_at FROM executions ORDER BY id")
            .expect("a query")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("executions");
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            (
                "e1".to_owned(),
                r#"{"a":1}"#.to_owned(),
                Some(r#"{"b":2}"#.to_owned()),
                Some("key-1".to_owned()),
                Some("t3".to_owned())
            )
        );
        assert!(connection.prepare("SELECT rowid FROM executions").is_err(), "executions has no rowid now");

        // Keys stay unique; any number of executions may have none; only keys are indexed.
        let insert = |id: &str, key: Option<&str>| {
            connection.execute(
                "INSERT INTO executions (id, function, function_id, function_version, backend, input, status, \
                 attempt, idempotency_key, created_at) VALUES (?1, 'f', 'f1', 2, 'demo', '{}', 'queued', 1, ?2, 't')",
                rusqlite::params![id, key],
            )
        };
        assert!(insert("e4", Some("key-1")).is_err(), "a second execution with key-1");
        assert!(insert("e4", None).is_ok());
        assert!(insert("e1", None).is_err(), "a second execution with id e1");
        let indexed: u32 = connection
            .query_row(
                "SELECT COUNT(*) FROM executions INDEXED BY executions_by_idempotency_key \
                        WHERE idempotency_key IS NOT NULL",
                [],
                |row| row.get(0),
            )
            .expect("the index's entries");
        assert_eq!(indexed, 1);
    }

    #[test]
    fn a_version_5_file_keeps_its_functions_with_the_default_approval_policy() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        for migration in &MIGRATIONS[..5] {
            connection.execute_batch(migration).expect("a migration before approvals");
        }
        connection.execute_batch("PRAGMA user_version = 5").expect("set the version");
        connection
            .execute_batch(
                "INSERT INTO functions (id, name, description, backend, prompt, input_schema, config, timeout_secs, \
                 max_concurrency, tags, metadata, version, created_at, updated_at) \
                 VALUES ('f1', 'alpha', '', 'demo', NULL, '{}', '{}', 60, NULL, '[]', '{}', 3, 't1', 't2')",
            )
            .expect("a function of version 5");
        assert!(migrate(&mut connection).is_ok());
        let kept: (String, u32, String, Option<u64>) = connection
            .query_row(
                "SELECT name, version, approval_policy, approval_timeout_secs FROM functions WHERE id = 'f1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .expect("the function");
        assert_eq!(kept, ("alpha".to_owned(), 3, "auto".to_owned(), None));
        let approvals: u32 = connection
            .query_row("SELECT COUNT(*) FROM approvals", [], |row| row.get(0))
            .expect("a new table");
        assert_eq!(approvals, 0);
    }

    #[test]
    fn a_version_6_file_keeps_its_functions_without_budgets_and_indexes_its_callers() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        for migration in &MIGRATIONS[..6] {
            connection.execute_batch(migration).expect("a migration before budgets");
        }
        connection.execute_batch("PRAGMA user_version = 6").expect("set the version");
        connection
            .execute_batch(
                "INSERT INTO functions (id, name, description, backend, prompt, input_schema, config, timeout_secs, \
                 max_concurrency, tags, metadata, version, created_at, updated_at, approval_policy) \
                 VALUES ('f1', 'alpha', '', 'demo', NULL, '{}', '{}', 60, NULL, '[]', '{}', 3, 't1', 't2', 'ask'); \
                 INSERT INTO executions (id, function, function_id, function_version, backend, input, status, \
                 attempt, triggered_by, created_at) VALUES \
                 ('e1', 'alpha', 'f1', 3, 'demo', '{}', 'queued', 1, 'ci', 't3'), \
                 ('e2', 'alpha', 'f1', 3, 'demo', '{}', 'queued', 1, NULL, 't4')",
            )
            .expect("a function and executions of version 6");
        assert!(migrate(&mut connection).is_ok());
        let kept: (String, String, Option<f64>, Option<f64>, Option<u64>) = connection
            .query_row(
                "SELECT name, approval_policy, max_cost_usd, daily_cost_usd, daily_tokens FROM functions",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .expect("the function");
        assert_eq!(kept, ("alpha".to_owned(), "ask".to_owned(), None, None, None));
        let indexed: u32 = connection
            .query_row(
                "SELECT COUNT(*) FROM executions INDEXED BY executions_by_caller WHERE triggered_by IS NOT NULL",
                [],
                |row| row.get(0),
            )
            .expect("the index's entries");
        assert_eq!(indexed, 1, "only executions with a caller are indexed");
    }

    #[test]
    fn a_version_8_file_keeps_its_executions_and_events_and_gains_empty_schedules_and_outbox() {
        let mut connection = Connection::open_in_memory().expect("an in-memory database");
        for migration in &MIGRATIONS[..8] {
            connection.execute_batch(migration).expect("a migration before schedules");
        }
        connection.execute_batch("PRAGMA user_version = 8").expect("set the version");
        connection
            .execute_batch(
                "INSERT INTO executions (id, function, function_id, function_version, backend, input, status, \
                 attempt, created_at, instance) VALUES ('e1', 'alpha', 'f1', 3, 'demo', '{}', 'queued', 1, 't1', 'i1'); \
                 INSERT INTO events (ts, kind, execution_id, function, backend, message, data) \
                 VALUES ('t1', 'execution.queued', 'e1', 'alpha', 'demo', 'queued', '{}')",
            )
            .expect("an execution and its event of version 8");
        assert!(migrate(&mut connection).is_ok());
        let kept: (String, String, Option<String>) = connection
            .query_row("SELECT id, status, instance FROM executions", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .expect("the execution");
        assert_eq!(kept, ("e1".to_owned(), "queued".to_owned(), Some("i1".to_owned())));
        let events: u32 =
            connection.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0)).expect("the events");
        assert_eq!(events, 1);
        for table in ["schedules", "notification_deliveries"] {
            let rows: u32 = connection
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))
                .expect("a new table");
            assert_eq!(rows, 0, "{table} starts empty");
        }
        // The defaults the contract's schema gives: no skip counted, no attempt made.
        connection
            .execute_batch(
                "INSERT INTO schedules (id, function, cron, timezone, input, overlap, enabled, created_at, updated_at) \
                 VALUES ('s1', 'alpha', '* * * * *', 'UTC', '{}', 'skip', 1, 't2', 't2'); \
                 INSERT INTO notification_deliveries (id, notification, event_id, event, status, created_at) \
                 VALUES ('d1', 'ops', 1, '{}', 'pending', 't2')",
            )
            .expect("rows that name only the required columns");
        let defaults: (u64, u32) = connection
            .query_row("SELECT skipped, attempts FROM schedules, notification_deliveries", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .expect("the defaults");
        assert_eq!(defaults, (0, 0));
    }

    #[test]
    fn a_statement_is_not_prepared_again_when_its_values_change() {
        let connection = migrated();
        let mut statement = connection
            .prepare("SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
            .expect("a statement");
        for limit in 1..=5_i64 {
            statement
                .query_map([limit, limit * 10], |row| row.get::<_, i64>(0))
                .expect("rows")
                .for_each(drop);
        }
        assert_eq!(statement.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[test]
    fn every_list_query_uses_an_index() {
        let connection = migrated();
        // The unfinished executions are few (what runs and waits), so sorting the three statuses' ids is cheap.
        let sorts_a_few =
            "SELECT id FROM executions WHERE status IN ('queued', 'running', 'waiting') ORDER BY id";
        // The newest first page walks the table itself, which is kept in id order (no rowid), and stops at the limit;
        // so do the list of schedules (all of them, few) and the newest first page of deliveries.
        let walks_the_keys = [
            ("SELECT id FROM executions ORDER BY id DESC LIMIT ?1", "SCAN executions"),
            (crate::schedules::LIST, "SCAN schedules"),
            (
                "SELECT id FROM notification_deliveries ORDER BY id DESC LIMIT ?1",
                "SCAN notification_deliveries",
            ),
        ];
        // Retention's delete of finished deliveries reads the whole outbox, which holds only what is pending and what
        // finished since the last prune (see `prune::PRUNE_DELIVERIES`).
        let scans_the_outbox = (crate::prune::PRUNE_DELIVERIES, "SCAN notification_deliveries");
        // Bound values, as the store runs them: with the planner's stability guarantee a plan cannot depend on them.
        let queries = [
            "SELECT id FROM executions WHERE id = ?1",
            "SELECT id FROM executions WHERE idempotency_key = ?1",
            "SELECT id FROM executions WHERE status = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            "SELECT id FROM executions WHERE function = ?1 ORDER BY id DESC LIMIT ?2",
            "SELECT id FROM executions WHERE backend = ?1 ORDER BY id DESC LIMIT ?2",
            sorts_a_few,
            "SELECT id FROM executions WHERE finished_at IS NOT NULL AND finished_at < ?1 ORDER BY finished_at, id \
             LIMIT ?2",
            "SELECT seq FROM logs WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE execution_id = ?1",
            "SELECT item_id, seq, status, ts, updated_at, body FROM items WHERE execution_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
            "SELECT COALESCE(MAX(seq), 0) FROM items WHERE execution_id = ?1",
            "SELECT seq, ts FROM items WHERE execution_id = ?1 AND item_id = ?2",
            "SELECT seq FROM items WHERE execution_id = ?1",
            "SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            "SELECT id FROM events WHERE execution_id = ?1",
            "SELECT id FROM events WHERE execution_id IS NULL AND ts < ?1",
            "SELECT name FROM functions ORDER BY name",
            "SELECT status, COUNT(*) FROM executions GROUP BY status",
            "SELECT id FROM approvals WHERE execution_id = ?1",
            "SELECT id FROM notification_deliveries WHERE status = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
        ];
        // The daily spend groups the executions of its range by day and function: a sort (see `spend::DAILY`).
        let spends = crate::spend::QUERIES.iter().copied();
        let outbox = crate::schedules::QUERIES.iter().chain(crate::deliveries::QUERIES).copied();
        let walks = walks_the_keys.into_iter().chain([scans_the_outbox]).map(|(query, _)| query);
        for query in queries
            .into_iter()
            .chain(crate::approvals::QUERIES.iter().copied())
            .chain(spends)
            .chain(outbox)
            .chain(walks)
        {
            let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {query}")).expect("a plan");
            // Unbound parameters are NULL, which is all a plan may know of them.
            let mut rows = statement.raw_query();
            let mut plan: Vec<String> = Vec::new();
            while let Some(row) = rows.next().expect("a plan row") {
                plan.push(row.get(3).expect("plan text"));
            }
            let plan = plan.join("; ");
            let is_a_known_walk = walks_the_keys
                .into_iter()
                .chain([scans_the_outbox])
                .any(|(walk, walk_plan)| query == walk && plan == walk_plan);
            assert!(!plan.contains("SCAN") || plan.contains("USING") || is_a_known_walk, "{query}: {plan}");
            assert!(
                query == sorts_a_few || query == crate::spend::DAILY || !plan.contains("TEMP B-TREE"),
                "{query} sorts without an index: {plan}"
            );
        }
    }
}
