//! `RunContext`: everything a backend gets for one run, and the sink its log lines and transcript items go through.

use std::time::Duration;

use dashboard_core::{ExecutionId, LogStream, NewItem, NewLogLine};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BackendError;

/// One thing a backend reported during a run: a log line or a transcript item. Both travel through one channel, so
/// the engine receives them in the order they were reported.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEntry {
    /// A log line.
    Line(NewLogLine),
    /// A transcript item, new or updated (the same id again).
    Item(NewItem),
}

impl RunEntry {
    /// The line, when this is one.
    pub fn into_line(self) -> Option<NewLogLine> {
        match self {
            Self::Line(line) => Some(line),
            Self::Item(_) => None,
        }
    }

    /// The item, when this is one.
    pub fn into_item(self) -> Option<NewItem> {
        match self {
            Self::Item(item) => Some(item),
            Self::Line(_) => None,
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
            logs,
        }
    }

    /// Writes a log line (see [`LogSink::log`]).
    pub async fn log(&self, stream: LogStream, message: impl AsRef<str>) {
        self.logs.log(stream, message).await;
    }

    /// Reports a transcript item (see [`LogSink::item`]), in order with the log lines.
    pub async fn item(&self, item: NewItem) {
        self.logs.item(item).await;
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
