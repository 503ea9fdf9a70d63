//! The writer: one thread owns the only connection that writes, and commits whatever is queued in one transaction.
//!
//! Callers send an operation over a channel and wait for its answer. The thread takes the first operation, drains
//! whatever else is queued (up to [`MAX_GROUP`]), runs them all in one `BEGIN IMMEDIATE` transaction — each inside its
//! own savepoint, so a failing operation is undone alone and never spoils the others — commits once, and only then
//! answers every caller. So an answer means the change is committed, many concurrent triggers and log appends share
//! one commit (and one flush to disk), and nobody ever waits on a lock: there is only one writer.
//!
//! Operations see the connection as a [`WriteConnection`], which also carries the notification outbox's rules, so
//! that recording an event can write its deliveries in the same transaction (`events::record`).

use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use dashboard_store::{
    BATCH_SIZE_BOUNDS, COMMIT_SECONDS_BOUNDS, Histogram, OutboxRule, StoreError, StoreStats,
};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::codec::{OpResult, SqliteError};

/// The most operations committed in one transaction, so that one group never holds the file for long.
const MAX_GROUP: usize = 256;
/// How many operations may wait for the writer before callers wait to send (back-pressure, not an error).
const QUEUE: usize = 4096;

/// The writer's connection as an operation sees it: inside the group's open transaction, with the outbox rules in
/// force for the group. It reads as a [`Connection`] for everything else.
pub(super) struct WriteConnection<'a> {
    connection: &'a Connection,
    rules: &'a [OutboxRule],
}

impl<'a> WriteConnection<'a> {
    /// `connection` in a transaction, with `rules` for the outbox (none: recording an event writes nothing more).
    pub(super) fn new(connection: &'a Connection, rules: &'a [OutboxRule]) -> Self {
        Self { connection, rules }
    }

    /// Which recorded events go to the notification outbox; most often none.
    pub(super) fn outbox_rules(&self) -> &[OutboxRule] {
        self.rules
    }
}

impl Deref for WriteConnection<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

/// The outbox rules, shared between the store (which sets them) and the writer thread (which reads them once per
/// group): a clone of the inner `Arc` is all a group costs.
type SharedRules = Arc<RwLock<Arc<[OutboxRule]>>>;

/// One queued write, its result type erased so that different operations share a group.
trait Job: Send {
    /// Runs the operation inside the open transaction; whether it succeeded (if not, its savepoint is rolled back).
    fn run(&mut self, connection: &WriteConnection<'_>) -> bool;
    /// Answers the caller once the group's fate is known; `failure` when the group could not be committed.
    fn answer(self: Box<Self>, failure: Option<&GroupFailure>);
}

struct Operation<T, F> {
    operation: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Operation<T, F>
where
    T: Send,
    F: FnOnce(&WriteConnection<'_>) -> OpResult<T> + Send,
{
    fn run(&mut self, connection: &WriteConnection<'_>) -> bool {
        let Some(operation) = self.operation.take() else {
            return false;
        };
        let outcome = operation(connection).map_err(|error| error.0);
        let is_ok = outcome.is_ok();
        self.outcome = Some(outcome);
        is_ok
    }

    fn answer(self: Box<Self>, failure: Option<&GroupFailure>) {
        let answer = match (failure, self.outcome) {
            (Some(failure), _) => Err(failure.to_store_error()),
            (None, Some(outcome)) => outcome,
            (None, None) => Err(StoreError::Unavailable {
                message: "the store's writer failed in the middle of this change (a bug); it was undone"
                    .to_owned(),
                source: None,
            }),
        };
        // The caller may have stopped waiting; the change is committed all the same.
        let _ = self.reply.send(answer);
    }
}

/// Why a whole group was not committed; every caller of the group hears it.
struct GroupFailure {
    message: String,
    source: Arc<SqliteError>,
}

impl GroupFailure {
    fn new(what: &str, error: &rusqlite::Error) -> Self {
        Self { message: format!("{what}: {error}"), source: Arc::new(SqliteError(error.to_string())) }
    }

    fn to_store_error(&self) -> StoreError {
        StoreError::Unavailable {
            message: self.message.clone(),
            source: Some(Box::new(Arc::clone(&self.source))),
        }
    }
}

/// The handle of the writer thread; dropping it lets the thread finish what is queued, then joins it.
pub(super) struct Writer {
    sender: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WriterStats>,
    rules: SharedRules,
}

/// What the writer thread records about its group commits.
struct WriterStats {
    commit_seconds: Histogram,
    batch_size: Histogram,
}

impl Writer {
    /// Starts the writer thread on `connection`.
    pub(super) fn start(connection: Connection) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stats = Arc::new(WriterStats {
            commit_seconds: Histogram::new(COMMIT_SECONDS_BOUNDS),
            batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
        });
        let thread_stats = Arc::clone(&stats);
        let rules: SharedRules = Arc::new(RwLock::new(Arc::from([])));
        let thread_rules = Arc::clone(&rules);
        let thread = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || write_loop(connection, receiver, &thread_stats, &thread_rules))
            .map_err(|error| StoreError::unavailable("could not start the store's writer thread", error))?;
        Ok(Self { sender: Some(sender), thread: Some(thread), stats, rules })
    }

