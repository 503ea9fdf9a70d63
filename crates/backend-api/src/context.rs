//! `RunContext`: everything a backend gets for one run, and the sink its log lines and transcript items go through.

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{ApprovalPolicy, ExecutionId, LogStream, NewItem, NewLogLine};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{ApprovalAnswer, ApprovalGate, ApprovalRequest, ApproveAll, BackendError};

/// The most bytes of a run's diff the engine keeps; a longer one is cut on a line boundary with [`DIFF_CUT_MARKER`].
pub const MAX_DIFF_BYTES: usize = 4 * 1024 * 1024;

/// The line that ends a diff cut to [`MAX_DIFF_BYTES`].
pub const DIFF_CUT_MARKER: &str = "# [diff cut: it was longer than the dashboard keeps]\n";

/// One thing a backend reported during a run: a log line, a transcript item, the run's diff or the agent's session.
/// All travel through one channel, so the engine receives them in the order they were reported.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEntry {
    /// A log line.
    Line(NewLogLine),
    /// A transcript item, new or updated (the same id again).
    Item(NewItem),
    /// The run's current unified diff, replacing any reported before.
    Diff(String),
    /// The agent's own id of the conversation this run is a turn of (a Codex thread, a Claude Code session).
    Session(String),
}

impl RunEntry {
    /// The line, when this is one.
    pub fn into_line(self) -> Option<NewLogLine> {
        match self {
            Self::Line(line) => Some(line),
            _ => None,
        }
    }

    /// The item, when this is one.
    pub fn into_item(self) -> Option<NewItem> {
        match self {
            Self::Item(item) => Some(item),
            _ => None,
        }
    }
}

/// Where a backend's log lines and transcript items go. Cloneable; entries are delivered in the order they were
/// written. Writing waits when the reader falls far behind, so a flood of output slows the producer instead of growing
/// memory without bound.
#[derive(Clone, Debug)]
pub struct LogSink {
    sender: mpsc::Sender<RunEntry>,
}

/// A log sink and the receiver its entries arrive at; `capacity` entries may wait before writers wait.
pub fn log_channel(capacity: usize) -> (LogSink, mpsc::Receiver<RunEntry>) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (LogSink { sender }, receiver)
}

impl LogSink {
    /// Writes one line. A line holding line breaks is split into one line each. Lines written after the run's
    /// logs were closed are dropped.
    pub async fn log(&self, stream: LogStream, message: impl AsRef<str>) {
        for line in message.as_ref().lines() {
            // The receiver is gone only once the run is over; late lines have nowhere to go.
            let _ = self.sender.send(RunEntry::Line(NewLogLine::new(stream, line))).await;
        }
    }

    /// Reports a transcript item: a new one, or — under an id reported before — its new state (the engine keeps
    /// the latest). Items reported after the run's logs were closed are dropped.
    pub async fn item(&self, item: NewItem) {
        // As for lines: the receiver is gone only once the run is over.
        let _ = self.sender.send(RunEntry::Item(item)).await;
    }

    /// Reports the run's current unified diff (what the agent changed so far), replacing any diff reported before:
    /// the engine keeps the latest and stores it with the final status. A diff longer than [`MAX_DIFF_BYTES`] is
    /// cut on a line boundary, and the log says so. Reports after the run's logs were closed are dropped.
    pub async fn diff(&self, text: impl Into<String>) {
        // As for lines: the receiver is gone only once the run is over.
        let _ = self.sender.send(RunEntry::Diff(text.into())).await;
    }

    /// Reports the agent's own id of the conversation this run is a turn of, as soon as the backend knows it: the
    /// engine stores it on the execution at once, and a continue of the execution resumes it (see
    /// [`RunContext::resume`]). Reports after the run's logs were closed are dropped.
    pub async fn session(&self, session_id: impl Into<String>) {
        // As for lines: the receiver is gone only once the run is over.
        let _ = self.sender.send(RunEntry::Session(session_id.into())).await;
    }
}

/// `diff` cut to at most `max_bytes` bytes on a line boundary (the marker included), and whether it was cut.
pub fn bound_diff(mut diff: String, max_bytes: usize) -> (String, bool) {
    if diff.len() <= max_bytes {
        return (diff, false);
    }
    let room = max_bytes.saturating_sub(DIFF_CUT_MARKER.len());
    // The last line break within the room ends the part kept; a line longer than the room keeps nothing of itself.
    let end = diff.as_bytes()[..room].iter().rposition(|byte| *byte == b'\n').map_or(0, |at| at + 1);
    diff.truncate(end);
    diff.push_str(DIFF_CUT_MARKER);
    (diff, true)
}

/// Where a backend reports its run's usage as it grows (a Codex thread's running totals, a Claude Code session's
/// messages): the engine keeps the latest report — it is the run's usage when the run ends without one of its own (a
/// failure, a cancel) — and stops a run whose usage crosses a budget. A report is the backend's usage JSON, in any of
/// the vocabularies `dashboard_core::Usage::from_report` reads; each replaces the one before.
pub trait UsageMeter: Send + Sync + std::fmt::Debug {
    /// Takes the run's usage so far. Cheap and never blocking: call it at every report.
    fn report(&self, usage: &Value);
}

/// The meter of a run outside the engine: keeps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMeter;

impl UsageMeter for NoMeter {
    fn report(&self, _usage: &Value) {}
}

/// Where a remote backend reports back: the execution's own API URL and the token that authorizes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    /// `{public_url}/api/executions/{id}`.
    pub url: String,
    /// The execution's random callback token.
    pub token: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("url", &self.url).field("token", &"<redacted>").finish()
    }
}

