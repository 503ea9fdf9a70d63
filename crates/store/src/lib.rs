//! Where Agent Dashboard keeps its state: the [`DashboardStore`] trait and [`MemoryStore`].
//!
//! The store is the source of truth. Every change it makes to a function or an execution is recorded together with
//! the activity event that describes it, in one atomic step, so the feed can never disagree with the data. The trait
//! speaks only in `dashboard-core` types: no SQL, no HTTP, no backend appears in it, so an implementation can live
//! anywhere and prove itself with the conformance suite (the `testing` feature).
//!
//! This crate never depends on a database library: the durable stores are crates of their own
//! (`dashboard-store-sqlite`, the default), so the engine and embedders compile only the store they choose.

mod cluster;
mod error;
mod faults;
mod memory;
#[cfg(feature = "testing")]
mod shared_memory;
mod stats;
mod types;

#[cfg(feature = "testing")]
pub mod conformance;

pub use cluster::{Cluster, Heartbeat, InstanceInfo, LoginRecord, Signal, SignalSink};
pub use error::StoreError;
pub use faults::{FailingWrites, INJECTED_FAILURE};
pub use memory::MemoryStore;
#[cfg(feature = "testing")]
pub use shared_memory::SharedMemory;
pub use stats::{BATCH_SIZE_BOUNDS, COMMIT_SECONDS_BOUNDS, Histogram, HistogramSnapshot, StoreStats};
pub use types::{
    ApprovalChange, ApprovalQuery, DailySpend, DeliveryOutcome, DeliveryQuery, ExecutionPage, ExecutionQuery,
    ExecutionUpdate, FinishedDelivery, FireAction, FiredSchedule, FunctionKey, LoggedUpdate, NewExecution,
    OutboxRule, Recorded, ScheduleFire, Spend, SpendQuery, StatusCounts, deliveries_for,
};

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, ExecutionStatus, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine,
    Schedule, ScheduleId, Timestamp,
};

