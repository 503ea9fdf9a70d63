//! One run of one execution: start it, feed its logs to the store, stop it on cancel, timeout or shutdown, and record
//! how it ended — holding on to each change the store cannot take yet (a full disk) and retrying it until it lands.

mod item_budget;
mod log_writer;
mod open_items;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_backend_api::{Backend, BackendError, Callback, RunContext, RunOutcome, log_channel};
use dashboard_core::{Execution, ExecutionId, ExecutionStatus, Function, LogStream, NewLogLine};
use dashboard_store::{ExecutionUpdate, FunctionKey};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use self::item_budget::ItemBudget;
use self::log_writer::{Batch, LogWriter};
pub(crate) use self::log_writer::{LogBudget, LogLimit, truncate_line};
pub(crate) use self::open_items::closed as close_open_items;
use crate::approvals::RunGate;
use crate::budgets::{LiveUsage, RunMeter};
use crate::inner::{Inner, cancelled_message};
use crate::json_size::json_len_up_to;
use crate::scheduler::QueuedRun;
use crate::{EngineError, INTERRUPTED_ERROR};

/// The longest an approval request waits for the backend's earlier lines and items to be stored before it is.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// How many log lines and transcript items may wait between a backend and the store before the backend waits.
const LOG_BUFFER_LINES: usize = 4096;

/// Why a run was stopped from outside; the first reason wins.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StopReason {
    Cancelled {
        by: Option<String>,
    },
    TimedOut {
        after: Duration,
    },
    Shutdown,
    /// Its usage crossed a budget; the message says which.
    BudgetExceeded {
        message: String,
    },
    /// Its execution was ended behind this run's back — by a remote agent's report that reached another instance, or
    /// by another instance that found its lease expired — with this status and error: nothing the backend still does
    /// will be recorded, so it stops.
    EndedElsewhere {
        status: ExecutionStatus,
        error: Option<String>,
    },
}

/// The handle by which a running execution is stopped, or told how a detached run ended.
#[derive(Debug)]
pub(crate) struct RunHandle {
    token: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    report: Mutex<Option<RunOutcome>>,
    reported: Notify,
    /// What is left of the execution's log limit: shared by the run's log writer and a remote agent's reports.
    pub(crate) log_budget: Arc<Mutex<LogBudget>>,
    /// The execution's status as this engine last stored it while it runs (`running` or `waiting`), held while a
    /// change of it is stored: approvals move it, and the run's end starts from it.
    pub(crate) status: tokio::sync::Mutex<ExecutionStatus>,
    /// Whether the run's backend has asked a person for an approval: its end then expires those still pending.
    pub(crate) has_asked: AtomicBool,
    /// The run's approval gate, once its backend has started: where requests that reach the dashboard from outside the
    /// backend (an agent's own call to the API) go.
    /// Cleared when the run ends: the gate holds the handle.
    pub(crate) gate: Mutex<Option<Arc<RunGate>>>,
    /// The usage its backend last reported while it ran (in the one shape): the run's usage when it ends without one.
    pub(crate) usage: LiveUsage,
    /// Where a request to store the run's reported entries at once goes (see `flush_logs`), while its log writer runs.
    flushes: Mutex<Option<mpsc::UnboundedSender<oneshot::Sender<()>>>>,
}

impl RunHandle {
    pub(crate) fn new(log_limit: LogLimit) -> Self {
        Self {
            token: CancellationToken::new(),
            reason: Mutex::default(),
            report: Mutex::default(),
            reported: Notify::new(),
            log_budget: Arc::new(Mutex::new(LogBudget::new(log_limit))),
            status: tokio::sync::Mutex::new(ExecutionStatus::Running),
            has_asked: AtomicBool::new(false),
            gate: Mutex::new(None),
            usage: LiveUsage::default(),
            flushes: Mutex::new(None),
        }
    }

