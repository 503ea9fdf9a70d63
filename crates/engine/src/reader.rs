//! `StoreReader`: the store as the engine hands it out — reads only. Every change of a function or an execution goes
//! through the engine (checked, authorized, stored with its event, published), so the handle that embedders and the
//! server get cannot write.

use std::sync::Arc;

use dashboard_core::{
    Approval, ApprovalId, Delivery, Event, Execution, ExecutionId, Function, Item, LogLine, Timestamp,
};
use dashboard_store::{
    ApprovalQuery, DailySpend, DashboardStore, DeliveryQuery, ExecutionPage, ExecutionQuery, FunctionKey,
    Spend, SpendQuery, StatusCounts, StoreError, StoreStats,
};

/// Reads of the engine's store; cheap to clone. Each method is the store's own (see `DashboardStore` for its
/// contract).
#[derive(Clone)]
pub struct StoreReader {
    store: Arc<dyn DashboardStore>,
}

impl StoreReader {
    /// Reads of `store` (the engine hands out its own; tests and tools may wrap any store).
    pub fn new(store: Arc<dyn DashboardStore>) -> Self {
        Self { store }
    }

    /// A function by id or name.
    pub async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        self.store.get_function(key).await
    }

    /// Every function, sorted by name.
    pub async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.store.list_functions().await
    }

    /// An execution.
    pub async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        self.store.get_execution(id).await
    }

    /// A page of executions, newest first.
    pub async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        self.store.list_executions(query).await
    }

    /// How many executions are in each status.
    pub async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        self.store.count_by_status().await
    }

    /// Up to `limit` log lines of an execution with `seq > after`, in order.
    pub async fn read_logs(
        &self,
        id: ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.store.read_logs(id, after, limit).await
    }

    /// Up to `limit` transcript items of an execution with `seq > after`, in seq order, each as last stored.
    pub async fn list_items(
        &self,
        id: ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.store.list_items(id, after, limit).await
    }

    /// The unified diff stored with an execution's final status, when its backend reported one.
    pub async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        self.store.get_diff(id).await
    }

    /// Up to `limit` events with `id > after`, oldest first.
    pub async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.store.list_events(after, limit).await
    }

    /// The id of the newest event, 0 when there is none.
    pub async fn last_event_id(&self) -> Result<u64, StoreError> {
        self.store.last_event_id().await
    }

    /// An approval by id.
    pub async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        self.store.get_approval(id).await
    }

    /// Approvals matching `query`: pending ones oldest first, all of them newest first.
    pub async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        self.store.list_approvals(query).await
    }

    /// How many approvals are pending (the header's count).
    pub async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        self.store.count_pending_approvals().await
    }

    /// What the executions created at or after `query.since` spent (of one function, of one caller, when asked).
    pub async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        self.store.spend_since(query).await
    }

    /// What each function's executions spent per UTC day, for the days at or after `since`, by day then function.
    pub async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        self.store.daily_spend(since).await
    }

    /// Notification deliveries matching `query`, newest first.
    pub async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.store.list_deliveries(query).await
    }

    /// What the store has recorded about its writes, for metrics.
    pub fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}
