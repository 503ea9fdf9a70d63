//! `Dashboard`: the public face of the engine — functions, triggers, cancel, retry, the bus, recovery, shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dashboard_backend_api::{Action, BackendError, BackendRegistry, Principal, Readiness};
use dashboard_core::{CoreError, Event, Execution, ExecutionId, ExecutionStatus, Function, FunctionSpec};
use dashboard_store::{
    ApprovalQuery, DashboardStore, ExecutionUpdate, FunctionKey, NewExecution, StoreError,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::builder::DashboardBuilder;
use crate::inner::{Inner, cancelled_message};
use crate::metrics::EngineMetrics;
use crate::reader::StoreReader;
use crate::run::StopReason;
use crate::scheduler::QueuedRun;
use crate::{BusMessage, EngineError, INTERRUPTED_ERROR};

/// How long one backend's readiness check may take before the backend shows as not answering.
pub const READINESS_CHECK_LIMIT: Duration = Duration::from_secs(2);

/// One backend and what its readiness check found.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendReadiness {
    /// The name functions and triggers use.
    pub name: String,
    /// Its kind: `demo`, `command`, `codex`, `http`, `openai`.
    pub kind: &'static str,
    /// Whether it is ready, and what the check found.
    pub readiness: Readiness,
}

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What a trigger asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerRequest {
    /// The function, by id or name.
    pub function: String,
    /// The input; must satisfy the function's input schema.
    pub input: Value,
    /// Another backend than the function's default.
    pub backend: Option<String>,
    /// Makes repeating the request safe: the same key with the same request gives the first execution back.
    pub idempotency_key: Option<String>,
}

/// What a continue asks for: the next turn of an execution's session.
#[derive(Clone, Debug, PartialEq)]
pub struct ContinueRequest {
    /// The new turn's prompt, handed to the backend as the run's prompt (the function's template is not rendered).
    pub prompt: String,
    /// The new turn's input, checked against the function's schema; by default the continued execution's.
    pub input: Option<Value>,
}

/// The answer to a trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct Triggered {
    /// The execution.
    pub execution: Execution,
    /// False when an earlier request with the same idempotency key created it.
    pub created: bool,
}

/// What recovery found after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Executions that were running and are now `failed` as interrupted.
    pub interrupted: usize,
    /// Executions that were queued and are queued again.
    pub requeued: usize,
}

/// The control plane. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) inner: Arc<Inner>,
}

impl Dashboard {
    /// Starts building a dashboard.
    pub fn builder() -> DashboardBuilder {
        DashboardBuilder::default()
    }

    /// The store, for reads only: every change goes through the engine.
    pub fn store(&self) -> StoreReader {
        StoreReader::new(Arc::clone(&self.inner.store))
    }

    /// The store itself, writes included, for tools that fill it with data before a measurement (the bench). A write
    /// through it bypasses the engine — no checks, no authorization, nothing on the bus — so nothing else uses it.
    #[doc(hidden)]
    pub fn store_for_seeding(&self) -> Arc<dyn DashboardStore> {
        Arc::clone(&self.inner.store)
    }

    /// The backends.
    pub fn backends(&self) -> &BackendRegistry {
        &self.inner.backends
    }

    /// Every backend with a fresh readiness check, sorted by name: the checks run at once, each for at most
    /// [`READINESS_CHECK_LIMIT`], after which the backend shows as not answering.
    pub async fn backend_readiness(&self) -> Vec<BackendReadiness> {
        let checks: Vec<_> = self
            .inner
            .backends
            .iter()
            .map(|(name, backend)| {
                let (name, backend) = (name.to_owned(), backend.clone());
                tokio::spawn(async move {
                    let readiness =
                        tokio::time::timeout(READINESS_CHECK_LIMIT, backend.check()).await.unwrap_or_else(
                            |_| Readiness::not_ready("the readiness check did not answer within 2 s"),
                        );
                    BackendReadiness { name, kind: backend.kind(), readiness }
                })
            })
            .collect();
        let mut found = Vec::with_capacity(checks.len());
        for check in checks {
            match check.await {
                Ok(readiness) => found.push(readiness),
                Err(error) => log::warn!("a backend's readiness check failed: {error}"),
            }
        }
        found
    }