    /// Waits until the log writer has stored every line and item the backend reported before this call (at most
    /// [`FLUSH_LIMIT`]: a store that cannot take them now is no reason to hold the caller).
    pub(crate) async fn flush_logs(&self) {
        let sender = self.flushes.lock().expect("flushes lock poisoned").clone();
        let Some(sender) = sender else { return };
        let (done, stored) = oneshot::channel();
        if sender.send(done).is_ok() {
            let _ = tokio::time::timeout(FLUSH_LIMIT, stored).await;
        }
    }

    /// Hands a remote agent's final report to the run task; a report that arrives before the backend has detached
    /// waits for it.
    pub(crate) fn deliver(&self, outcome: RunOutcome) {
        *self.report.lock().expect("report lock poisoned") = Some(outcome);
        self.reported.notify_one();
    }

    pub(crate) fn stop(&self, reason: StopReason) {
        self.reason.lock().expect("stop reason lock poisoned").get_or_insert(reason);
        self.token.cancel();
    }

    /// Whether the run has stored its final status; a change of status being stored now counts as not yet.
    pub(crate) fn has_ended(&self) -> bool {
        self.status.try_lock().is_ok_and(|status| status.is_terminal())
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.lock().expect("stop reason lock poisoned").clone()
    }
}

/// What a run needs besides the execution.
struct Prepared {
    function: Arc<Function>,
    backend: Arc<dyn Backend>,
    prompt: Option<String>,
}

impl Inner {
    /// Runs a queued execution to its end, then frees its slot and starts the next.
    pub(crate) async fn run(self: Arc<Self>, queued: QueuedRun, handle: Arc<RunHandle>) {
        let (execution, prompt) = (queued.execution, queued.prompt);
        let (id, function_id) = (execution.id, execution.function_id);
        if let Err(error) = self.run_to_end(execution, prompt, &handle).await {
            log::error!("execution {id}: {error}");
        }
        // The gate holds the handle: let both go.
        handle.gate.lock().expect("gate lock poisoned").take();
        if handle.has_asked.load(Ordering::SeqCst) {
            // Nobody waits for its approvals any more: they expire, and say why.
            self.expire_approvals_of(id, "the execution ended before anyone decided").await;
        }
        self.runs.lock().expect("runs lock poisoned").remove(&id);
        self.scheduler.lock().expect("scheduler lock poisoned").release(function_id);
        self.slot_freed();
    }

    async fn run_to_end(
        self: &Arc<Self>,
        execution: Execution,
        prompt: Option<Option<String>>,
        handle: &Arc<RunHandle>,
    ) -> Result<(), EngineError> {
        let id = execution.id;
        let prepared = match self.prepare(&execution, prompt).await {
            Ok(prepared) => prepared,
            Err(reason) => {
                let update =
                    ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Failed).error(reason);
                return self.finish(id, update, None, handle).await;
            }
        };
        if !self.start(&execution, handle).await? {
            return Ok(());
        }

        let timeout =
            prepared.function.timeout_secs.map(Duration::from_secs).or(self.settings.default_timeout);
        let (sink, receiver) = log_channel(LOG_BUFFER_LINES);
        let run_ended = CancellationToken::new();
        let (flush_requests, flushes) = mpsc::unbounded_channel();
        *handle.flushes.lock().expect("flushes lock poisoned") = Some(flush_requests);
        let log_writer = tokio::spawn(
            LogWriter {
                inner: Arc::clone(self),
                execution_id: id,
                budget: Arc::clone(&handle.log_budget),
                items: ItemBudget::new(self.settings.log_limit),
                run_ended: run_ended.clone(),
                diff: None,
                has_said_diff_cut: false,
                session_id: None,
                flushes,
            }
            .write(receiver),
        );

