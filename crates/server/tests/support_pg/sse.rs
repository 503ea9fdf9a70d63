//! A client of `GET /api/events/stream` that reads in a task of its own from the moment it connects and keeps every
//! message, so that a test can compare, at its end, what the stream delivered with what the store recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::instance::stream_client;

/// One message of the stream: its `id:`, its `event:` and its `data:`.
#[derive(Clone, Debug)]
pub struct SseMessage {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

/// What the reader has seen so far.
#[derive(Default)]
struct Seen {
    messages: Vec<SseMessage>,
    /// Why the stream ended, if it has (the server closed it, a read failed, a frame made no sense).
    ended: Option<String>,
}

/// An open events stream, read until dropped.
pub struct EventStream {
    seen: Arc<Mutex<Seen>>,
    reader: JoinHandle<()>,
}

impl EventStream {
    /// Opens `{url}/api/events/stream?after={after}`; panics unless the answer is a 200 event stream.
    pub async fn open(url: &str, after: u64) -> Self {
        let url = format!("{url}/api/events/stream?after={after}");
        let response =
            stream_client().get(&url).send().await.unwrap_or_else(|error| panic!("{url}: {error}"));
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok());
        assert_eq!(content_type, Some("text/event-stream"), "{url}");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = tokio::spawn(read(response, Arc::clone(&seen)));
        Self { seen, reader }
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<SseMessage> {
        self.seen.lock().expect("the reader never panics holding the lock").messages.clone()
    }

    /// Why the stream ended, if it has.
    pub fn ended(&self) -> Option<String> {
        self.seen.lock().expect("the reader never panics holding the lock").ended.clone()
    }

    /// Polls until a message with an id of at least `id` has come; false if none came within `limit` or the stream
    /// ended first.
    pub async fn wait_for_id(&self, id: u64, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            {
                let seen = self.seen.lock().expect("the reader never panics holding the lock");
                if seen.messages.last().is_some_and(|message| message.id >= id) {
                    return true;
                }
                if seen.ended.is_some() {
                    return false;
                }
            }
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads the body frame by frame (a frame ends with a blank line) into `seen`, until it ends.
async fn read(response: reqwest::Response, seen: Arc<Mutex<Seen>>) {
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let ended = loop {
        if let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            match parse_frame(&String::from_utf8_lossy(&frame)) {
                Ok(Some(message)) => {
                    seen.lock().expect("nothing panics holding the lock").messages.push(message);
                }
                Ok(None) => {}
                Err(error) => break error,
            }
            continue;
        }
        match body.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(error)) => break format!("the stream failed: {error}"),
            None => break "the server ended the stream".to_owned(),
        }
    };
    seen.lock().expect("nothing panics holding the lock").ended = Some(ended);
}

/// A frame with data as a message; a comment (the keep-alive) as `None`; anything else as what is wrong with it.
fn parse_frame(frame: &str) -> Result<Option<SseMessage>, String> {
    let (mut id, mut event, mut data) = (None, String::from("message"), None);
    for line in frame.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => {
                id = Some(value.parse::<u64>().map_err(|_| format!("an id that is not a number: {line:?}"))?)
            }
            "event" => event = value.to_owned(),
            "data" => {
                data = Some(
                    serde_json::from_str(value)
                        .map_err(|error| format!("data not JSON ({error}): {line:?}"))?,
                )
            }
            _ => return Err(format!("an unexpected line: {line:?}")),
        }
    }
    match (id, data) {
        (Some(id), Some(data)) => Ok(Some(SseMessage { id, event, data })),
        (None, None) => Ok(None),
        _ => Err(format!("a frame without an id or data: {frame:?}")),
    }
}
