//! `Inner`: the engine's state shared by the [`Dashboard`](crate::Dashboard) handle and its run tasks, and the
//! moves every change of an execution makes — a transition (a compare-and-set in the store with its event, then the
//! bus), log lines appended (cut, stored, published), transcript items upserted (stored, published), runs scheduled
//! and started.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_backend_api::BackendRegistry;
use dashboard_core::{ApprovalId, Execution, ExecutionId, Item, NewItem, NewLogLine};
use dashboard_store::{DashboardStore, ExecutionUpdate, Recorded, StoreError};
use tokio::runtime::Handle;
use tokio::sync::{Notify, broadcast};

use crate::approvals::Waiter;
use crate::budgets::{Price, TokenBudgets};
use crate::callbacks::CallbackKey;
use crate::cluster::{Identity, Membership};
use crate::compiled::CompiledCache;
use crate::functions::FunctionCache;
use crate::health::StoreProbe;
use crate::metrics::EngineMetrics;
use crate::run::{LogLimit, RunHandle, truncate_line};
use crate::scheduler::{QueuedRun, Scheduler};
use crate::{BusMessage, EngineError};

/// Settings of the run loop.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) cancel_grace: Duration,
    pub(crate) max_log_line_bytes: usize,
    pub(crate) log_limit: LogLimit,
    pub(crate) max_output_bytes: usize,
    pub(crate) public_url: Option<String>,
    /// What models cost, for usage a backend reports without a cost.
    pub(crate) prices: Vec<Price>,
    /// Tokens' daily budgets in dollars, by token name.
    pub(crate) token_budgets: TokenBudgets,
}

/// The state shared by the dashboard handle and its run tasks.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn DashboardStore>,
    pub(crate) backends: BackendRegistry,
    pub(crate) bus: broadcast::Sender<BusMessage>,
    pub(crate) compiled: CompiledCache,
    pub(crate) functions: FunctionCache,
    pub(crate) scheduler: Mutex<Scheduler>,
    pub(crate) runs: Mutex<HashMap<ExecutionId, Arc<RunHandle>>>,
    /// The backends waiting for a person's decision, by approval.
    pub(crate) approval_waiters: Mutex<HashMap<ApprovalId, Waiter>>,
    pub(crate) runs_ended: Notify,
    pub(crate) is_accepting: AtomicBool,
    /// Wakes the schedules' fire loop when a schedule changed here (`schedules.rs`).
    pub(crate) schedules_changed: Arc<tokio::sync::Notify>,
    pub(crate) callback_key: CallbackKey,
    /// Who this instance is.
    pub(crate) identity: Identity,
    /// Its part in a cluster, when this engine shares its store with other instances.
    pub(crate) cluster: Option<Membership>,
    pub(crate) settings: Settings,
    pub(crate) metrics: EngineMetrics,
    pub(crate) store_probe: StoreProbe,
    pub(crate) runtime: Handle,
}

impl Inner {
    /// Publishes a recorded change on the bus and returns the changed value.
    pub(crate) fn publish<T>(&self, recorded: Recorded<T>) -> T {
        // No receiver is fine: the bus only wakes listeners.
        let _ = self.bus.send(BusMessage::Event(recorded.event));
        recorded.value
    }

