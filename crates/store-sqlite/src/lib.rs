//! `SqliteStore`: the durable store, one SQLite file in WAL mode with one writer thread and a few readers — the default
//! store of Agent Dashboard, for one machine.
//!
//! Why a crate of its own: the trait crate (`dashboard-store`) holds no database library, so the engine and embedders
//! compile rusqlite and the bundled SQLite only when they choose this store, and every other store is a sibling crate
//! beside this one. It implements [`DashboardStore`] and runs the conformance suite unchanged (`tests/conformance.rs`).
//!
//! Every change goes to the writer thread (`writer.rs`), which commits whatever is queued in one transaction and only
//! then answers, so an answered change is in the file. Reads go to reader threads (`readers.rs`) that never wait for
//! the writer. The schema is created and migrated at open (`schema.rs`), from the append-only SQL files in
//! `migrations/`.
//!
//! What it must never do: let a SQLite type out of this crate — errors become [`StoreError`]s where they enter
//! (`codec.rs`), and no public item names rusqlite — or become a dependency of the trait crate or of the engine: only
//! whoever picks the store (the server, the bench, tests) depends on it.

mod approvals;
mod codec;
mod deliveries;
mod events;
mod executions;
mod functions;
mod items;
mod logs;
mod options;
mod prune;
mod readers;
mod schedules;
mod schema;
mod spend;
mod writer;

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine, Schedule,
    ScheduleId, Timestamp,
};

pub use options::{SqliteOptions, Synchronous, UnknownSynchronous};

use self::readers::Readers;
use self::writer::Writer;
use dashboard_store::{
    ApprovalChange, ApprovalQuery, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionPage,
    ExecutionQuery, ExecutionUpdate, FinishedDelivery, FiredSchedule, FunctionKey, LoggedUpdate,
    NewExecution, OutboxRule, Recorded, ScheduleFire, Spend, SpendQuery, StatusCounts, StoreError,
};

/// A [`DashboardStore`] in one SQLite file: durable, shared by every task, and safe under many concurrent writers.
///
/// - **WAL** (write-ahead log): readers never block the writer nor the writer them.
/// - **One writer thread** receives every change over a channel and commits whatever is queued in one
///   `BEGIN IMMEDIATE` transaction (group commit), each change in its own savepoint so that one refused change never
///   spoils the others. A caller hears back only after the commit: an answered change is in the file, and with
///   [`Synchronous::Full`] on the disk. Nobody waits on a lock, so there is no "database is locked" under load.
/// - **A few reader threads**, each with its own read-only connection, answer queries off the async runtime.
/// - **Migrations** are applied at open, append-only, the schema version kept in `PRAGMA user_version`.
/// - **The notification outbox** is written by the change that records its event, in the same savepoint: the rules
///   ([`set_outbox_rules`](DashboardStore::set_outbox_rules)) live in memory, and the writer reads them once per
///   group; without rules, recording an event is the one insert it always was.
///
/// Dropping the store lets the threads finish what is queued, closes the connections and joins the threads.
///
/// One store owns a file at a time: opening takes an exclusive lock (`flock`) on the database file itself, and a
/// second open of the same file — from this process or another, by the same path, a symlink or a hard link — is
/// refused while the first is open. The lock belongs to the file, not to the name it was opened by: two dashboards on
/// one file would each take the other's running executions for interrupted ones. Within one process, a second open
/// is refused before it opens the file at all (see `FileLock`).
///
/// A file the process cannot write is refused at open, saying why, rather than opened for reads that then fail
/// every write; and [`ping`](DashboardStore::ping) commits a probe, so a health check sees a full disk or a file
/// turned read-only.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    readers: Readers,
    writer: Writer,
    /// The database file itself, locked while the store is open so that no second store opens it by any name;
    /// released after the connections close (fields are dropped in order).
    _lock: FileLock,
    /// Declared last so that it is dropped last: the files go once every connection is closed.
    temporary: Option<TemporaryFiles>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default options, creating missing parent directories.
    ///
    /// Blocking: it opens files and may migrate the schema. From async code, call it in
    /// `tokio::task::spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path` with `options`, creating missing parent directories.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::unavailable(
                    format!("could not create the directory {}: {error}", parent.display()),
                    error,
                )
            })?;
        }
        let lock = lock_exclusively(&path)?;
        let writer = Writer::start(schema::open_writer(&path, &options)?)?;
        let connections = (0..options.readers.max(1))
            .map(|_| schema::open_reader(&path, &options))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = Readers::start(connections)?;
        Ok(Self { path, options, readers, writer, _lock: lock, temporary: None })
    }

    /// A store in a new file in the system's temporary directory, deleted when the store is dropped: for tests.
    pub fn open_temporary() -> Result<Self, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since_epoch| since_epoch.subsec_nanos());
        let name = format!(
            "agent-dashboard-{}-{}-{nanos}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let temporary = TemporaryFiles(path.clone());
        let mut store = Self::open_with(&path, SqliteOptions { readers: 2, ..SqliteOptions::default() })?;
        store.temporary = Some(temporary);
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// The schema version this build writes (the number of migrations); the file's is `PRAGMA user_version`.
    pub fn schema_version() -> u32 {
        schema::SCHEMA_VERSION
    }
}