    /// Sets the outbox rules of every group from the next one on.
    pub(super) fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        // The value is replaced whole, so a poisoned lock still holds a consistent one.
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::from(rules);
    }

    /// The commit latency and batch size recorded so far.
    pub(super) fn stats(&self) -> StoreStats {
        StoreStats {
            commit_seconds: self.stats.commit_seconds.snapshot(),
            batch_size: self.stats.batch_size.snapshot(),
        }
    }

    /// Runs `operation` in the next group and answers once its group is committed.
    pub(super) async fn run<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteConnection<'_>) -> OpResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Operation { operation: Some(operation), outcome: None, reply });
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Whether the thread still takes work.
    pub(super) fn is_running(&self) -> bool {
        self.sender.as_ref().is_some_and(|sender| !sender.is_closed())
            && self.thread.as_ref().is_some_and(|thread| !thread.is_finished())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the loop once the queue is empty; joining closes the connection before the file
        // is used again (or removed, for a temporary store).
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the store's writer thread panicked");
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable { message: "the store's writer has stopped".to_owned(), source: None }
}

fn write_loop(
    connection: Connection,
    mut receiver: mpsc::Receiver<Box<dyn Job>>,
    stats: &WriterStats,
    rules: &RwLock<Arc<[OutboxRule]>>,
) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = receiver.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Read after the group is drained: a change sent after `set_outbox_rules` returned sees the new rules.
        let group_rules = Arc::clone(&rules.read().unwrap_or_else(PoisonError::into_inner));
        let started = Instant::now();
        let failure = commit_group(&WriteConnection::new(&connection, &group_rules), &mut group).err();
        stats.commit_seconds.observe(started.elapsed().as_secs_f64());
        stats.batch_size.observe(group.len() as f64);
        log::trace!("store: {} changes shared one commit", group.len());
        if let Some(failure) = &failure {
            log::error!("store: a group of {} changes was not committed: {}", group.len(), failure.message);
        }
        for job in group.drain(..) {
            job.answer(failure.as_ref());
        }
    }
    // Lets SQLite refresh its statistics for the query planner; cheap, and only what changed is looked at.
    if let Err(error) = connection.execute_batch("PRAGMA optimize") {
        log::warn!("store: PRAGMA optimize at close failed: {error}");
    }
    if let Err((_, error)) = connection.close() {
        log::warn!("store: closing the database failed: {error}");
    }
}

/// Runs every job of the group in one transaction and commits it.
fn commit_group(connection: &WriteConnection<'_>, group: &mut [Box<dyn Job>]) -> Result<(), GroupFailure> {
    run_cached(connection, "BEGIN IMMEDIATE")
        .map_err(|error| GroupFailure::new("could not begin a write transaction", &error))?;
    let result = run_jobs(connection, group).and_then(|()| {
        if connection.is_autocommit() {
            // SQLite rolled the transaction back by itself (it does on I/O errors and a full disk).
            return Err(GroupFailure {
                message: "the write transaction was rolled back by SQLite".to_owned(),
                source: Arc::new(SqliteError("transaction rolled back".to_owned())),
            });
        }
        run_cached(connection, "COMMIT").map_err(|error| GroupFailure::new("could not commit", &error))
    });
    if result.is_err()
        && !connection.is_autocommit()
        && let Err(error) = connection.execute_batch("ROLLBACK")
    {
        log::error!("store: rolling back a failed group failed too: {error}");
    }
    result
}

fn run_jobs(connection: &WriteConnection<'_>, group: &mut [Box<dyn Job>]) -> Result<(), GroupFailure> {
    for job in group.iter_mut() {
        run_cached(connection, "SAVEPOINT operation")
            .map_err(|error| GroupFailure::new("could not begin a savepoint", &error))?;
        // A panicking operation is a bug; it is undone like a failed one, and the group goes on.
        let succeeded = panic::catch_unwind(AssertUnwindSafe(|| job.run(connection))).unwrap_or(false);
        if !succeeded {
            run_cached(connection, "ROLLBACK TO operation")
                .map_err(|error| GroupFailure::new("could not undo a failed change", &error))?;
        }
        run_cached(connection, "RELEASE operation")
            .map_err(|error| GroupFailure::new("could not end a savepoint", &error))?;
    }
    Ok(())
}

/// Runs one statement that returns no rows from the connection's statement cache: the transaction statements run a
/// few times per change, and parsing them each time is work for nothing.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([])?;
    Ok(())
}