/// One run of one execution, as handed to [`crate::Backend::trigger`].
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The execution's id.
    pub execution_id: ExecutionId,
    /// The function's name.
    pub function: String,
    /// The validated input.
    pub input: Value,
    /// The prompt template rendered with the input, when the function has one.
    pub prompt: Option<String>,
    /// The function's backend-specific config.
    pub config: Map<String, Value>,
    /// Fires when the run must stop: cancel, timeout or shutdown.
    pub cancel: CancellationToken,
    /// When the run will be stopped as timed out, if it has a timeout.
    pub deadline: Option<Instant>,
    /// Where a remote backend reports back, when the server knows its public URL.
    pub callback: Option<Callback>,
    /// The agent's session to continue, when this run is a follow-up turn (`POST /api/executions/{id}/continue`):
    /// the session id the execution it continues reported through [`session`](Self::session). The prompt is the
    /// new turn's. Only a backend whose [`crate::Backend::can_continue`] is true is given one.
    pub resume: Option<String>,
    /// Where the agent's approval requests go (see [`ask_approval`](Self::ask_approval)); [`ApproveAll`] unless the
    /// engine sets its own.
    pub approvals: Arc<dyn ApprovalGate>,
    /// The function's approval policy. A backend whose agent has its own way to decide without asking (Claude Code's
    /// permission mode) asks the dashboard only when it is not `auto`; others ask always and let the gate apply it.
    pub approval_policy: ApprovalPolicy,
    /// Where the run's usage goes as it grows (see [`report_usage`](Self::report_usage)); [`NoMeter`] unless the
    /// engine sets its own.
    pub meter: Arc<dyn UsageMeter>,
    logs: LogSink,
}

impl RunContext {
    /// A context for a run; `logs` is where its lines go.
    pub fn new(execution_id: ExecutionId, function: impl Into<String>, input: Value, logs: LogSink) -> Self {
        Self {
            execution_id,
            function: function.into(),
            input,
            prompt: None,
            config: Map::new(),
            cancel: CancellationToken::new(),
            deadline: None,
            callback: None,
            resume: None,
            approvals: Arc::new(ApproveAll),
            approval_policy: ApprovalPolicy::Auto,
            meter: Arc::new(NoMeter),
            logs,
        }
    }

    /// Asks for a decision on what the agent wants to do, and waits for it: the function's approval policy answers
    /// at once (`auto`, `deny`, a grant for the session), or a person does (`ask`; the execution is `waiting`
    /// meanwhile). A run that is stopped, or an approval that expires, gets a decline. Tell the agent the answer.
    pub async fn ask_approval(&self, request: ApprovalRequest) -> ApprovalAnswer {
        self.approvals.ask(request).await
    }

    /// Reports the run's usage so far (see [`UsageMeter`]): the engine keeps it, and stops the run as a cancel would
    /// when it crosses a budget (`run.cancel` fires).
    pub fn report_usage(&self, usage: &Value) {
        self.meter.report(usage);
    }

    /// Writes a log line (see [`LogSink::log`]).
    pub async fn log(&self, stream: LogStream, message: impl AsRef<str>) {
        self.logs.log(stream, message).await;
    }

    /// Reports a transcript item (see [`LogSink::item`]), in order with the log lines.
    pub async fn item(&self, item: NewItem) {
        self.logs.item(item).await;
    }

    /// Reports the run's current diff (see [`LogSink::diff`]).
    pub async fn diff(&self, text: impl Into<String>) {
        self.logs.diff(text).await;
    }

    /// Reports the agent's session id (see [`LogSink::session`]).
    pub async fn session(&self, session_id: impl Into<String>) {
        self.logs.session(session_id).await;
    }

    /// A clone of the log sink, for tasks that read a program's output.
    pub fn log_sink(&self) -> LogSink {
        self.logs.clone()
    }

    /// Sleeps for `duration`, or returns [`BackendError::Cancelled`] as soon as the run is cancelled.
    pub async fn sleep(&self, duration: Duration) -> Result<(), BackendError> {
        // A zero wait only yields to the other tasks: tokio's timer would round it up to its next 1 ms tick.
        if duration.is_zero() {
            tokio::task::yield_now().await;
            return if self.cancel.is_cancelled() { Err(BackendError::Cancelled) } else { Ok(()) };
        }
        tokio::select! {
            () = self.cancel.cancelled() => Err(BackendError::Cancelled),
            () = tokio::time::sleep(duration) => Ok(()),
        }
    }

    /// Reads an optional input field, with a clear error when it has the wrong type.
    pub fn input_field<T: serde::de::DeserializeOwned>(
        &self,
        field: &str,
    ) -> Result<Option<T>, BackendError> {
        match self.input.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|error| BackendError::InvalidInput(format!("input.{field}: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(diff: &str, max_bytes: usize, expected: &str, is_cut: bool) {
        assert_eq!(
            bound_diff(diff.to_owned(), max_bytes),
            (expected.to_owned(), is_cut),
            "{diff:?} in {max_bytes}"
        );
    }

    #[test]
    fn a_long_diff_is_cut_on_a_line_boundary_with_the_marker() {
        let marker = DIFF_CUT_MARKER;
        let room = marker.len();
        let line = format!("+{}\n", "a".repeat(60));
        let diff = line.repeat(3);
        check(&diff, diff.len(), &diff, false);
        check(&diff, room + line.len(), &format!("{line}{marker}"), true);
        check(&diff, room + line.len() - 1, marker, true);
        let wide = format!("+{}\n", "é".repeat(40));
        check(&wide.repeat(3), room + 2 * wide.len() + 5, &format!("{wide}{wide}{marker}"), true);
    }
}