    /// A receiver of everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.inner.bus.subscribe()
    }

    /// How many executions wait for a slot of this engine. In a cluster they wait in the store, for whichever instance
    /// claims them first, and this is 0.
    pub fn queue_depth(&self) -> usize {
        self.inner.scheduler.lock().expect("scheduler lock poisoned").queue_depth()
    }

    /// The engine's counters since it started, for `GET /metrics`.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// How many executions run now.
    pub fn running_count(&self) -> usize {
        self.inner.runs.lock().expect("runs lock poisoned").len()
    }

    /// Whether the store takes writes now, for health checks: the store's own check (a probe write, for a store whose
    /// writes can fail), and no execution holding a change back because its writes failed. The error says why.
    ///
    /// One probe runs at a time and its answer is reused for a second (`health.rs`), so
    /// a flood of health checks costs the store one write a second. A probe that gets through wakes the held writes
    /// to try again at once, but the store stays unhealthy until they have landed: a small probe may fit where a
    /// run's log lines do not.
    pub async fn check_store(&self) -> Result<(), EngineError> {
        let metrics = &self.inner.metrics;
        let probed = self.inner.store_probe.check(self.inner.store.as_ref(), &metrics.store_writes).await;
        let held = metrics.held_executions();
        let trouble = match probed {
            Err(trouble) => trouble,
            Ok(()) if held <= 0 => return Ok(()),
            Ok(()) => match metrics.store_write_trouble() {
                Some(trouble) => format!("writes are failing ({trouble})"),
                None => "held writes are being retried".to_owned(),
            },
        };
        let message = match held {
            ..=0 => trouble,
            _ => format!("{trouble}; {held} executions wait to store their changes"),
        };
        Err(EngineError::StoreUnavailable(StoreError::Unavailable { message, source: None }))
    }

    /// Registers a function after checking the principal's right to change functions on its backend (the `admin`
    /// scope, and the backend among the principal's), its spec, its backend and its prompt template.
    pub async fn create_function(
        &self,
        principal: &Principal,
        spec: FunctionSpec,
    ) -> Result<Function, EngineError> {
        self.authorize(principal, &spec.backend, Action::ChangeFunction)?;
        let function = Function::create(spec)?;
        self.check_function(&function).await?;
        let recorded = self.inner.observe(self.inner.store.create_function(function).await)?;
        self.inner.functions.changed(&recorded.value);
        Ok(self.inner.publish(recorded))
    }

    /// Replaces a function with a new version; with `expected_version`, only if it is still at that version. The
    /// principal must be allowed to change functions on the backend it runs on and on the one it is to run on.
    pub async fn update_function(
        &self,
        principal: &Principal,
        key: &FunctionKey,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Function, EngineError> {
        let current = self.stored_function(key).await?;
        self.authorize(principal, &current.backend, Action::ChangeFunction)?;
        self.authorize(principal, &spec.backend, Action::ChangeFunction)?;
        self.check_function(&current.replaced_by(spec.clone())?).await?;
        let recorded =
            self.inner.observe(self.inner.store.update_function(current.id, spec, expected_version).await)?;
        self.inner.functions.changed(&current);
        self.inner.functions.changed(&recorded.value);
        Ok(self.inner.publish(recorded))
    }

    /// Deletes a function, when the principal may change functions on its backend; its executions are kept.
    pub async fn delete_function(
        &self,
        principal: &Principal,
        key: &FunctionKey,
    ) -> Result<Function, EngineError> {
        let current = self.stored_function(key).await?;
        self.authorize(principal, &current.backend, Action::ChangeFunction)?;
        let recorded = self.inner.observe(self.inner.store.delete_function(current.id).await)?;
        self.inner.functions.changed(&current);
        Ok(self.inner.publish(recorded))
    }

    /// Queues an execution of a function: checks the backend and the principal's right to use it, the input against
    /// the schema and the prompt template, and honours the idempotency key.
    pub async fn trigger(
        &self,
        principal: &Principal,
        request: TriggerRequest,
    ) -> Result<Triggered, EngineError> {
        let function = self.function(&FunctionKey::parse(&request.function)).await?;
        let backend = request.backend.clone().unwrap_or_else(|| function.backend.clone());
        self.check_backend("backend", &backend)?;
        self.authorize(principal, &backend, Action::Trigger)?;
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(CoreError::invalid_field(
                "idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
            )
            .into());
        }
        let new = NewExecution {
            backend,
            idempotency_key: request.idempotency_key,
            triggered_by: principal.name.clone(),
            ..NewExecution::of(&function, request.input)
        };
        self.enqueue(&function, new).await
    }

    /// Cancels an execution: a queued one at once, a running one by stopping its backend (the status becomes
    /// `cancelled` when the backend has stopped, or after the grace period). In a cluster, a run on another instance
    /// is stopped by that instance, which hears of the cancel at once (and at its next heartbeat at the latest).
    pub async fn cancel(&self, principal: &Principal, id: ExecutionId) -> Result<Execution, EngineError> {
        let execution = self.execution(id).await?;
        self.authorize(principal, &execution.backend, Action::Cancel)?;
        // Two rounds: an execution can start between the read and the compare-and-set.
        for _ in 0..2 {
            let execution = self.execution(id).await?;
            if execution.status.is_terminal() {
                return Err(EngineError::AlreadyFinished { id, status: execution.status });
            }
            if let Some(handle) = self.inner.run_handle(id) {
                handle.stop(StopReason::Cancelled { by: principal.name.clone() });
                return Ok(execution);
            }
            if let Some(membership) = &self.inner.cluster
                && matches!(execution.status, ExecutionStatus::Running | ExecutionStatus::Waiting)
            {
                membership.settings.cluster.request_cancel(id, principal.name.as_deref()).await?;
                return Ok(execution);
            }
            let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Cancelled)
                .error(cancelled_message(principal.name.as_deref()));
            match self.inner.transition(id, update).await {
                Ok(cancelled) => {
                    self.inner.scheduler.lock().expect("scheduler lock poisoned").remove(id);
                    return Ok(cancelled);
                }
                Err(EngineError::StatusChanged { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        self.execution(id).await
    }

    /// Whether the engine is shutting down (or shut down): background work of the server (the notification sender)
    /// stops taking new work then.
    pub fn is_shutting_down(&self) -> bool {
        !self.inner.is_accepting.load(Ordering::SeqCst)
    }

    /// Tells the feed's listeners of an event the store recorded outside the engine (the server's notification
    /// sender records `notification.failed`); other instances find it in the store.
    pub fn publish_event(&self, event: Event) {
        // No receiver is fine: the bus only wakes listeners.
        let _ = self.inner.bus.send(BusMessage::Event(event));
    }

    /// Runs a finished execution again as a new execution (`retry_of`, `attempt` + 1).
    pub async fn retry(&self, principal: &Principal, id: ExecutionId) -> Result<Execution, EngineError> {
        let previous = self.execution(id).await?;
        if !previous.status.is_terminal() {
            return Err(EngineError::NotFinished { id, status: previous.status });
        }
        let function = self.function(&FunctionKey::Id(previous.function_id)).await?;
        self.check_backend("backend", &previous.backend)?;
        self.authorize(principal, &previous.backend, Action::Retry)?;
        let new = NewExecution {
            backend: previous.backend.clone(),
            attempt: previous.attempt + 1,
            retry_of: Some(previous.id),
            triggered_by: principal.name.clone(),
            ..NewExecution::of(&function, previous.input.clone())
        };
        Ok(self.enqueue(&function, new).await?.execution)
    }

    /// Runs the next turn of a finished execution's session as a new execution of the same function and backend:
    /// `continues` = `id`, the same `session_id`, `attempt` 1, triggered by `principal` (who needs `trigger` on the
    /// backend), with `request.prompt` as its prompt. The backend receives the session in `run.resume`.
    ///
    /// Errors: [`EngineError::NotFound`]; [`EngineError::Forbidden`]; [`EngineError::NotFinished`] while the
    /// execution is queued or running; [`EngineError::CannotContinue`] when the backend cannot continue a session;
    /// [`EngineError::NoSession`] when it never reported one; [`EngineError::Invalid`] for an empty
    /// prompt, an unknown backend or an input the function's schema refuses.
    pub async fn continue_session(
        &self,
        principal: &Principal,
        id: ExecutionId,
        request: ContinueRequest,
    ) -> Result<Execution, EngineError> {
        let previous = self.execution(id).await?;
        self.check_backend("backend", &previous.backend)?;
        self.authorize(principal, &previous.backend, Action::Trigger)?;
        if !previous.status.is_terminal() {
            return Err(EngineError::NotFinished { id, status: previous.status });
        }
        let can_continue =
            self.inner.backends.get(&previous.backend).is_some_and(|backend| backend.can_continue());
        if !can_continue {
            return Err(EngineError::CannotContinue { backend: previous.backend });
        }
        let Some(session_id) = previous.session_id.clone() else {
            return Err(EngineError::NoSession { id });
        };
        if request.prompt.trim().is_empty() {
            return Err(CoreError::invalid_field("prompt", "a follow-up turn needs a prompt").into());
        }
        let function = self.function(&FunctionKey::Id(previous.function_id)).await?;
        let input = request.input.unwrap_or_else(|| previous.input.clone());
        let new = NewExecution {
            backend: previous.backend.clone(),
            continues: Some(previous.id),
            session_id: Some(session_id),
            prompt: Some(request.prompt),
            triggered_by: principal.name.clone(),
            ..NewExecution::of(&function, input)
        };
        Ok(self.enqueue(&function, new).await?.execution)
    }

    /// After a restart: executions left `running` or `waiting` become `failed` as interrupted, `queued` ones are
    /// queued again, and approvals left pending expire (nobody waits for them any more).
    ///
    /// In a cluster, the other instances' work is theirs: this instance joins the cluster, then ends as interrupted
    /// only its own leftovers (an earlier process under the same id) and the executions whose lease ran out, expiring
    /// their pending approvals; queued executions wait for the claims of whichever instance is free.
    pub async fn recover(&self) -> Result<RecoveryReport, EngineError> {
        if self.inner.cluster.is_some() {
            let own = self.inner.join_cluster().await?;
            let expired = self.inner.end_expired(None, usize::MAX).await?;
            return Ok(RecoveryReport { interrupted: own + expired, requeued: 0 });
        }
        let mut report = RecoveryReport::default();
        for execution in self.inner.store.list_unfinished().await? {
            if self.inner.run_handle(execution.id).is_some() {
                continue;
            }
            match execution.status {
                ExecutionStatus::Running | ExecutionStatus::Waiting => {
                    // Its items still in progress end with it, as those of a run that fails while the engine runs.
                    if self.inner.interrupt(&execution, INTERRUPTED_ERROR).await? {
                        report.interrupted += 1;
                    }
                }
                _ => {
                    let function =
                        self.inner.store.get_function(&FunctionKey::Id(execution.function_id)).await?;
                    let max_concurrency = function.and_then(|function| function.max_concurrency);
                    self.inner.schedule(QueuedRun { execution, max_concurrency, prompt: None });
                    report.requeued += 1;
                }
            }
        }
        // Nobody waits for an approval asked before the restart: each expires, telling why.
        let pending = ApprovalQuery { pending_only: true, execution: None, limit: 1000 };
        let mut orphans: Vec<ExecutionId> = self
            .inner
            .store
            .list_approvals(&pending)
            .await?
            .into_iter()
            .map(|approval| approval.execution_id)
            .filter(|id| self.inner.run_handle(*id).is_none())
            .collect();
        orphans.sort_unstable();
        orphans.dedup();
        for id in orphans {
            self.inner.expire_approvals_of(id, "the dashboard restarted while it was pending").await;
        }
        Ok(report)
    }

    /// Stops taking work, waits up to `grace` for running executions, then stops the rest (they end `failed` as
    /// interrupted). Queued executions stay queued in the store and run after the next start — in a cluster, on
    /// whichever instance claims them. In a cluster it then stops its claims, heartbeats and signals, and leaves the
    /// cluster when every run has ended.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.is_accepting.store(false, Ordering::SeqCst);
        self.inner.scheduler.lock().expect("scheduler lock poisoned").pause();
        let mut has_ended = self.inner.wait_for_runs(grace).await;
        if !has_ended {
            for handle in self.inner.runs.lock().expect("runs lock poisoned").values() {
                handle.stop(StopReason::Shutdown);
            }
            has_ended =
                self.inner.wait_for_runs(self.inner.settings.cancel_grace + Duration::from_secs(1)).await;
        }
        self.inner.leave_cluster(has_ended).await;
    }

    async fn enqueue(&self, function: &Function, new: NewExecution) -> Result<Triggered, EngineError> {
        if !self.inner.is_accepting.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let rendered = self.admit(function, &new).await?;
        let prompt = if new.prompt.is_some() { new.prompt.clone() } else { rendered };
        let (key, backend, input) = (new.idempotency_key.clone(), new.backend.clone(), new.input.clone());
        match self.inner.observe(self.inner.store.create_execution(new).await) {
            Ok(recorded) => {
                let execution = self.inner.publish(recorded);
                self.queued(function, execution.clone(), prompt);
                Ok(Triggered { execution, created: true })
            }
            Err(StoreError::IdempotencyKeyExists { existing }) => {
                let is_same_request = existing.function_id == function.id
                    && existing.backend == backend
                    && existing.input == input;
                if is_same_request {
                    Ok(Triggered { execution: *existing, created: false })
                } else {
                    Err(EngineError::IdempotencyKeyReused {
                        key: key.unwrap_or_default(),
                        existing: existing.id,
                    })
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// What a new execution must pass before it is stored, whoever asks for it (a trigger, a retry, a continue, a
    /// schedule's fire): no spent daily budget of its function or caller (spend is read from the store, so it holds
    /// across restarts), and an input the function's schema takes. Returns the rendered prompt; the input is checked
    /// (and the template rendered) even for a follow-up turn, whose prompt is its own. Refusals are
    /// [`EngineError::BudgetExhausted`] and [`EngineError::Invalid`]; any other error is the store's.
    pub(crate) async fn admit(
        &self,
        function: &Function,
        new: &NewExecution,
    ) -> Result<Option<String>, EngineError> {
        if let Some(exhausted) =
            self.inner.daily_budgets(function, new.triggered_by.as_deref()).await?.exhausted()
        {
            return Err(exhausted.into());
        }
        let compiled = self.inner.compiled.get(function).await?;
        Ok(compiled.prepare(&new.input).await?)
    }

    /// Counts an execution just stored queued (and published) and hands it to whoever runs it: this instance's
    /// scheduler, or — in a cluster — whichever instance claims it.
    pub(crate) fn queued(&self, function: &Function, execution: Execution, prompt: Option<String>) {
        self.inner.metrics.record(&execution);
        match &self.inner.cluster {
            // Stored queued is all it takes: whichever instance has a free slot claims it.
            Some(membership) => membership.wake_claims(),
            None => self.inner.schedule(QueuedRun {
                execution,
                max_concurrency: function.max_concurrency,
                prompt: Some(prompt),
            }),
        }
    }

    async fn check_function(&self, function: &Function) -> Result<(), EngineError> {
        self.check_backend("backend", &function.backend)?;
        let refusal = self
            .inner
            .backends
            .get(&function.backend)
            .and_then(|backend| backend.refuses_approval_policy(function.approval_policy));
        if let Some(reason) = refusal {
            return Err(CoreError::invalid_field("approval_policy", reason).into());
        }
        self.inner.compiled.get(function).await?;
        Ok(())
    }

    pub(crate) fn check_backend(&self, field: &str, name: &str) -> Result<(), EngineError> {
        if self.inner.backends.contains(name) {
            return Ok(());
        }
        let known = self.inner.backends.names().join(", ");
        Err(CoreError::invalid_field(
            field,
            format!("unknown backend {name:?}; configured backends: {known}"),
        )
        .into())
    }

    pub(crate) fn authorize(
        &self,
        principal: &Principal,
        backend: &str,
        action: Action,
    ) -> Result<(), EngineError> {
        self.inner.backends.authorize(principal, backend, action).map_err(|error| match error {
            BackendError::Forbidden { backend, reason } => EngineError::Forbidden { backend, reason },
            other => EngineError::Forbidden { backend: backend.to_owned(), reason: other.to_string() },
        })
    }

    /// The function to trigger: as read recently (see `functions.rs`), else from the store.
    pub(crate) async fn function(&self, key: &FunctionKey) -> Result<Arc<Function>, EngineError> {
        let function = self.inner.functions.get(self.inner.store.as_ref(), key).await?;
        function.ok_or_else(|| EngineError::function_not_found(key))
    }

    /// The function to change: always read from the store.
    async fn stored_function(&self, key: &FunctionKey) -> Result<Function, EngineError> {
        self.inner.store.get_function(key).await?.ok_or_else(|| EngineError::function_not_found(key))
    }

    /// An execution that must exist.
    pub(crate) async fn execution(&self, id: ExecutionId) -> Result<Execution, EngineError> {
        self.inner.store.get_execution(id).await?.ok_or_else(|| EngineError::execution_not_found(id))
    }
}