/// The files (device, inode) this process has open as a store. A second open in this process is refused by a look at
/// the file's metadata, before any descriptor is opened on it: closing a descriptor of a file drops every POSIX
/// record lock this process holds on that file — SQLite's own locks, through its other connections — so a second
/// store must never open and close the first one's file (a hazard the SQLite documentation warns of).
static OPEN_FILES: Mutex<BTreeSet<FileKey>> = Mutex::new(BTreeSet::new());

/// What a file is, whatever its name: its device and inode.
type FileKey = (u64, u64);

fn file_key(metadata: &std::fs::Metadata) -> FileKey {
    (metadata.dev(), metadata.ino())
}

/// The lock that keeps every other store off one database file: an exclusive `flock` on the file itself, against
/// other processes, and the file's entry among this process's [`OPEN_FILES`], against a second store in this one.
/// Dropping it closes the file, then removes the entry (fields are dropped in order).
struct FileLock {
    _file: File,
    _entry: OpenFileEntry,
}

/// A file's entry among [`OPEN_FILES`], removed when dropped.
struct OpenFileEntry(FileKey);

impl Drop for OpenFileEntry {
    fn drop(&mut self) {
        open_files().remove(&self.0);
    }
}

fn open_files() -> std::sync::MutexGuard<'static, BTreeSet<FileKey>> {
    // The set is consistent after any panic (one insert or remove at a time): a poisoned lock is still usable.
    OPEN_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the lock that keeps every other store off the file at `path` (see [`FileLock`]). The `flock` is keyed by
/// the file, not the path, so a symlink or a hard link to a file in use is refused too. SQLite's own locks are POSIX
/// record locks, which `flock` neither sees nor disturbs. The lock goes when the store is dropped, or with the
/// process (so a `kill -9` leaves no stale lock behind).
///
/// The file is opened for writing (created empty if missing, which SQLite reads as an empty database): a file this
/// process may only read is refused here, with the reason.
fn lock_exclusively(path: &Path) -> Result<FileLock, StoreError> {
    // Held while the file is opened and locked, so that two stores opening the same file at once in this process
    // cannot both get past the look at the set.
    let mut open_files = open_files();
    match std::fs::metadata(path) {
        Ok(metadata) if open_files.contains(&file_key(&metadata)) => return Err(in_use(path)),
        // A missing file is created below; any other trouble is met, and said, by the open.
        _ => {}
    }
    let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(|error| {
        let hint = match error.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                "; the dashboard writes its database: check the file's owner and mode, and that its file system is \
                 not mounted read-only"
            }
            _ => "",
        };
        StoreError::unavailable(format!("cannot open {} for writing: {error}{hint}", path.display()), error)
    })?;
    let key = file.metadata().map(|metadata| file_key(&metadata)).map_err(|error| {
        StoreError::unavailable(format!("could not read {}: {error}", path.display()), error)
    })?;
    if open_files.contains(&key) {
        // The name was pointed at a file this process has open as a store between the look and the open. Closing
        // this descriptor would drop that store's SQLite locks: it is kept open, for good, instead.
        std::mem::forget(file);
        return Err(in_use(path));
    }
    match file.try_lock() {
        Ok(()) => {
            open_files.insert(key);
            Ok(FileLock { _file: file, _entry: OpenFileEntry(key) })
        }
        // Locked by another process: closing this descriptor touches no lock of this process's (no store of this
        // process has the file open).
        Err(TryLockError::WouldBlock) => Err(in_use(path)),
        Err(TryLockError::Error(error)) => {
            Err(StoreError::unavailable(format!("could not lock {}: {error}", path.display()), error))
        }
    }
}

/// The refusal of a second store on a file in use, by this process or another.
fn in_use(path: &Path) -> StoreError {
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    StoreError::Unavailable {
        message: format!(
            "{} is in use by another Agent Dashboard (the file {} is locked, whatever name it was opened by); one \
             server per database file",
            path.display(),
            shown.display()
        ),
        source: None,
    }
}

