//! `FailingWrites`: a store wrapper that fails every write while switched on, as a full disk does — for tests and
//! drills of how the engine and the server live through a store that answers reads but refuses writes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, ExecutionStatus, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine,
    Schedule, ScheduleId, Timestamp,
};

use crate::{
    ApprovalChange, ApprovalQuery, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionPage,
    ExecutionQuery, ExecutionUpdate, FinishedDelivery, FiredSchedule, FunctionKey, LoggedUpdate,
    NewExecution, OutboxRule, Recorded, ScheduleFire, Spend, SpendQuery, StatusCounts, StoreError,
    StoreStats,
};

/// The message of an injected failure: the words SQLite uses for a full disk.
pub const INJECTED_FAILURE: &str = "could not commit: database or disk is full (injected)";

/// Wraps a store; while [switched on](Self::fail_writes), every write (and [`ping`](DashboardStore::ping)) fails
/// with [`StoreError::Unavailable`] and changes nothing, while reads go on.
/// [`fail_from_next_start`](Self::fail_from_next_start) switches it on at the next write that starts an execution, to
/// catch a run between its trigger and its start. [`spare_ping`](Self::spare_ping) lets the probe through while writes fail, as a disk
/// with room for a small probe but not for a batch of log lines does; [`pings`](Self::pings) counts the probes.
#[derive(Debug, Default)]
pub struct FailingWrites<S> {
    inner: S,
    is_failing: AtomicBool,
    is_armed: AtomicBool,
    is_ping_spared: AtomicBool,
    n_pings: AtomicU64,
}

impl<S: DashboardStore> FailingWrites<S> {
    /// Wraps `inner`, with writes going through.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            is_failing: AtomicBool::new(false),
            is_armed: AtomicBool::new(false),
            is_ping_spared: AtomicBool::new(false),
            n_pings: AtomicU64::new(0),
        }
    }

    /// Makes every write fail (`true`) or go through again (`false`).
    pub fn fail_writes(&self, is_failing: bool) {
        self.is_armed.store(false, Ordering::SeqCst);
        self.is_failing.store(is_failing, Ordering::SeqCst);
    }

    /// Lets [`ping`](DashboardStore::ping) through even while writes fail (`true`), or fail with them (`false`, the
    /// default).
    pub fn spare_ping(&self, is_spared: bool) {
        self.is_ping_spared.store(is_spared, Ordering::SeqCst);
    }

    /// How many times [`ping`](DashboardStore::ping) was called.
    pub fn pings(&self) -> u64 {
        self.n_pings.load(Ordering::SeqCst)
    }

    /// Switches failing writes on at the next change of an execution to `running`, which fails as the first.
    pub fn fail_from_next_start(&self) {
        self.is_armed.store(true, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, update: Option<&ExecutionUpdate>) -> Result<(), StoreError> {
        let is_start = update.is_some_and(|update| {
            update.from == ExecutionStatus::Queued && update.to == ExecutionStatus::Running
        });
        if is_start && self.is_armed.swap(false, Ordering::SeqCst) {
            self.is_failing.store(true, Ordering::SeqCst);
        }
        if self.is_failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable { message: INJECTED_FAILURE.to_owned(), source: None });
        }
        Ok(())
    }
}

#[async_trait]
impl<S: DashboardStore> DashboardStore for FailingWrites<S> {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        self.check(None)?;
        self.inner.create_function(function).await
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        self.inner.get_function(key).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.inner.list_functions().await
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        self.check(None)?;
        self.inner.update_function(id, spec, expected_version).await
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        self.check(None)?;
        self.inner.delete_function(id).await
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        self.check(None)?;
        self.inner.create_execution(execution).await
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        self.inner.get_execution(id).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        self.inner.list_executions(query).await
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        self.check(Some(&update))?;
        self.inner.update_execution(id, update).await
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        self.check(Some(&update))?;
        self.inner.update_execution_with_logs(id, update, lines, items).await
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        self.check(None)?;
        self.inner.set_session_id(id, session_id).await
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.check(None)?;
        self.inner.create_approval(approval, item).await
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.check(None)?;
        self.inner.decide_approval(id, decision, item).await
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        self.inner.get_approval(id).await
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        self.inner.list_approvals(query).await
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        self.inner.count_pending_approvals().await
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        self.inner.session_grant(session_id, kind, grant_key).await
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        self.inner.spend_since(query).await
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        self.inner.daily_spend(since).await
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        self.inner.get_diff(id).await
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        self.inner.list_unfinished().await
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        self.inner.count_by_status().await
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        self.check(None)?;
        self.inner.append_logs(id, lines).await
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        self.inner.read_logs(id, after, limit).await
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        self.check(None)?;
        self.inner.upsert_items(id, items).await
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.inner.list_items(id, after, limit).await
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.check(None)?;
        self.inner.create_schedule(schedule).await
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.inner.get_schedule(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.inner.list_schedules().await
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.check(None)?;
        self.inner.update_schedule(schedule).await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        self.check(None)?;
        self.inner.delete_schedule(id).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        self.inner.due_schedules(now, limit).await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        self.check(None)?;
        self.inner.fire_schedule(fire).await
    }

    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        // Configuration, not a write to the disk: it goes through whatever the switch says.
        self.inner.set_outbox_rules(rules);
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.check(None)?;
        self.inner.claim_deliveries(owner, notification, lease, limit).await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        self.check(None)?;
        self.inner.finish_delivery(id, owner, outcome).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.inner.list_deliveries(query).await
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.inner.list_events(after, limit).await
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        self.inner.last_event_id().await
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.check(None)?;
        self.inner.prune_finished_before(cutoff, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.n_pings.fetch_add(1, Ordering::SeqCst);
        if !self.is_ping_spared.load(Ordering::SeqCst) {
            self.check(None)?;
        }
        self.inner.ping().await
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}