    /// The one place an execution's status changes: a compare-and-set in the store, then the bus.
    pub(crate) async fn transition(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Execution, EngineError> {
        let recorded = self.observe(self.store.update_execution(id, update).await)?;
        let execution = self.publish(recorded);
        self.metrics.record(&execution);
        Ok(execution)
    }

    /// [`transition`](Self::transition) with log lines and transcript items stored in the same store operation, so
    /// that the change, the lines and the items cost one write and a reader who sees the new status sees them too.
    /// The bus hears of the lines, then of the items, then of the event. On any error, none is stored.
    pub(crate) async fn transition_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<Execution, EngineError> {
        if lines.is_empty() && items.is_empty() {
            return self.transition(id, update).await;
        }
        let logged = self.observe(self.store.update_execution_with_logs(id, update, lines, items).await)?;
        let _ = self.bus.send(BusMessage::Logs { execution_id: id, last_seq: logged.last_seq });
        self.publish_stored_items(id, logged.items);
        let execution = self.publish(logged.recorded);
        self.metrics.record(&execution);
        Ok(execution)
    }

    /// The one place log lines are appended: each cut to the line limit, stored, and told to the bus; the seq of the
    /// last line. While the store cannot take them (a full disk), `is_held` lines wait and are tried again for as long
    /// as it takes (the execution counts as held meanwhile); other lines get the error. Lines from outside the engine
    /// pass the execution's log limit first ([`LogBudget::admit`](crate::run::LogBudget::admit)).
    pub(crate) async fn append_logs(
        &self,
        id: ExecutionId,
        mut lines: Vec<NewLogLine>,
        is_held: bool,
    ) -> Result<u64, EngineError> {
        for line in &mut lines {
            truncate_line(&mut line.message, self.settings.max_log_line_bytes);
        }
        let mut retry = is_held.then(|| self.metrics.store_writes.retry());
        loop {
            let attempt = if retry.is_some() { lines.clone() } else { std::mem::take(&mut lines) };
            match (self.observe(self.store.append_logs(id, attempt).await), retry.as_mut()) {
                (Ok(last_seq), _) => {
                    let _ = self.bus.send(BusMessage::Logs { execution_id: id, last_seq });
                    return Ok(last_seq);
                }
                (Err(StoreError::Unavailable { .. }), Some(retry)) => retry.wait(None).await,
                (Err(error), _) => return Err(error.into()),
            }
        }
    }

    /// The one place transcript items are stored outside a status change: upserted by id, then told to the bus as
    /// the store returned them. While the store cannot take them, `is_held` items wait and are tried again, as held
    /// lines are ([`append_logs`](Self::append_logs)); other items get the error. The execution's item limit is the
    /// caller's to apply ([`ItemBudget`](crate::run::ItemBudget)).
    pub(crate) async fn upsert_items(
        &self,
        id: ExecutionId,
        mut items: Vec<NewItem>,
        is_held: bool,
    ) -> Result<(), EngineError> {
        let mut retry = is_held.then(|| self.metrics.store_writes.retry());
        loop {
            let attempt = if retry.is_some() { items.clone() } else { std::mem::take(&mut items) };
            match (self.observe(self.store.upsert_items(id, attempt).await), retry.as_mut()) {
                (Ok(stored), _) => {
                    self.publish_stored_items(id, stored);
                    return Ok(());
                }
                (Err(StoreError::Unavailable { .. }), Some(retry)) => retry.wait(None).await,
                (Err(error), _) => return Err(error.into()),
            }
        }
    }

    /// Stores the agent's session id on an execution as soon as its backend reports it (so a continue can find it
    /// even while the run goes on), held and retried while the store cannot take it, as held lines are.
    pub(crate) async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<(), EngineError> {
        let mut retry = self.metrics.store_writes.retry();
        loop {
            match self.observe(self.store.set_session_id(id, session_id).await) {
                Ok(_) => return Ok(()),
                Err(StoreError::Unavailable { .. }) => retry.wait(None).await,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Tells the bus of stored items, if there are any: their seqs only, since the bus holds a message until its
    /// slowest receiver has read it, and an item may hold a megabyte.
    pub(crate) fn publish_stored_items(&self, id: ExecutionId, items: Vec<Item>) {
        if !items.is_empty() {
            let mut seqs: Vec<u64> = items.iter().map(|item| item.seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            // No receiver is fine: the bus only wakes listeners.
            let _ = self.bus.send(BusMessage::Items { execution_id: id, seqs: seqs.into() });
        }
    }

    /// Notes how a store write ended (see `StoreWrites`) and hands the result on.
    pub(crate) fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.metrics.store_writes.observe(&result);
        result
    }

    pub(crate) fn run_handle(&self, id: ExecutionId) -> Option<Arc<RunHandle>> {
        self.runs.lock().expect("runs lock poisoned").get(&id).cloned()
    }

    /// Queues a run and starts whatever may start.
    pub(crate) fn schedule(self: &Arc<Self>, run: QueuedRun) {
        self.scheduler.lock().expect("scheduler lock poisoned").push(run);
        self.start_startable();
    }

    /// Starts every queued run that the limits allow.
    pub(crate) fn start_startable(self: &Arc<Self>) {
        let startable = self.scheduler.lock().expect("scheduler lock poisoned").take_startable();
        for run in startable {
            self.spawn_run(run);
        }
    }

    /// Starts the task of a run the scheduler counts as running already.
    pub(crate) fn spawn_run(self: &Arc<Self>, run: QueuedRun) {
        let handle = Arc::new(RunHandle::new(self.settings.log_limit));
        self.runs.lock().expect("runs lock poisoned").insert(run.execution.id, handle.clone());
        self.runtime.spawn(self.clone().run(run, handle));
    }

    /// A run has ended and freed its slot: the next queued one may start, or, in a cluster, the next claim be made.
    pub(crate) fn slot_freed(self: &Arc<Self>) {
        self.runs_ended.notify_waiters();
        self.start_startable();
        if let Some(membership) = &self.cluster {
            membership.wake_claims();
        }
    }

    /// Waits until no execution runs, at most `limit`; whether none runs.
    pub(crate) async fn wait_for_runs(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ended = self.runs_ended.notified();
            if self.runs.lock().expect("runs lock poisoned").is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return false;
            }
        }
    }
}

pub(crate) fn cancelled_message(by: Option<&str>) -> String {
    match by {
        Some(name) => format!("cancelled by {name}"),
        None => "cancelled".to_owned(),
    }
}
