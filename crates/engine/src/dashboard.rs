//! `Dashboard`: the public face of the engine — functions, triggers, cancel, retry, the bus, recovery, shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_backend_api::{Action, Backend, BackendError, BackendRegistry, Principal};
use dashboard_core::{
    CoreError, Execution, ExecutionId, ExecutionStatus, Function, FunctionSpec, NewLogLine,
};
use dashboard_store::{DashboardStore, ExecutionUpdate, FunctionKey, NewExecution, Recorded, StoreError};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::{Notify, broadcast};

use crate::callbacks::CallbackKey;
use crate::compiled::CompiledCache;
use crate::functions::FunctionCache;
use crate::metrics::EngineMetrics;
use crate::run::{LogLimit, RunHandle, StopReason};
use crate::scheduler::{QueuedRun, Scheduler};
use crate::{BusMessage, EngineError, INTERRUPTED_ERROR};

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Settings of the run loop.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) cancel_grace: Duration,
    pub(crate) max_log_line_bytes: usize,
    pub(crate) log_limit: LogLimit,
    pub(crate) max_output_bytes: usize,
    pub(crate) public_url: Option<String>,
}

/// The largest output, as JSON, that a run may store unless the builder says otherwise: 1 MiB.
const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Builds a [`Dashboard`].
pub struct DashboardBuilder {
    store: Option<Arc<dyn DashboardStore>>,
    backends: BackendRegistry,
    max_concurrency: usize,
    bus_capacity: usize,
    settings: Settings,
}

impl Default for DashboardBuilder {
    fn default() -> Self {
        Self {
            store: None,
            backends: BackendRegistry::default(),
            max_concurrency: 32,
            bus_capacity: 4096,
            settings: Settings {
                default_timeout: None,
                cancel_grace: Duration::from_secs(10),
                max_log_line_bytes: 16 * 1024,
                log_limit: LogLimit::default(),
                max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
                public_url: None,
            },
        }
    }
}

impl DashboardBuilder {
    /// The store (required).
    pub fn store(mut self, store: Arc<dyn DashboardStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds a backend under `name`.
    pub fn backend(mut self, name: impl Into<String>, backend: impl Backend) -> Self {
        self.backends.insert(name, Arc::new(backend));
        self
    }

    /// Adds every backend of a registry.
    pub fn backends(mut self, registry: BackendRegistry) -> Self {
        for (name, backend) in registry.iter() {
            self.backends.insert(name, backend.clone());
        }
        self
    }

    /// How many executions may run at once in all (default 32); more wait in `queued`.
    pub fn max_concurrency(mut self, limit: usize) -> Self {
        self.max_concurrency = limit.max(1);
        self
    }

    /// The timeout of functions that set none (default: none).
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.default_timeout = timeout;
        self
    }