/// Removes a temporary store's files (the database, its write-ahead log and shared-memory index) when dropped.
struct TemporaryFiles(PathBuf);

impl Drop for TemporaryFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            // A file that is already gone (or was never made) is what we want.
            let _ = std::fs::remove_file(file);
        }
    }
}

#[async_trait]
impl DashboardStore for SqliteStore {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        self.writer.run(move |connection| functions::create(connection, function)).await
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        let key = key.clone();
        self.readers.run(move |connection| functions::get(connection, &key)).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.readers.run(functions::list).await
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        self.writer.run(move |connection| functions::update(connection, id, spec, expected_version)).await
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        self.writer.run(move |connection| functions::delete(connection, id)).await
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        self.writer.run(move |connection| executions::create(connection, execution)).await
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        self.readers.run(move |connection| executions::get(connection, id)).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let query = query.clone();
        self.readers.run(move |connection| executions::list(connection, &query)).await
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        self.writer.run(move |connection| executions::update(connection, id, update)).await
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        self.writer
            .run(move |connection| {
                // The update reads and checks before it writes; should the append or the upsert fail after it, the
                // operation's savepoint undoes all three.
                let recorded = executions::update(connection, id, update)?;
                let last_seq = logs::append_to_existing(connection, id, lines)?;
                let items = items::upsert_into_existing(connection, id, items)?;
                Ok(LoggedUpdate { recorded, last_seq, items })
            })
            .await
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        let session_id = session_id.to_owned();
        self.writer.run(move |connection| executions::set_session_id(connection, id, &session_id)).await
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.writer.run(move |connection| approvals::create(connection, approval, item)).await
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.writer.run(move |connection| approvals::decide(connection, id, decision, item)).await
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        self.readers.run(move |connection| approvals::get(connection, id)).await
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        let query = query.clone();
        self.readers.run(move |connection| approvals::list(connection, &query)).await
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        self.readers.run(approvals::count_pending).await
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        let (session_id, grant_key) = (session_id.to_owned(), grant_key.to_owned());
        self.readers
            .run(move |connection| approvals::session_grant(connection, &session_id, kind, &grant_key))
            .await
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        let query = query.clone();
        self.readers.run(move |connection| spend::since(connection, &query)).await
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        self.readers.run(move |connection| spend::daily(connection, since)).await
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.writer.run(move |connection| schedules::create(connection, schedule)).await
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.readers.run(move |connection| schedules::get(connection, id)).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.readers.run(schedules::list).await
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.writer.run(move |connection| schedules::update(connection, schedule)).await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        self.writer.run(move |connection| schedules::delete(connection, id)).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        self.readers.run(move |connection| schedules::due(connection, now, limit)).await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        self.writer.run(move |connection| schedules::fire(connection, fire)).await
    }

    /// The writer reads the rules once per group commit: a change queued after this call sees them.
    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        self.writer.set_outbox_rules(rules);
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (owner, notification) = (owner.to_owned(), notification.to_owned());
        self.writer
            .run(move |connection| deliveries::claim(connection, &owner, &notification, lease, limit))
            .await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        let owner = owner.to_owned();
        self.writer.run(move |connection| deliveries::finish(connection, id, &owner, outcome)).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let query = query.clone();
        self.readers.run(move |connection| deliveries::list(connection, &query)).await
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        self.readers.run(move |connection| executions::get_diff(connection, id)).await
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        self.readers.run(executions::list_unfinished).await
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        self.readers.run(executions::count_by_status).await
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        self.writer.run(move |connection| logs::append(connection, id, lines)).await
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        self.readers.run(move |connection| logs::read_after(connection, id, after, limit)).await
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        self.writer.run(move |connection| items::upsert(connection, id, items)).await
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.readers.run(move |connection| items::read_after(connection, id, after, limit)).await
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.readers.run(move |connection| events::list_after(connection, after, limit)).await
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        self.readers.run(events::last_id).await
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.writer.run(move |connection| prune::finished_before(connection, cutoff, limit)).await
    }

    fn stats(&self) -> dashboard_store::StoreStats {
        self.writer.stats()
    }

    /// Reads, then commits a probe through the writer (see `schema::probe`): a store that answers reads but cannot
    /// write — a full disk, a file made read-only — is not healthy.
    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_running() {
            return Err(StoreError::Unavailable {
                message: "the store's writer has stopped".to_owned(),
                source: None,
            });
        }
        self.readers
            .run(|connection| {
                connection.query_row("SELECT 1", [], |_| Ok(()))?;
                Ok(())
            })
            .await?;
        self.writer.run(|connection| Ok(schema::probe(connection)?)).await
    }
}