        let mut context = RunContext::new(id, execution.function.clone(), execution.input.clone(), sink);
        context.prompt = prepared.prompt;
        // A follow-up turn resumes the session it was created with; `prepare` checked that the backend can.
        context.resume = execution.continues.and(execution.session_id.clone());
        context.config = prepared.function.config.clone();
        context.cancel = handle.token.clone();
        context.deadline = timeout.map(|timeout| Instant::now() + timeout);
        context.callback = self.settings.public_url.as_ref().map(|public_url| Callback {
            url: format!("{public_url}/api/executions/{id}"),
            token: self.callback_key.token(id),
        });
        context.approval_policy = prepared.function.approval_policy;
        let gate = Arc::new(RunGate {
            inner: Arc::clone(self),
            execution_id: id,
            function: execution.function.clone(),
            backend: execution.backend.clone(),
            policy: prepared.function.approval_policy,
            timeout: prepared.function.approval_timeout(),
            handle: Arc::clone(handle),
            cancel: handle.token.clone(),
        });
        // A remote agent's requests (Claude Code's permission tool, over the API) go through the same gate.
        *handle.gate.lock().expect("gate lock poisoned") = Some(Arc::clone(&gate));
        context.approvals = gate;
        let daily = match self.daily_budgets(&prepared.function, execution.triggered_by.as_deref()).await {
            Ok(daily) => daily,
            Err(error) => {
                log::warn!(
                    "execution {id}: could not read today's spend, so its daily budgets are not watched: {error}"
                );
                Default::default()
            }
        };
        context.meter = Arc::new(RunMeter {
            inner: Arc::clone(self),
            function: Arc::clone(&prepared.function),
            daily,
            handle: Arc::clone(handle),
        });
        let result = self.drive(prepared.backend.as_ref(), context, handle, timeout).await;