    /// How long a stopped backend gets to clean up before the engine stops waiting for it (default 10 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.settings.cancel_grace = grace;
        self
    }

    /// Log lines longer than this many bytes are cut (default 16 KiB).
    pub fn max_log_line_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_log_line_bytes = bytes.max(64);
        self
    }

    /// How many log lines one execution may keep (default 100,000): past it, one `system` line says so and the rest
    /// of the execution's log is dropped, while the run goes on. The engine's own opening and closing lines are not
    /// counted.
    pub fn max_log_lines(mut self, lines: u64) -> Self {
        self.settings.log_limit.max_lines = lines;
        self
    }

    /// How many bytes of log text one execution may keep (default 64 MiB), counted like
    /// [`max_log_lines`](Self::max_log_lines); whichever limit comes first applies.
    pub fn max_log_bytes(mut self, bytes: u64) -> Self {
        self.settings.log_limit.max_bytes = bytes;
        self
    }

    /// The largest output a run may store, in bytes of JSON (default 1 MiB): a larger one fails the run with an
    /// error that names the limit.
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_output_bytes = bytes;
        self
    }

    /// How remote backends reach the server for callbacks (`http://host:port`, no trailing slash); without it, runs
    /// get no callback URL.
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.settings.public_url = url.map(|url| url.trim_end_matches('/').to_owned());
        self
    }

    /// Builds the dashboard. Must be called inside a tokio runtime: runs are spawned on it.
    ///
    /// # Panics
    /// Without a store, or outside a tokio runtime: both are programming errors of the embedder.
    pub fn build(self) -> Dashboard {
        let store = self.store.expect("Dashboard::builder() needs a store: call .store(...)");
        let runtime =
            Handle::try_current().expect("Dashboard::build() must be called inside a tokio runtime");
        let (bus, _) = broadcast::channel(self.bus_capacity);
        Dashboard {
            inner: Arc::new(Inner {
                store,
                backends: self.backends,
                bus,
                compiled: CompiledCache::default(),
                functions: FunctionCache::default(),
                scheduler: Mutex::new(Scheduler::new(self.max_concurrency)),
                runs: Mutex::new(HashMap::new()),
                runs_ended: Notify::new(),
                is_accepting: AtomicBool::new(true),
                callback_key: CallbackKey::generate(),
                settings: self.settings,
                metrics: EngineMetrics::default(),
                runtime,
            }),
        }
    }
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
    pub(crate) runs_ended: Notify,
    pub(crate) is_accepting: AtomicBool,
    pub(crate) callback_key: CallbackKey,
    pub(crate) settings: Settings,
    pub(crate) metrics: EngineMetrics,
    runtime: Handle,
}

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

    /// The store, for reads.
    pub fn store(&self) -> &Arc<dyn DashboardStore> {
        &self.inner.store
    }

    /// The backends.
    pub fn backends(&self) -> &BackendRegistry {
        &self.inner.backends
    }

    /// A receiver of everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.inner.bus.subscribe()
    }

    /// How many executions wait for a slot.
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
    /// writes can fail), and no execution held back by writes that keep failing. The error says why.
    ///
    /// A probe that gets through wakes the held writes to try again at once; it ends an episode of failing writes
    /// only when no write is held (a small probe may fit where a run's log lines do not).
    pub async fn check_store(&self) -> Result<(), EngineError> {
        let writes = &self.inner.metrics.store_writes;
        let held = self.inner.metrics.held_executions();
        let trouble = match self.inner.observe(self.inner.store.ping().await) {
            Err(StoreError::Unavailable { message, .. }) => message,
            Err(error) => error.to_string(),
            Ok(()) => match self.inner.metrics.store_write_trouble() {
                None => return Ok(()),
                Some(_) if held <= 0 => {
                    writes.succeeded();
                    return Ok(());
                }
                Some(trouble) => {
                    writes.wake_held();
                    format!("writes are failing ({trouble})")
                }
            },
        };
        let message = match held {
            0 => trouble,
            _ => format!("{trouble}; {held} executions wait to store their changes"),
        };
        Err(EngineError::Store(StoreError::Unavailable { message, source: None }))
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
        self.check_function(&function)?;
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
        self.check_function(&current.replaced_by(spec.clone())?)?;
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
    /// `cancelled` when the backend has stopped, or after the grace period).
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
            let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Cancelled)
                .error(cancelled_message(principal.name.as_deref()));
            match self.inner.transition(id, update).await {
                Ok(cancelled) => {
                    self.inner.scheduler.lock().expect("scheduler lock poisoned").remove(id);
                    return Ok(cancelled);
                }
                Err(EngineError::Store(StoreError::StatusMismatch { .. })) => continue,
                Err(error) => return Err(error),
            }
        }
        self.execution(id).await
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

    /// After a restart: executions left `running` become `failed` as interrupted, `queued` ones are queued again.
    pub async fn recover(&self) -> Result<RecoveryReport, EngineError> {
        let mut report = RecoveryReport::default();
        for execution in self.inner.store.list_unfinished().await? {
            if self.inner.run_handle(execution.id).is_some() {
                continue;
            }
            match execution.status {
                ExecutionStatus::Running => {
                    let update = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Failed)
                        .error(INTERRUPTED_ERROR);
                    self.inner.transition(execution.id, update).await?;
                    report.interrupted += 1;
                }
                _ => {
                    let function =
                        self.inner.store.get_function(&FunctionKey::Id(execution.function_id)).await?;
                    let max_concurrency = function.and_then(|function| function.max_concurrency);
                    self.inner.schedule(QueuedRun { execution, max_concurrency });
                    report.requeued += 1;
                }
            }
        }
        Ok(report)
    }

    /// Stops taking work, waits up to `grace` for running executions, then stops the rest (they end `failed` as
    /// interrupted). Queued executions stay queued in the store and run after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.is_accepting.store(false, Ordering::SeqCst);
        self.inner.scheduler.lock().expect("scheduler lock poisoned").pause();
        if !self.inner.wait_for_runs(grace).await {
            for handle in self.inner.runs.lock().expect("runs lock poisoned").values() {
                handle.stop(StopReason::Shutdown);
            }
            self.inner.wait_for_runs(self.inner.settings.cancel_grace + Duration::from_secs(1)).await;
        }
    }

    async fn enqueue(&self, function: &Function, new: NewExecution) -> Result<Triggered, EngineError> {
        if !self.inner.is_accepting.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let compiled = self.inner.compiled.get(function)?;
        compiled.prepare(&new.input).await?;
        let (key, backend, input) = (new.idempotency_key.clone(), new.backend.clone(), new.input.clone());
        match self.inner.observe(self.inner.store.create_execution(new).await) {
            Ok(recorded) => {
                let execution = self.inner.publish(recorded);
                self.inner.metrics.record(&execution);
                let max_concurrency = function.max_concurrency;
                self.inner.schedule(QueuedRun { execution: execution.clone(), max_concurrency });
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

    fn check_function(&self, function: &Function) -> Result<(), EngineError> {
        self.check_backend("backend", &function.backend)?;
        self.inner.compiled.get(function)?;
        Ok(())
    }

    fn check_backend(&self, field: &str, name: &str) -> Result<(), EngineError> {
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

    fn authorize(&self, principal: &Principal, backend: &str, action: Action) -> Result<(), EngineError> {
        self.inner.backends.authorize(principal, backend, action).map_err(|error| match error {
            BackendError::Forbidden { backend, reason } => EngineError::Forbidden { backend, reason },
            other => EngineError::Forbidden { backend: backend.to_owned(), reason: other.to_string() },
        })
    }

    /// The function to trigger: as read recently (see `functions.rs`), else from the store.
    async fn function(&self, key: &FunctionKey) -> Result<Arc<Function>, EngineError> {
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
        let recorded =
            self.observe(self.store.update_execution(id, update).await).map_err(|error| match error {
                StoreError::StatusMismatch { .. } => EngineError::Store(error),
                other => other.into(),
            })?;
        let execution = self.publish(recorded);
        self.metrics.record(&execution);
        Ok(execution)
    }

    /// [`transition`](Self::transition) with log lines stored in the same store operation, so that the change and
    /// the lines cost one write and a reader who sees the new status sees the lines. The bus hears of the lines, then
    /// of the event. On any error, neither is stored.
    pub(crate) async fn transition_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
    ) -> Result<Execution, EngineError> {
        if lines.is_empty() {
            return self.transition(id, update).await;
        }
        let logged = self.observe(self.store.update_execution_with_logs(id, update, lines).await)?;
        let _ = self.bus.send(BusMessage::Logs { execution_id: id, last_seq: logged.last_seq });
        let execution = self.publish(logged.recorded);
        self.metrics.record(&execution);
        Ok(execution)
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
    fn schedule(self: &Arc<Self>, run: QueuedRun) {
        self.scheduler.lock().expect("scheduler lock poisoned").push(run);
        self.start_startable();
    }

    /// Starts every queued run that the limits allow.
    pub(crate) fn start_startable(self: &Arc<Self>) {
        let startable = self.scheduler.lock().expect("scheduler lock poisoned").take_startable();
        for run in startable {
            let handle = Arc::new(RunHandle::new(self.settings.log_limit));
            self.runs.lock().expect("runs lock poisoned").insert(run.execution.id, handle.clone());
            self.runtime.spawn(self.clone().run(run, handle));
        }
    }

    /// Waits until no execution runs, at most `limit`; whether none runs.
    async fn wait_for_runs(&self, limit: Duration) -> bool {
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
