//! `LogFollow`: an execution's log stream (`GET /api/executions/{id}/logs/stream`, SSE) read line by line until the
//! execution ends, resumed with `Last-Event-ID` after a dropped connection so that no line comes twice or goes missing.

use std::time::{Duration, Instant};

use dashboard_core::{Execution, ExecutionStatus, LogLine};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::{Client, ClientError, check_status, execution_path};

/// How a follow reconnects after its stream dropped (a server restart, a proxy's timeout, a network blip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The pause before the first attempt again.
    pub first_delay: Duration,
    /// The longest pause: each failed attempt doubles it up to this.
    pub max_delay: Duration,
    /// How long to keep trying, from the drop, before giving up with [`ClientError::StreamLost`].
    pub give_up_after: Duration,
    /// The longest silence on an open stream before it is taken for dropped: the server sends a keepalive every
    /// 15 s, so a stream silent for longer lost its server without a word (a pulled cable).
    pub silence: Duration,
}

impl Default for ReconnectPolicy {
    /// 200 ms, doubling up to 5 s, for up to 60 s; a stream silent for 45 s (three keepalives) is dropped.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            give_up_after: Duration::from_secs(60),
            silence: Duration::from_secs(45),
        }
    }
}

/// What a follow yields.
#[derive(Clone, Debug, PartialEq)]
pub enum FollowEvent {
    /// The next line of the log; each line once, in seq order.
    Line(LogLine),
    /// The execution, when its status is seen to change (the first one at connect); the last is terminal.
    Status(Box<Execution>),
}

/// The messages of one connection to the stream.
type MessageStream = BoxStream<'static, Result<Event, EventStreamError<reqwest::Error>>>;

/// A follow of one execution's log; [`LogFollow::next`] until it gives `None`.
pub struct LogFollow {
    client: Client,
    execution_id: String,
    policy: ReconnectPolicy,
    stream: Option<MessageStream>,
    /// Whether a connection was ever opened: the first one is not retried, so a wrong URL fails at once.
    has_connected: bool,
    /// The id of the last message received: `Last-Event-ID` of the next connection.
    cursor: Option<u64>,
    /// The seq of the last line yielded.
    last_seq: u64,
    last_status: Option<ExecutionStatus>,
    /// When the stream dropped, while no message came since.
    dropped_at: Option<Instant>,
    reconnects: u32,
    is_finished: bool,
}

impl LogFollow {
    /// A follow of `execution_id` through `client`, reconnecting by `policy`; nothing is sent before the first
    /// [`LogFollow::next`].
    pub fn new(client: Client, execution_id: &str, policy: ReconnectPolicy) -> Self {
        Self {
            client,
            execution_id: execution_id.to_owned(),
            policy,
            stream: None,
            has_connected: false,
            cursor: None,
            last_seq: 0,
            last_status: None,
            dropped_at: None,
            reconnects: 0,
            is_finished: false,
        }
    }

    /// The seq of the last line yielded (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many times the stream was opened again after it dropped.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// The next line or status change; `None` once the terminal status was yielded (so the last event before `None`
    /// is always a [`FollowEvent::Status`] with a terminal status). A dropped stream is opened again
    /// (resuming after the last message); the error is the API's (404 for an unknown execution), a first connection
    /// that failed, or [`ClientError::StreamLost`] when reconnecting failed for the policy's whole window.
    pub async fn next(&mut self) -> Result<Option<FollowEvent>, ClientError> {
        loop {
            if self.is_finished {
                return Ok(None);
            }
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let stream = self.connect().await?;
                    self.stream.insert(stream)
                }
            };
            let message = match tokio::time::timeout(self.policy.silence, stream.next()).await {
                Ok(Some(Ok(message))) => message,
                // Ended without the terminal status, broken, or silent too long: the connection is gone.
                Ok(Some(Err(_)) | None) | Err(_) => {
                    self.stream = None;
                    self.dropped_at.get_or_insert_with(Instant::now);
                    continue;
                }
            };
            self.dropped_at = None;
            if let Ok(id) = message.id.parse::<u64>() {
                self.cursor = Some(id);
            }
            match message.event.as_str() {
                "log" => {
                    let line: LogLine = self.decode(&message)?;
                    if line.seq > self.last_seq {
                        self.last_seq = line.seq;
                        return Ok(Some(FollowEvent::Line(line)));
                    }
                }
                "status" => {
                    let execution: Execution = self.decode(&message)?;
                    if execution.status.is_terminal() {
                        self.is_finished = true;
                        self.stream = None;
                    }
                    if self.last_status != Some(execution.status) {
                        self.last_status = Some(execution.status);
                        return Ok(Some(FollowEvent::Status(Box::new(execution))));
                    }
                }
                // Transcript items, and whatever a later server adds, are not part of the log.
                _ => {}
            }
        }
    }

    /// Opens the stream after the cursor; after a drop, tries again with backoff within the policy's window.
    async fn connect(&mut self) -> Result<MessageStream, ClientError> {
        let mut delay = self.policy.first_delay;
        loop {
            let error = match self.open().await {
                Ok(stream) => {
                    if self.has_connected {
                        self.reconnects += 1;
                    }
                    self.has_connected = true;
                    return Ok(stream);
                }
                Err(error) => error,
            };
            let Some(dropped_at) = self.dropped_at.filter(|_| self.has_connected && error.is_transient())
            else {
                return Err(error);
            };
            if dropped_at.elapsed() >= self.policy.give_up_after {
                return Err(ClientError::StreamLost {
                    execution_id: self.execution_id.clone(),
                    after: self.last_seq,
                    seconds: dropped_at.elapsed().as_secs(),
                    last: Box::new(error),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.policy.max_delay);
        }
    }

    /// One attempt at opening the stream.
    async fn open(&self) -> Result<MessageStream, ClientError> {
        let url = self.client.url(&execution_path(&self.execution_id, "/logs/stream"), &[])?;
        let mut request = self.client.request(Method::GET, url.clone()).header("Accept", "text/event-stream");
        if let Some(cursor) = self.cursor {
            request = request.header("Last-Event-ID", cursor.to_string());
        }
        let response = request.send().await.map_err(|source| ClientError::Transport {
            method: "GET",
            url: url.to_string(),
            source,
        })?;
        let response = check_status("GET", response).await?;
        Ok(response.bytes_stream().eventsource().boxed())
    }

    /// A message's JSON data.
    fn decode<T: DeserializeOwned>(&self, message: &Event) -> Result<T, ClientError> {
        serde_json::from_str(&message.data).map_err(|source| ClientError::Decode {
            method: "GET",
            path: format!("/api/executions/{}/logs/stream ({} message)", self.execution_id, message.event),
            source,
        })
    }
}