        let mut update = conclude(result, handle.reason(), self.settings.max_output_bytes);
        // The usage in the one shape, priced; a run that ended without one (failed, stopped) keeps what it reported
        // while it ran.
        update.usage = match update.usage.take() {
            Some(report) => Some(self.usage_in_shape(&report, Some(&prepared.function))),
            None => handle.usage.lock().expect("usage lock poisoned").take(),
        };
        // The backend has returned (and dropped its sink): the writer hands back the lines and items it has not stored
        // yet, to be stored with the final status in one write.
        run_ended.cancel();
        let held = log_writer.await.unwrap_or_else(|error| {
            log::error!("execution {id}: the log writer failed: {error}");
            Batch::default()
        });
        self.finish(id, update, Some(held), handle).await
    }

    /// Moves the execution to `running` together with its first line, retrying while the store cannot take it.
    /// `false` when it must not run: it was cancelled while it waited (and is now recorded so), or the engine stops
    /// before the store took the start (then it stays queued, to run after the next start).
    async fn start(&self, execution: &Execution, handle: &RunHandle) -> Result<bool, EngineError> {
        let id = execution.id;
        let first_line = format!("running on backend {} (attempt {})", execution.backend, execution.attempt);
        let mut retry = self.metrics.store_writes.retry();
        // Whether an attempt failed without an answer: its start may have been stored all the same (a commit whose
        // answer was lost), and the next attempt then finds the execution running.
        let mut was_unanswered = false;
        let cancelled_by = loop {
            if let Some(StopReason::Cancelled { by }) = handle.reason() {
                break by;
            }
            let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running)
                .instance(self.identity.id.clone());
            match self
                .transition_with_logs(id, update, vec![self.system_line(first_line.clone())], Vec::new())
                .await
            {
                Ok(_) => return Ok(true),
                Err(EngineError::StatusChanged { actual: ExecutionStatus::Running })
                    if was_unanswered && self.started_here(id).await =>
                {
                    return Ok(true);
                }
                // Cancelled while it waited, or started by another instance: nothing to run here.
                Err(EngineError::StatusChanged { .. }) => return Ok(false),
                Err(EngineError::StoreUnavailable(_)) => {
                    was_unanswered = true;
                    // A cancel cuts the wait short: it is recorded at the next attempt.
                    retry.wait(Some(&handle.token).filter(|token| !token.is_cancelled())).await;
                    if handle.reason() == Some(StopReason::Shutdown) {
                        log::warn!(
                            "execution {id}: the engine stops before its start was stored; it stays queued"
                        );
                        return Ok(false);
                    }
                }
                Err(error) => return Err(error),
            }
        };
        // The execution is held by the write that follows, no longer by this one.
        drop(retry);
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Cancelled)
            .error(cancelled_message(cancelled_by.as_deref()));
        self.finish(id, update, None, handle).await?;
        Ok(false)
    }

    /// Whether execution `id` is stored as started by this instance: its start went through though its answer was
    /// lost. (A store that cannot say is taken as no: the execution's lease then runs out and it is recovered.)
    async fn started_here(&self, id: ExecutionId) -> bool {
        match self.store.get_execution(id).await {
            Ok(Some(execution)) => {
                execution.status == ExecutionStatus::Running
                    && execution.instance.as_deref() == Some(self.identity.id.as_str())
            }
            _ => false,
        }
    }

    /// Records the final status — with the `held` lines, items and diff and the closing line when the run got as far
    /// as its backend — retrying while the store cannot take it. Someone else finishing it first (a callback) is not an
    /// error; the lines and items are stored all the same.
    ///
    /// A cancel that comes while the final status waits for the store decides it, as a cancel decides over the
    /// backend's answer before the run has concluded: the execution still shows as unfinished, and the cancel was
    /// answered as taken.
    async fn finish(
        &self,
        id: ExecutionId,
        mut update: ExecutionUpdate,
        held: Option<Batch>,
        handle: &RunHandle,
    ) -> Result<(), EngineError> {
        let has_run = held.is_some();
        if has_run
            && update.to == ExecutionStatus::Succeeded
            && *handle.status.lock().await == ExecutionStatus::Waiting
        {
            // The agent finished while a request of its was pending (it stopped waiting for it): the request expires,
            // which makes the execution `running` again, so that it may succeed.
            self.expire_approvals_of(id, "the agent finished without waiting for the decision").await;
        }
        // Held until the final status is stored: a decision that comes meanwhile waits, and so never moves the
        // execution from under the compare-and-set below.
        let status = if has_run { Some(handle.status.lock().await) } else { None };
        // How the run ended, before it is fitted to the status it ends from.
        let intended = update.clone();
        if let Some(status) = &status
            && update.from == ExecutionStatus::Running
        {
            update = ending_from(**status, intended.clone());
        }
        let Batch { mut lines, items, diff, has_open_items } = held.unwrap_or_default();
        // Items still in progress are closed with the final status (in the same write): see `open_items`.
        let stored_open = if has_open_items { self.stored_open_items(id).await } else { Vec::new() };
        update.diff = diff;
        if has_run {
            lines.push(self.system_line(closing_line(&update)));
        }
        let mut retry = self.metrics.store_writes.retry();
        loop {
            let closed = open_items::closed(&stored_open, &items, update.to);
            match self.transition_with_logs(id, update.clone(), lines.clone(), closed).await {
                Ok(_) => {
                    if let Some(mut status) = status {
                        // A decision that waited for this finds the run over.
                        *status = update.to;
                    }
                    return Ok(());
                }
                // Still unfinished, in another status than this run last stored (an approval decided behind the
                // engine's back): the run's end goes from there.
                Err(EngineError::StatusChanged { actual })
                    if has_run && !actual.is_terminal() && actual != update.from =>
                {
                    update = ending_from(actual, intended.clone());
                    lines.pop();
                    lines.push(self.system_line(closing_line(&update)));
                }
                Err(EngineError::StatusChanged { .. }) => {
                    if !lines.is_empty() {
                        self.append_logs(id, lines, true).await?;
                    }
                    if !items.is_empty() {
                        self.upsert_items(id, items, true).await?;
                    }
                    return Ok(());
                }
                Err(EngineError::StoreUnavailable(_)) => {
                    retry.wait(None).await;
                    if let Some(StopReason::Cancelled { by }) = handle.reason()
                        && update.to != ExecutionStatus::Cancelled
                    {
                        update = ExecutionUpdate::new(update.from, ExecutionStatus::Cancelled)
                            .error(cancelled_message(by.as_deref()))
                            .diff(update.diff.take());
                        if has_run {
                            lines.pop();
                            lines.push(self.system_line(closing_line(&update)));
                        }
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One of the engine's own lines, cut to the line limit like every other line.
    fn system_line(&self, message: String) -> NewLogLine {
        let mut line = NewLogLine::new(LogStream::System, message);
        truncate_line(&mut line.message, self.settings.max_log_line_bytes);
        line
    }

    /// Finds the function and backend, and renders the prompt unless the trigger did; the error is the reason the run
    /// cannot start.
    async fn prepare(
        &self,
        execution: &Execution,
        prompt: Option<Option<String>>,
    ) -> Result<Prepared, String> {
        let function = self
            .functions
            .get(self.store.as_ref(), &FunctionKey::Id(execution.function_id))
            .await
            .map_err(|error| format!("could not start: {error}"))?
            .ok_or_else(|| format!("could not start: function {} was deleted", execution.function))?;
        let backend =
            self.backends.get(&execution.backend).cloned().ok_or_else(|| {
                format!("could not start: backend {:?} is not configured", execution.backend)
            })?;
        if let Some(reason) = backend.refuses_approval_policy(function.approval_policy) {
            return Err(format!("could not start: {reason}"));
        }
        if execution.continues.is_some() && !backend.can_continue() {
            return Err(format!(
                "could not start: backend {:?} cannot continue a session",
                execution.backend
            ));
        }
        let prompt = match prompt {
            Some(rendered) => rendered,
            // Queued again after a restart: a follow-up turn keeps its own prompt.
            None if execution.prompt.is_some() => execution.prompt.clone(),
            None => {
                let compiled = self
                    .compiled
                    .get(&function)
                    .await
                    .map_err(|error| format!("could not start: {error}"))?;
                compiled
                    .prepare(&execution.input)
                    .await
                    .map_err(|error| format!("could not start: {error}"))?
            }
        };
        Ok(Prepared { function, backend, prompt })
    }

    /// Runs the backend until it returns, is stopped, or times out. `None` when it was stopped.
    async fn drive(
        &self,
        backend: &dyn Backend,
        context: RunContext,
        handle: &RunHandle,
        timeout: Option<Duration>,
    ) -> Option<Result<RunOutcome, BackendError>> {
        let deadline = context.deadline;
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut running = backend.trigger(context);
        let result = tokio::select! {
            result = &mut running => Some(result),
            () = &mut expired => None,
            () = handle.token.cancelled() => None,
        };
        match result {
            Some(Ok(RunOutcome::Detached)) => {
                // A remote agent reports through the callbacks; wait for its report, a stop, or the deadline.
                tokio::select! {
                    () = handle.reported.notified() => {
                        let report = handle.report.lock().expect("report lock poisoned").take();
                        return Some(Ok(report.unwrap_or(RunOutcome::Detached)));
                    }
                    () = &mut expired => handle.stop(StopReason::TimedOut { after: timeout.unwrap_or_default() }),
                    () = handle.token.cancelled() => {}
                }
                Some(Ok(RunOutcome::Detached))
            }
            Some(result) => Some(result),
            None => {
                if !handle.token.is_cancelled() {
                    handle.stop(StopReason::TimedOut { after: timeout.unwrap_or_default() });
                }
                // Give the backend its grace to stop what it started; dropping it after that drops what is left.
                let _ = tokio::time::timeout(self.settings.cancel_grace, running).await;
                None
            }
        }
    }
}

/// The run's end `update` as a change from `status`: the same, unless the status machine forbids it (`waiting`
/// cannot become `succeeded`: the agent finished while an approval of it was still pending), then a failure saying so.
fn ending_from(status: ExecutionStatus, mut update: ExecutionUpdate) -> ExecutionUpdate {
    update.from = status;
    if status.can_become(update.to) {
        return update;
    }
    ExecutionUpdate::new(status, ExecutionStatus::Failed)
        .error("the agent finished while an approval of it was still pending")
        .usage(update.usage.take())
        .diff(update.diff.take())
}

/// The closing line of a run's log: how it ended.
fn closing_line(update: &ExecutionUpdate) -> String {
    match (&update.to, &update.error) {
        (ExecutionStatus::Succeeded, _) => "finished".to_owned(),
        (status, Some(error)) => format!("{status}: {error}"),
        (status, None) => status.to_string(),
    }
}

/// Why `output` may not be stored: its JSON is longer than `max_bytes`. Measured as it is written out, without
/// building the text, and only up to the limit.
pub(crate) fn output_too_large(output: &Value, max_bytes: usize) -> Option<String> {
    (json_len_up_to(output, max_bytes, false) > max_bytes).then(|| {
        format!("the output is larger than the limit of {max_bytes} bytes of JSON, so it was not stored")
    })
}

/// The final status, from why the run was stopped if it was, else from what the backend answered. An output over
/// `max_output_bytes` fails the run.
fn conclude(
    result: Option<Result<RunOutcome, BackendError>>,
    reason: Option<StopReason>,
    max_output_bytes: usize,
) -> ExecutionUpdate {
    let from = ExecutionStatus::Running;
    match (reason, result) {
        (Some(StopReason::Cancelled { by }), _) => {
            ExecutionUpdate::new(from, ExecutionStatus::Cancelled).error(cancelled_message(by.as_deref()))
        }
        (Some(StopReason::TimedOut { after }), _) => ExecutionUpdate::new(from, ExecutionStatus::TimedOut)
            .error(format!("timed out after {} s", after.as_secs_f64())),
        (Some(StopReason::Shutdown), _) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error(INTERRUPTED_ERROR)
        }
        (Some(StopReason::BudgetExceeded { message }), _) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error(message)
        }
        // What the store holds already: the compare-and-set of the run's end finds it there and stores only the
        // run's last lines, closed with how it ended.
        (Some(StopReason::EndedElsewhere { status, error }), _) => {
            let update = ExecutionUpdate::new(from, status);
            match error {
                Some(error) => update.error(error),
                None => update,
            }
        }
        (None, Some(Ok(RunOutcome::Succeeded { output, usage }))) => {
            match output_too_large(&output, max_output_bytes) {
                None => ExecutionUpdate::new(from, ExecutionStatus::Succeeded).output(output).usage(usage),
                Some(error) => ExecutionUpdate::new(from, ExecutionStatus::Failed).error(error).usage(usage),
            }
        }
        (None, Some(Ok(RunOutcome::Failed { error }))) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error(error)
        }
        (None, Some(Err(BackendError::Cancelled)) | None) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error("the backend stopped without a result")
        }
        (None, Some(Ok(RunOutcome::Detached))) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error("the remote agent never reported back")
        }
        (None, Some(Err(error))) => {
            ExecutionUpdate::new(from, ExecutionStatus::Failed).error(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_reason_decides_over_the_backend_answer() {
        let succeeded = Some(Ok(RunOutcome::Succeeded { output: serde_json::json!(1), usage: None }));
        let update = conclude(succeeded, Some(StopReason::Cancelled { by: Some("ci".into()) }), 1024);
        assert_eq!(
            (update.to, update.error.as_deref()),
            (ExecutionStatus::Cancelled, Some("cancelled by ci"))
        );
        let update = conclude(None, Some(StopReason::TimedOut { after: Duration::from_secs(2) }), 1024);
        assert_eq!(
            (update.to, update.error.as_deref()),
            (ExecutionStatus::TimedOut, Some("timed out after 2 s"))
        );
    }

    #[test]
    fn an_output_over_the_limit_fails_the_run_naming_the_limit() {
        let succeeded =
            || Some(Ok(RunOutcome::Succeeded { output: serde_json::json!("x".repeat(100)), usage: None }));
        assert_eq!(
            conclude(succeeded(), None, 102).to,
            ExecutionStatus::Succeeded,
            "102 bytes with the quotes"
        );
        let update = conclude(succeeded(), None, 101);
        assert_eq!(
            (update.to, update.error.as_deref(), update.output),
            (
                ExecutionStatus::Failed,
                Some("the output is larger than the limit of 101 bytes of JSON, so it was not stored"),
                None
            )
        );
    }
}