/// The storage contract of the dashboard.
///
/// Implementations must be safe to share between tasks (`Arc<dyn DashboardStore>`). Every method that changes a
/// function or an execution records the matching [`Event`] (built with `dashboard_core::NewEvent::for_execution` or
/// `for_function`) in the same atomic step and returns it, so the caller can publish it. Event ids are global and
/// strictly increasing; a reader that has seen id N never later finds a new event with an id ≤ N.
#[async_trait]
pub trait DashboardStore: Send + Sync + 'static {
    /// Registers a new function and records `function.created`.
    ///
    /// Errors: [`StoreError::DuplicateName`] if a function of that name exists.
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError>;

    /// A function by id or by name.
    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError>;

    /// All functions, sorted by name.
    async fn list_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// Replaces function `id` with the next version made from `spec` (see `Function::replaced_by`) and records
    /// `function.updated`. With `expected_version`, the replace happens only if the stored version is that one.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::VersionMismatch`], [`StoreError::DuplicateName`] when renamed
    /// onto another function's name, [`StoreError::Invalid`] when the spec breaks a domain rule.
    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError>;

    /// Deletes function `id` and records `function.deleted`; its executions, logs and events are kept.
    ///
    /// Errors: [`StoreError::NotFound`].
    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError>;

    /// Stores a new `queued` execution and records `execution.queued`.
    ///
    /// An execution whose id exists already is refused with [`StoreError::Invalid`] naming `id`.
    ///
    /// Idempotency: if `execution.idempotency_key` is set and an execution with that key exists, nothing is written
    /// and that execution comes back as `Err(StoreError::IdempotencyKeyExists { existing })`; the caller decides
    /// whether the repeated request is the same one.
    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError>;

    /// An execution by id.
    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError>;

    /// Executions matching `query`, newest first (by id, descending), at most `query.limit` of them. `next_cursor`
    /// is the id to pass as `before` for the next page, or `None` on the last page (also when the last page is full).
    /// A `limit` of 0 is read as 1. Text search folds case for ASCII letters only, so every store can agree.
    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError>;

    /// Changes an execution's status as a compare-and-set: it happens only if the stored status is `update.from`
    /// and the status machine allows `from → to`. Sets `started_at` on `running`, `finished_at` on a terminal
    /// status, and `output`, `error` and `usage` as given. Records the event of the new status.
    ///
    /// Errors, checked in this order: [`StoreError::NotFound`], [`StoreError::StatusMismatch`] (someone else changed
    /// it first), [`StoreError::Invalid`] for an illegal transition.
    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError>;

    /// Appends `lines` to an execution's log, upserts its transcript `items`, and changes its status, in one atomic
    /// step: all happen or none, and a reader that sees the new status sees the lines and items too. The status change
    /// is exactly that of [`update_execution`](Self::update_execution) (a compare-and-set, with its event); the lines
    /// are numbered as [`append_logs`](Self::append_logs) numbers them, and the items stored as
    /// [`upsert_items`](Self::upsert_items) stores them. This is how a run stores its first line with `running`, its
    /// last lines and items with its final status, and an item with the status it causes (an approval that makes it
    /// `waiting`), in one write each. Returns the change, the seq of the last stored line (of the last line before,
    /// when `lines` is empty) and the stored items.
    ///
    /// Errors: those of `update_execution`, in the same order; on any error no line is appended, no item stored and
    /// no event recorded.
    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError>;

    /// Sets the agent's session id of an execution (see `Execution::session_id`), replacing any set before, whatever
    /// its status: a backend reports it as soon as it knows it, while the run goes on. Returns the execution as
    /// stored. Records no event: the feed tells of status changes, and the session is seen on the execution itself.
    ///
    /// Errors: [`StoreError::NotFound`] for an unknown execution.
    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError>;

    /// The unified diff stored with an execution's final status (`ExecutionUpdate::diff`), or `None` when it has
    /// none or the execution is unknown. A later status change without a diff keeps the one stored.
    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError>;

    /// Executions that are `queued`, `running` or `waiting`, oldest first: what recovery looks at after a restart.
    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError>;

    /// How many executions there are in each status; every status is present, with 0 when there is none.
    async fn count_by_status(&self) -> Result<StatusCounts, StoreError>;

    /// Appends lines to an execution's log, numbering them after the last stored line (1 for the first line ever),
    /// with no gaps even under concurrent appends. Returns the seq of the last line appended (or of the last line
    /// stored, when `lines` is empty).
    ///
    /// Errors: [`StoreError::NotFound`] for an unknown execution.
    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError>;

    /// Up to `limit` log lines of an execution with `seq > after`, in order. An unknown execution has no lines.
    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError>;

    /// Inserts or updates transcript items of an execution by their id. A new id gets the next seq (1 for the
    /// execution's first item, then +1, with no gaps even under concurrent calls) and `ts = updated_at = now`; a known
    /// id keeps its seq and `ts` and takes the new status and body (its kind may change with the body), with
    /// `updated_at = now`. The same id twice in one call is one item: the later mention's status and body win, and it
    /// takes one seq, at its first mention. Returns the stored items in the order given, one per id, in the order of
    /// first mention (see [`merge_items_by_id`]). Items change no status and record no event: the engine sends them to
    /// listeners itself, and stores an item that changes a status with
    /// [`update_execution_with_logs`](Self::update_execution_with_logs).
    ///
    /// An empty `items` stores nothing and returns an empty `Vec`, but still checks the execution, as an append of no
    /// log lines does: an unknown execution is an error whatever the batch.
    ///
    /// Errors: [`StoreError::NotFound`] for an unknown execution; then nothing is stored.
    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError>;

    /// Up to `limit` items of an execution with `seq > after`, in seq order, each as last stored. An unknown execution
    /// has no items.
    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError>;

    /// Stores a new approval with its `approval.requested` event and, in the same atomic step, `item` (upserted as
    /// [`upsert_items`](Self::upsert_items) does; the approval's own transcript entry) and what the approval causes:
    ///
    /// - a **pending** approval needs its execution `running` or `waiting`; a `running` one becomes `waiting`
    ///   (`execution.waiting`, recorded after `approval.requested`); any other status is a
    ///   [`StoreError::StatusMismatch`] (expected `running`) and nothing is stored;
    /// - an approval stored **already decided** (by the function's policy or a grant for the session) also records
    ///   `approval.decided`, and changes no status, whatever the execution's.
    ///
    /// Errors, checked in this order: [`StoreError::NotFound`] for an unknown execution, [`StoreError::Invalid`]
    /// naming `id` when the approval's id exists already, then the status mismatch above.
    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError>;

    /// Decides a pending approval — a compare-and-set on `pending` — writing `decision` onto it with `decided_at =
    /// now` and recording `approval.decided`; in the same atomic step it upserts `item` and, when no other approval of
    /// the execution is still pending and the execution is `waiting`, moves the execution back to `running`
    /// (`execution.resumed`, recorded after `approval.decided`; `started_at` is kept). An execution in any other
    /// status does not move (one that ended keeps its end).
    ///
    /// Errors: [`StoreError::NotFound`] (entity `approval`), [`StoreError::AlreadyDecided`] with the approval as
    /// stored when it is not pending, [`StoreError::Invalid`] naming `status` for a decision of status `pending`.
    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError>;

    /// An approval by id.
    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError>;

    /// Approvals matching `query`, at most `query.limit` of them (a limit of 0 is read as 1): pending ones oldest
    /// first (by id), all of them newest first.
    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError>;

    /// How many approvals are pending, of all executions.
    async fn count_pending_approvals(&self) -> Result<u64, StoreError>;

    /// The newest approval of session `session_id` that was approved for the session (`for_session`) with this
    /// `kind` and `grant_key`: the grant that answers the same request in the session's later turns.
    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError>;

    /// What the executions created at or after `query.since` spent (of one function, of one caller, when asked):
    /// the sums of their stored usage's `cost_usd` and tokens (`total_tokens`, else `input_tokens + output_tokens`;
    /// a figure that is missing, negative or not a number counts 0). Budgets are checked against this, so spend
    /// survives a restart.
    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError>;

    /// What each function's executions spent per UTC day (by their creation time), for the days at or after `since`:
    /// one entry per (day, function) with at least one execution, by day then function.
    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError>;

    /// Stores a new schedule (built with `Schedule::create`) and records `schedule.created`.
    ///
    /// Errors: [`StoreError::Invalid`] naming `id` when a schedule with that id exists (nothing is written: a
    /// schedule of the config file, whose id comes from its declaration, is created once whoever starts first).
    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError>;

    /// A schedule by id.
    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;

    /// All schedules, oldest first (by id).
    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError>;

    /// Replaces the declaration of schedule `schedule.id` — function, cron, timezone, input, overlap, enabled — and
    /// its `next_run_at` and `updated_at` with those given, and records `schedule.updated`. Its history as stored
    /// (`last_run_at`, `last_execution`, `skipped`) and `created_at` are kept, whatever `schedule` says of them.
    ///
    /// Errors: [`StoreError::NotFound`] (entity `schedule`).
    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError>;

    /// Deletes a schedule and records `schedule.deleted`; the executions it fired are kept.
    ///
    /// Errors: [`StoreError::NotFound`] (entity `schedule`).
    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError>;

    /// Enabled schedules whose `next_run_at` is at or before `now`, earliest due first, at most `limit` (0 is read as
    /// 1).
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError>;

    /// Fires a schedule once for one due time, as a compare-and-set: only if it is stored enabled with
    /// `next_run_at = fire.due`. Then, in one atomic step, it sets `next_run_at = fire.next` and either
    /// ([`FireAction::Run`]) stores the execution with its `execution.queued` event, sets `last_run_at` to now and
    /// `last_execution` to it and records `schedule.fired`, or ([`FireAction::Skip`]) adds one to `skipped` and
    /// records `schedule.skipped`. So one due time fires once, however many instances try.
    ///
    /// Returns `None`, with nothing written, when the schedule is gone, disabled or no longer due at `fire.due` (another
    /// instance fired it, or a person changed it).
    ///
    /// Errors: those of [`create_execution`](Self::create_execution) for the execution; then nothing is written.
    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError>;

    /// Sets which recorded events go to the notification outbox: from now on, every method that records an event
    /// also writes, in the same atomic step, a pending [`Delivery`] (made with [`deliveries_for`]) for each rule it
    /// matches. Called once when the store is set up, before it records anything; replaces any rules set before.
    fn set_outbox_rules(&self, rules: Vec<OutboxRule>);

    /// Claims up to `limit` (0 is read as 1) pending deliveries of `notification` that are due (`next_attempt_at` at
    /// or before now) and not claimed by a live lease, oldest due first, for `owner` until now + `lease`: no other owner claims them until the lease ends
    /// (after a crash, they are claimed again). Returns them as stored.
    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Stores how an attempt at a delivery ended, when `owner` still holds its claim: `attempts` + 1, the status,
    /// `last_error` and `response_status` as the outcome says, `next_attempt_at` (a retry) or `finished_at` (delivered
    /// or given up), and the claim released. Giving up records `notification.failed`. Returns `None`, writing nothing,
    /// when the delivery is unknown, no longer pending, or claimed by another owner.
    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError>;

    /// Deliveries matching `query`, newest first.
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// Up to `limit` events with `id > after`, oldest first.
    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// The id of the newest event, 0 when there is none.
    async fn last_event_id(&self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` executions that finished before `cutoff`, with their logs, items, diffs, approvals and the events about
    /// them, and events not about an execution that are older than `cutoff`, oldest finished first, and deliveries
    /// that were delivered or given up before `cutoff` (pending ones are kept). Their idempotency
    /// keys become free again. Event ids are never reused, even when the newest events are pruned. Returns how many
    /// executions it deleted; call again while it returns `limit`.
    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError>;

    /// Answers when the store is usable for reads and for writes (the health check): an implementation whose writes
    /// can fail while reads go on (a full disk, a file made read-only) checks a write too — `SqliteStore` commits a
    /// probe — and says why it failed.
    async fn ping(&self) -> Result<(), StoreError>;

    /// What the store has recorded about its writes since it opened (commit latency, batch size), for metrics.
    /// Cheap and never blocking; the default reports nothing.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// What one execution's stored usage adds to a [`Spend`]: its `cost_usd` and its tokens (`total_tokens`, else
/// `input_tokens + output_tokens`), each 0 when missing, negative or not a number. A helper for implementations; the
/// SQL of a durable store must agree with it (the conformance suite checks).
pub fn usage_spend(usage: Option<&serde_json::Value>) -> (f64, u64) {
    let Some(usage) = usage else { return (0.0, 0) };
    let usage = dashboard_core::Usage::from_value(usage);
    (usage.cost_usd.unwrap_or(0.0), usage.tokens())
}

/// `items` with each id once, in the order of its first mention, with the status and body of its last: how
/// [`DashboardStore::upsert_items`] reads a batch that names an id twice. A helper for implementations.
pub fn merge_items_by_id(items: Vec<NewItem>) -> Vec<NewItem> {
    let mut merged: Vec<NewItem> = Vec::with_capacity(items.len());
    let mut index_by_id: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for item in items {
        match index_by_id.get(&item.id) {
            Some(&index) => merged[index] = item,
            None => {
                index_by_id.insert(item.id.clone(), merged.len());
                merged.push(item);
            }
        }
    }
    merged
}

/// Whether an execution in `status` may be changed to `next`: a helper for implementations.
pub fn check_transition(status: ExecutionStatus, next: ExecutionStatus) -> Result<(), StoreError> {
    status.check_transition(next).map_err(StoreError::Invalid)
}
