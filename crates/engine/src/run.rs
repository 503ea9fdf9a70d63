//! One run of one execution: start it, feed its logs to the store, stop it on cancel, timeout or shutdown, and record
//! how it ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_backends::{Backend, BackendError, Callback, RunContext, RunOutcome, log_channel};
use dashboard_core::{Execution, ExecutionId, ExecutionStatus, Function, LogStream, NewLogLine};
use dashboard_store::{ExecutionUpdate, FunctionKey, StoreError};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dashboard::{Inner, cancelled_message};
use crate::scheduler::QueuedRun;
use crate::{BusMessage, EngineError, INTERRUPTED_ERROR};

/// How many log lines may wait between a backend and the store before the backend waits.
const LOG_BUFFER_LINES: usize = 4096;
/// The most lines stored in one append.
const LOG_BATCH_LINES: usize = 512;
/// How long the end of a run waits for a backend's tasks to drop their log sinks.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long a batch of log lines may wait for more lines before it is stored: long enough that a fast backend's
/// lines share one write (usually the final one), short enough that nobody watching the log notices.
const LOG_GATHER: Duration = Duration::from_millis(5);

/// Why a run was stopped from outside; the first reason wins.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StopReason {
    Cancelled { by: Option<String> },
    TimedOut { after: Duration },
    Shutdown,
}

/// The handle by which a running execution is stopped, or told how a detached run ended.
#[derive(Debug, Default)]
pub(crate) struct RunHandle {
    token: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    report: Mutex<Option<RunOutcome>>,
    reported: Notify,
}

impl RunHandle {
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

    fn reason(&self) -> Option<StopReason> {
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
        let execution = queued.execution;
        let (id, function_id) = (execution.id, execution.function_id);
        if let Err(error) = self.run_to_end(execution, &handle).await {
            log::error!("execution {id}: {error}");
        }
        self.runs.lock().expect("runs lock poisoned").remove(&id);
        self.scheduler.lock().expect("scheduler lock poisoned").release(function_id);
        self.runs_ended.notify_waiters();
        self.start_startable();
    }

