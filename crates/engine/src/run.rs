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
/// How long the end of a run waits for its last log lines to be stored.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);

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
    function: Function,
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
        match self
            .transition(id, ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running))
            .await
        {
            Ok(_) => {}
            // Cancelled while it waited: nothing to run.
            Err(EngineError::Store(StoreError::StatusMismatch { .. })) => return Ok(()),
            Err(error) => return Err(error),
        }

        let timeout =
            prepared.function.timeout_secs.map(Duration::from_secs).or(self.settings.default_timeout);
        let (sink, receiver) = log_channel(LOG_BUFFER_LINES);
        let log_writer = tokio::spawn(write_logs(
            self.store.clone(),
            self.bus.clone(),
            id,
            receiver,
            self.settings.max_log_line_bytes,
        ));
        let engine_log = sink.clone();
        engine_log
            .log(
                LogStream::System,
                format!("running on backend {} (attempt {})", execution.backend, execution.attempt),
            )
            .await;

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
        engine_log.log(LogStream::System, closing_line).await;
        drop(engine_log);
        if tokio::time::timeout(LOG_DRAIN_LIMIT, log_writer).await.is_err() {
            log::warn!("execution {id}: a backend task still held its log sink; later lines are dropped");
        }
        self.finish(id, update).await
    }

    /// Records the final status; someone else finishing it first (a callback) is not an error.
    async fn finish(&self, id: ExecutionId, update: ExecutionUpdate) -> Result<(), EngineError> {
        match self.transition(id, update).await {
            Ok(_) | Err(EngineError::Store(StoreError::StatusMismatch { .. })) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Finds the function and backend and renders the prompt; the error is the reason the run cannot start.
    async fn prepare(&self, execution: &Execution) -> Result<Prepared, String> {
        let function = self
            .store
            .get_function(&FunctionKey::Id(execution.function_id))
            .await
            .map_err(|error| format!("could not start: {error}"))?
            .ok_or_else(|| format!("could not start: function {} was deleted", execution.function))?;
        let backend =
            self.backends.get(&execution.backend).cloned().ok_or_else(|| {
                format!("could not start: backend {:?} is not configured", execution.backend)
            })?;
        let compiled = self.compiled.get(&function).map_err(|error| format!("could not start: {error}"))?;
        let prompt =
            compiled.prepare(&execution.input).map_err(|error| format!("could not start: {error}"))?;
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
async fn write_logs(
    store: Arc<dyn dashboard_store::DashboardStore>,
    bus: tokio::sync::broadcast::Sender<BusMessage>,
    execution_id: ExecutionId,
    mut receiver: mpsc::Receiver<NewLogLine>,
    max_line_bytes: usize,
) {
    let mut batch = Vec::with_capacity(LOG_BATCH_LINES);
    while receiver.recv_many(&mut batch, LOG_BATCH_LINES).await > 0 {
        for line in &mut batch {
            truncate_line(&mut line.message, max_line_bytes);
        }
        match store.append_logs(execution_id, std::mem::take(&mut batch)).await {
            Ok(last_seq) => {
                let _ = bus.send(BusMessage::Logs { execution_id, last_seq });
            }
            Err(error) => log::error!("execution {execution_id}: could not store log lines: {error}"),
        }
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
