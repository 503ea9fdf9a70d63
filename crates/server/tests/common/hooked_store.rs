//! `HookedStore`: a store that runs a test's hook before every call of the store it wraps, by the method's name — to
//! fail every call as a store that is down does (`Unavailable`, reads too), or to hold calls at a barrier so that two
//! callers interleave exactly where a race would.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine, Schedule,
    ScheduleId, Timestamp,
};
use dashboard_store::{
    ApprovalChange, ApprovalQuery, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionPage,
    ExecutionQuery, ExecutionUpdate, FinishedDelivery, FiredSchedule, FunctionKey, LoggedUpdate,
    NewExecution, OutboxRule, Recorded, ScheduleFire, Spend, SpendQuery, StatusCounts, StoreError,
    StoreStats,
};

/// What runs before each call: given the method's name, it lets the call through (`Ok`) or answers for it (`Err`).
pub type Hook =
    Arc<dyn Fn(&'static str) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync>;

/// A store whose every call first goes through a hook.
pub struct HookedStore {
    inner: Arc<dyn DashboardStore>,
    hook: Hook,
}

impl HookedStore {
    pub fn new(inner: Arc<dyn DashboardStore>, hook: Hook) -> Self {
        Self { inner, hook }
    }

    async fn before(&self, method: &'static str) -> Result<(), StoreError> {
        (self.hook)(method).await
    }
}

#[async_trait]
impl DashboardStore for HookedStore {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        self.before("create_function").await?;
        self.inner.create_function(function).await
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        self.before("get_function").await?;
        self.inner.get_function(key).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.before("list_functions").await?;
        self.inner.list_functions().await
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        self.before("update_function").await?;
        self.inner.update_function(id, spec, expected_version).await
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        self.before("delete_function").await?;
        self.inner.delete_function(id).await
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        self.before("create_execution").await?;
        self.inner.create_execution(execution).await
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        self.before("get_execution").await?;
        self.inner.get_execution(id).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        self.before("list_executions").await?;
        self.inner.list_executions(query).await
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        self.before("update_execution").await?;
        self.inner.update_execution(id, update).await
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        self.before("update_execution_with_logs").await?;
        self.inner.update_execution_with_logs(id, update, lines, items).await
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        self.before("set_session_id").await?;
        self.inner.set_session_id(id, session_id).await
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        self.before("get_diff").await?;
        self.inner.get_diff(id).await
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        self.before("list_unfinished").await?;
        self.inner.list_unfinished().await
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        self.before("count_by_status").await?;
        self.inner.count_by_status().await
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        self.before("append_logs").await?;
        self.inner.append_logs(id, lines).await
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        self.before("read_logs").await?;
        self.inner.read_logs(id, after, limit).await
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        self.before("upsert_items").await?;
        self.inner.upsert_items(id, items).await
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.before("list_items").await?;
        self.inner.list_items(id, after, limit).await
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.before("create_approval").await?;
        self.inner.create_approval(approval, item).await
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        self.before("decide_approval").await?;
        self.inner.decide_approval(id, decision, item).await
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        self.before("get_approval").await?;
        self.inner.get_approval(id).await
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        self.before("list_approvals").await?;
        self.inner.list_approvals(query).await
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        self.before("count_pending_approvals").await?;
        self.inner.count_pending_approvals().await
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        self.before("session_grant").await?;
        self.inner.session_grant(session_id, kind, grant_key).await
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        self.before("spend_since").await?;
        self.inner.spend_since(query).await
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        self.before("daily_spend").await?;
        self.inner.daily_spend(since).await
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.before("create_schedule").await?;
        self.inner.create_schedule(schedule).await
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.before("get_schedule").await?;
        self.inner.get_schedule(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.before("list_schedules").await?;
        self.inner.list_schedules().await
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        self.before("update_schedule").await?;
        self.inner.update_schedule(schedule).await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        self.before("delete_schedule").await?;
        self.inner.delete_schedule(id).await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        self.before("due_schedules").await?;
        self.inner.due_schedules(now, limit).await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        self.before("fire_schedule").await?;
        self.inner.fire_schedule(fire).await
    }

    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        // Synchronous, so no hook runs: it is set up once, before any call a test would hook.
        self.inner.set_outbox_rules(rules);
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.before("claim_deliveries").await?;
        self.inner.claim_deliveries(owner, notification, lease, limit).await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        self.before("finish_delivery").await?;
        self.inner.finish_delivery(id, owner, outcome).await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.before("list_deliveries").await?;
        self.inner.list_deliveries(query).await
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.before("list_events").await?;
        self.inner.list_events(after, limit).await
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        self.before("last_event_id").await?;
        self.inner.last_event_id().await
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.before("prune_finished_before").await?;
        self.inner.prune_finished_before(cutoff, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.before("ping").await?;
        self.inner.ping().await
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}