    async fn run_to_end(&self, execution: Execution, handle: &RunHandle) -> Result<(), EngineError> {
        let id = execution.id;
        let prepared = match self.prepare(&execution).await {
            Ok(prepared) => prepared,
            Err(reason) => {
                let update =
                    ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Failed).error(reason);
                return self.finish(id, update).await;
            }
        };
        if let Some(StopReason::Cancelled { by }) = handle.reason() {
            let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Cancelled)
                .error(cancelled_message(by.as_deref()));
            return self.finish(id, update).await;
        }
        // The run's first line is stored with `running`, in one write.
        let first_line = format!("running on backend {} (attempt {})", execution.backend, execution.attempt);
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
        match self.transition_with_logs(id, update, vec![self.system_line(first_line)]).await {
            Ok(_) => {}
            // Cancelled while it waited: nothing to run.
            Err(EngineError::Store(StoreError::StatusMismatch { .. })) => return Ok(()),
            Err(error) => return Err(error),
        }

        let timeout =
            prepared.function.timeout_secs.map(Duration::from_secs).or(self.settings.default_timeout);
        let (sink, receiver) = log_channel(LOG_BUFFER_LINES);
        let run_ended = CancellationToken::new();
        let log_writer = tokio::spawn(
            LogWriter {
                store: self.store.clone(),
                bus: self.bus.clone(),
                execution_id: id,
                max_line_bytes: self.settings.max_log_line_bytes,
                run_ended: run_ended.clone(),
            }
            .write(receiver),
        );

        let mut context = RunContext::new(id, execution.function.clone(), execution.input.clone(), sink);
        context.prompt = prepared.prompt;
        context.config = prepared.function.config.clone();
        context.cancel = handle.token.clone();
        context.deadline = timeout.map(|timeout| Instant::now() + timeout);
        context.callback = self.settings.public_url.as_ref().map(|public_url| Callback {
            url: format!("{public_url}/api/executions/{id}"),
            token: self.callback_key.token(id),
        });
        let result = self.drive(prepared.backend.as_ref(), context, handle, timeout).await;

        let update = conclude(result, handle.reason());
        let closing_line = match (&update.to, &update.error) {
            (ExecutionStatus::Succeeded, _) => "finished".to_owned(),
            (status, Some(error)) => format!("{status}: {error}"),
            (status, None) => status.to_string(),
        };
        // The backend has returned (and dropped its sink): the writer hands back the lines it has not stored yet, to
        // be stored with the final status in one write.
        run_ended.cancel();
        let mut last_lines = log_writer.await.unwrap_or_else(|error| {
            log::error!("execution {id}: the log writer failed: {error}");
            Vec::new()
        });
        last_lines.push(self.system_line(closing_line));
        self.finish_with_logs(id, update, last_lines).await
    }

    /// Records the final status; someone else finishing it first (a callback) is not an error.
    async fn finish(&self, id: ExecutionId, update: ExecutionUpdate) -> Result<(), EngineError> {
        self.finish_with_logs(id, update, Vec::new()).await
    }

    /// Records the final status with the run's last log lines; if someone else finished it first, the lines are
    /// stored all the same.
    async fn finish_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
    ) -> Result<(), EngineError> {
        let lines_if_refused = lines.clone();
        match self.transition_with_logs(id, update, lines).await {
            Ok(_) => Ok(()),
            Err(EngineError::Store(StoreError::StatusMismatch { .. })) => {
                if !lines_if_refused.is_empty() {
                    let last_seq = self.store.append_logs(id, lines_if_refused).await?;
                    let _ = self.bus.send(BusMessage::Logs { execution_id: id, last_seq });
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// One of the engine's own lines, cut to the line limit like every other line.
    fn system_line(&self, message: String) -> NewLogLine {
        let mut line = NewLogLine::new(LogStream::System, message);
        truncate_line(&mut line.message, self.settings.max_log_line_bytes);
        line
    }

    /// Finds the function and backend and renders the prompt; the error is the reason the run cannot start.
    async fn prepare(&self, execution: &Execution) -> Result<Prepared, String> {
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
        let compiled = self.compiled.get(&function).map_err(|error| format!("could not start: {error}"))?;
        let prompt =
            compiled.prepare(&execution.input).await.map_err(|error| format!("could not start: {error}"))?;
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

/// The final status, from why the run was stopped if it was, else from what the backend answered.
fn conclude(result: Option<Result<RunOutcome, BackendError>>, reason: Option<StopReason>) -> ExecutionUpdate {
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
        (None, Some(Ok(RunOutcome::Succeeded { output, usage }))) => {
            ExecutionUpdate::new(from, ExecutionStatus::Succeeded).output(output).usage(usage)
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

/// Stores a run's log lines in batches as they come, and tells the bus after each batch.
///
/// A batch is gathered for at most [`LOG_GATHER`] after its first line (or until it is full), so that a backend that
/// writes many lines at once costs one write, not one per wake-up. Lines still held when the backend has dropped its
/// sink and the run has ended go back to the run, which stores them with the final status in one write.
struct LogWriter {
    store: Arc<dyn dashboard_store::DashboardStore>,
    bus: tokio::sync::broadcast::Sender<BusMessage>,
    execution_id: ExecutionId,
    max_line_bytes: usize,
    /// Cancelled by the run once the backend has returned.
    run_ended: CancellationToken,
}

impl LogWriter {
    /// Runs until every sink is gone (or, after the run has ended, until [`LOG_DRAIN_LIMIT`]); returns the lines not
    /// stored yet.
    async fn write(self, mut receiver: mpsc::Receiver<NewLogLine>) -> Vec<NewLogLine> {
        let mut batch: Vec<NewLogLine> = Vec::with_capacity(LOG_BATCH_LINES);
        // When the batch held now must be stored; `None` while it is empty.
        let mut store_by: Option<Instant> = None;
        let drain_limit = async {
            self.run_ended.cancelled().await;
            tokio::time::sleep(LOG_DRAIN_LIMIT).await;
        };
        tokio::pin!(drain_limit);
        loop {
            let room = LOG_BATCH_LINES.saturating_sub(batch.len()).max(1);
            tokio::select! {
                received = receiver.recv_many(&mut batch, room) => {
                    if received == 0 {
                        break;
                    }
                    store_by.get_or_insert_with(|| Instant::now() + LOG_GATHER);
                }
                () = sleep_until_some(store_by) => {}
                () = &mut drain_limit => {
                    log::warn!(
                        "execution {}: a backend task still held its log sink; later lines are dropped",
                        self.execution_id
                    );
                    receiver.close();
                    while let Ok(line) = receiver.try_recv() {
                        batch.push(line);
                    }
                    break;
                }
            }
            let is_due = store_by.is_some_and(|at| at <= Instant::now());
            if batch.len() >= LOG_BATCH_LINES || is_due {
                self.store(std::mem::take(&mut batch)).await;
                store_by = None;
            }
        }
        // Every sink is gone. Held lines wait for the run's end to go with the final status, but no longer than they
        // would have waited anyway (a detached run may wait hours for its report).
        if let Some(at) = store_by {
            tokio::select! {
                () = self.run_ended.cancelled() => {}
                () = tokio::time::sleep_until(at) => self.store(std::mem::take(&mut batch)).await,
            }
        }
        for line in &mut batch {
            truncate_line(&mut line.message, self.max_line_bytes);
        }
        batch
    }

    async fn store(&self, mut batch: Vec<NewLogLine>) {
        for line in &mut batch {
            truncate_line(&mut line.message, self.max_line_bytes);
        }
        match self.store.append_logs(self.execution_id, batch).await {
            Ok(last_seq) => {
                let _ = self.bus.send(BusMessage::Logs { execution_id: self.execution_id, last_seq });
            }
            Err(error) => log::error!("execution {}: could not store log lines: {error}", self.execution_id),
        }
    }
}

/// Sleeps until `at`, or for ever without it.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Cuts a line to at most `max_bytes` bytes on a character boundary, saying so at its end.
pub(crate) fn truncate_line(message: &mut String, max_bytes: usize) {
    const MARK: &str = " … [line cut]";
    if message.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes.saturating_sub(MARK.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut line = "é".repeat(100);
        truncate_line(&mut line, 64);
        assert!(line.len() <= 64 && line.ends_with("[line cut]"), "{line}");
        let mut short = "short".to_owned();
        truncate_line(&mut short, 64);
        assert_eq!(short, "short");
    }

    #[test]
    fn a_stop_reason_decides_over_the_backend_answer() {
        let succeeded = Some(Ok(RunOutcome::Succeeded { output: serde_json::json!(1), usage: None }));
        let update = conclude(succeeded, Some(StopReason::Cancelled { by: Some("ci".into()) }));
        assert_eq!(
            (update.to, update.error.as_deref()),
            (ExecutionStatus::Cancelled, Some("cancelled by ci"))
        );
        let update = conclude(None, Some(StopReason::TimedOut { after: Duration::from_secs(2) }));
        assert_eq!(
            (update.to, update.error.as_deref()),
            (ExecutionStatus::TimedOut, Some("timed out after 2 s"))
        );
    }
}
