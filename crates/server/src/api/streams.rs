//! The live streams (Server-Sent Events): `GET /api/events/stream` and `GET /api/executions/{id}/logs/stream`.
//!
//! The store is the source of truth and the bus only says when to look: every message is read from the store after
//! the cursor of the last one sent, so a client that reconnects with `Last-Event-ID`, or a stream that lags behind the
//! bus, gets every message exactly once and in order. Transcript items, which change in place and so have no cursor,
//! are the exception: the log stream reads the items the bus names and sends what may have been missed again
//! (`streams/items.rs`), for a client that upserts by id. Each stream has its own bus receiver and writes to its own
//! connection without holding any lock, so a client that reads slowly (or not at all) never slows the others.

mod items;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use dashboard_core::{ExecutionId, ExecutionStatus};
use dashboard_engine::{BusMessage, Dashboard, StoreReader};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use self::items::ItemTracker;
use crate::common::parse_execution_id;
use crate::error::{ApiError, ErrorCode};
use crate::state::State;

/// How long a stream stays silent before it sends a comment, so that proxies and clients see the connection alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The most events read from the store (and sent in one chunk) at once.
const EVENTS_PAGE: usize = 500;
/// The most log lines read from the store (and sent in one chunk) at once.
const LOGS_PAGE: usize = 1000;
/// The heartbeat: an SSE comment, which clients ignore.
const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// `?after=`: where to start when the client cannot send `Last-Event-ID`.
#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct StreamQuery {
    /// Resume after this id (a `Last-Event-ID` header wins).
    after: Option<u64>,
}

/// `GET /api/events/stream`: every event after the resume point (by default, after the newest event now).
pub(crate) async fn events(
    state: State,
    request: HttpRequest,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let resume_after = resume_point(&request, &query)?;
    let slot = StreamSlot::take(&state)?;
    // Subscribe before reading the cursor: whatever is recorded after the read then wakes the stream.
    let listener = Listener::new(state.dashboard.subscribe());
    let store = state.dashboard.store().clone();
    // A cursor past the newest event comes from another store (a memory store before a restart): start from now.
    let newest = store.last_event_id().await?;
    let after = resume_after.map_or(newest, |after| after.min(newest));
    let feed = EventFeed { store, listener, after, must_look: true, _slot: slot };
    Ok(sse_response(stream::unfold(feed, EventFeed::next_chunk)))
}

/// `GET /api/executions/{id}/logs/stream`: the execution's status, its log lines after the resume point (by default
/// from the first), every status change, and its transcript items (every one after the resumed lines, then each in
/// its newest state as it changes; states in between may be skipped); it ends after the terminal status.
pub(crate) async fn logs(
    state: State,
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let execution_id = parse_execution_id(&id)?;
    let after = resume_point(&request, &query)?.unwrap_or(0);
    let slot = StreamSlot::take(&state)?;
    let listener = Listener::new(state.dashboard.subscribe());
    let store = state.dashboard.store().clone();
    if store.get_execution(execution_id).await?.is_none() {
        return Err(ApiError::not_found("execution", &execution_id.to_string()));
    }
    let feed = LogFeed {
        store,
        listener,
        execution_id,
        after,
        status_sent: None,
        items: ItemTracker::default(),
        has_final_sweep: false,
        must_look: true,
        is_done: false,
        _slot: slot,
    };
    Ok(sse_response(stream::unfold(feed, LogFeed::next_chunk)))
}

/// The cursor the client resumes after: the `Last-Event-ID` header (what a reconnecting `EventSource` sends) wins
/// over `?after=`; neither means "start where the stream starts by default".
fn resume_point(request: &HttpRequest, query: &StreamQuery) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get("Last-Event-ID") else {
        return Ok(query.after);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(query.after);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidHeader,
            format!("Last-Event-ID: {text:?} is not an id this server sent (a whole number)"),
        )
        .details(json!({"header": "Last-Event-ID"}))
    })
}

fn sse_response(body: impl futures_util::Stream<Item = Result<Bytes, Infallible>> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Tells nginx and similar proxies to pass each message on at once rather than buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// Appends one SSE message: `id`, `event` and the JSON on one `data` line (JSON text has no raw newlines).
fn push_message(text: &mut String, id: u64, name: &str, data: &impl Serialize) {
    let json =
        serde_json::to_string(data).expect("domain types serialize to JSON: their maps have string keys");
    push_json(text, id, name, &json);
}

/// Appends one SSE message whose data is `json`, already written out.
fn push_json(text: &mut String, id: u64, name: &str, json: &str) {
    text.push_str(&format!("id: {id}\nevent: {name}\ndata: {json}\n\n"));
}

/// Why a waiting stream woke up.
enum Wake {
    /// Something it sends may have been recorded: the message that says so, or `None` when the receiver lagged and
    /// lost messages (the store tells what was missed).
    News(Option<BusMessage>),
    /// Nothing for a while: send a heartbeat.
    Heartbeat,
    /// The engine is gone: end the stream.
    Closed,
}

/// A stream's bus receiver and heartbeat clock.
struct Listener {
    bus: broadcast::Receiver<BusMessage>,
    heartbeat_at: Instant,
}

impl Listener {
    fn new(bus: broadcast::Receiver<BusMessage>) -> Self {
        Self { bus, heartbeat_at: Instant::now() + HEARTBEAT }
    }

    /// Waits for a bus message that `is_news`, or for the heartbeat. A receiver that lagged behind the bus lost
    /// messages it cannot know: that counts as news, and the store tells what was missed.
    async fn wait(&mut self, is_news: impl Fn(&BusMessage) -> bool) -> Wake {
        loop {
            tokio::select! {
                message = self.bus.recv() => match message {
                    Ok(message) if is_news(&message) => return Wake::News(Some(message)),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return Wake::News(None),
                    Err(RecvError::Closed) => return Wake::Closed,
                },
                () = tokio::time::sleep_until(self.heartbeat_at) => return Wake::Heartbeat,
            }
        }
    }

    /// A chunk to send; the heartbeat clock starts again.
    fn sent(&mut self, chunk: Bytes) -> Result<Bytes, Infallible> {
        self.heartbeat_at = Instant::now() + HEARTBEAT;
        Ok(chunk)
    }
}

/// The state of an events stream.
struct EventFeed {
    store: StoreReader,
    listener: Listener,
    /// The id of the last event sent (or the resume point).
    after: u64,
    /// Read the store before waiting: at the start, and while pages come back full.
    must_look: bool,
    _slot: StreamSlot,
}

impl EventFeed {
    /// The next chunk of messages, a heartbeat, or `None` to end the stream.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            if !self.must_look {
                let after = self.after;
                let is_news =
                    |message: &BusMessage| matches!(message, BusMessage::Event(event) if event.id > after);
                match self.listener.wait(is_news).await {
                    // The very next event: nothing can be missing before it, so it goes out as the bus carried it,
                    // without a store read per subscriber. Anything else (a gap, a lag) is read from the store.
                    Wake::News(Some(BusMessage::Event(event))) if event.id == self.after + 1 => {
                        let mut text = String::new();
                        push_message(&mut text, event.id, "event", &event);
                        self.after = event.id;
                        return Some((self.listener.sent(Bytes::from(text)), self));
                    }
                    Wake::News(_) => {}
                    Wake::Heartbeat => {
                        return Some((self.listener.sent(Bytes::from_static(KEEPALIVE)), self));
                    }
                    Wake::Closed => return None,
                }
            }
            let events = match self.store.list_events(self.after, EVENTS_PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    // The client reconnects with Last-Event-ID and resumes where this stream stopped.
                    log::warn!("events stream: could not read the store, closing the stream: {error}");
                    return None;
                }
            };
            self.must_look = events.len() == EVENTS_PAGE;
            let mut text = String::new();
            for event in &events {
                push_message(&mut text, event.id, "event", event);
                self.after = event.id;
            }
            if !text.is_empty() {
                return Some((self.listener.sent(Bytes::from(text)), self));
            }
        }
    }
}

/// The state of an execution's log stream.
struct LogFeed {
    store: StoreReader,
    listener: Listener,
    execution_id: ExecutionId,
    /// The seq of the last line sent (or the resume point).
    after: u64,
    status_sent: Option<ExecutionStatus>,
    /// What the client has of the execution's items.
    items: ItemTracker,
    /// The terminal status has been seen and the items compared with the store once more before it is sent.
    has_final_sweep: bool,
    must_look: bool,
    /// The terminal status has been sent after the last line.
    is_done: bool,
    _slot: StreamSlot,
}

impl LogFeed {
    /// The next chunk of messages, a heartbeat, or `None` to end the stream.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        while !self.is_done {
            if !self.must_look {
                let (execution_id, after) = (self.execution_id, self.after);
                let is_news = |message: &BusMessage| match message {
                    BusMessage::Logs { execution_id: id, last_seq } => {
                        *id == execution_id && *last_seq > after
                    }
                    BusMessage::Items { execution_id: id, .. } => *id == execution_id,
                    BusMessage::Event(event) => event.execution_id == Some(execution_id),
                    _ => false,
                };
                match self.listener.wait(is_news).await {
                    Wake::News(Some(BusMessage::Items { seqs, .. })) => self.items.heard(&seqs),
                    // Lost messages may have carried items: compare them all with the store.
                    Wake::News(None) => self.items.sweep(),
                    Wake::News(Some(_)) => {}
                    Wake::Heartbeat => {
                        return Some((self.listener.sent(Bytes::from_static(KEEPALIVE)), self));
                    }
                    Wake::Closed => return None,
                }
            }
            let text = match self.look().await {
                Ok(text) => text,
                Err(error) => {
                    log::warn!(
                        "log stream of {}: could not read the store, closing it: {error}",
                        self.execution_id
                    );
                    return None;
                }
            };
            if !text.is_empty() {
                return Some((self.listener.sent(Bytes::from(text)), self));
            }
        }
        None
    }

    /// Reads the status, then the lines after the cursor, and writes what the client has not seen: a new status
    /// before the lines, the items changed meanwhile after them, and a terminal status last, after the last line and
    /// a final comparison of the items with the store, ending the stream. The status is read first because the engine
    /// stores every line and item no later than the terminal status: none can follow it.
    async fn look(&mut self) -> Result<String, dashboard_store::StoreError> {
        let mut text = String::new();
        let Some(execution) = self.store.get_execution(self.execution_id).await? else {
            // Deleted meanwhile (retention): there is nothing more to tell.
            self.is_done = true;
            return Ok(text);
        };
        let lines = self.store.read_logs(self.execution_id, self.after, LOGS_PAGE).await?;
        self.must_look = lines.len() == LOGS_PAGE;
        let is_terminal = execution.status.is_terminal();
        if !is_terminal && self.status_sent != Some(execution.status) {
            push_message(&mut text, self.after, "status", &execution);
            self.status_sent = Some(execution.status);
        }
        for line in &lines {
            push_message(&mut text, line.seq, "log", line);
            self.after = line.seq;
        }
        // Items follow the lines they were reported after: only once the lines have been caught up with.
        if !self.must_look {
            if is_terminal && !self.has_final_sweep {
                self.items.sweep();
                self.has_final_sweep = true;
            }
            self.must_look = self.items.write(&self.store, self.execution_id, &mut text, self.after).await?;
        }
        if is_terminal && !self.must_look {
            push_message(&mut text, self.after, "status", &execution);
            self.is_done = true;
        }
        Ok(text)
    }
}

/// A place among a server's open streams (`DASHBOARD_MAX_SSE_CLIENTS`), counted in the engine's `sse_clients` gauge
/// (which `/metrics` shows); given back when the stream is dropped, which actix does when the stream ends or the
/// client goes away.
struct StreamSlot {
    /// `None` only in unit tests of a feed, which take no place.
    dashboard: Option<Dashboard>,
}

impl StreamSlot {
    /// Takes a place, or answers 503 `too-many-streams` when all are taken.
    fn take(state: &State) -> Result<Self, ApiError> {
        let max = i64::try_from(state.config.max_sse_clients).unwrap_or(i64::MAX);
        let open = &state.dashboard.metrics().sse_clients;
        if open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_err() {
            return Err(ApiError::new(ErrorCode::TooManyStreams, format!("{max} live streams are open, the most this server allows; try again later or poll instead"),
            )
            .details(json!({"max_streams": max})));
        }
        Ok(Self { dashboard: Some(state.dashboard.clone()) })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(dashboard) = &self.dashboard {
            dashboard.metrics().sse_clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::{Function, FunctionSpec};
    use dashboard_store::{DashboardStore, MemoryStore};

    use super::*;

    #[tokio::test]
    async fn an_events_stream_that_lagged_behind_the_bus_catches_up_from_the_store() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let (bus, receiver) = broadcast::channel(2);
        let slot = StreamSlot { dashboard: None };
        let feed = EventFeed {
            store: StoreReader::new(store.clone()),
            listener: Listener::new(receiver),
            after: 0,
            must_look: false,
            _slot: slot,
        };
        let mut recorded_ids = Vec::new();
        for index in 0..5 {
            let function =
                Function::create(FunctionSpec::new(format!("f{index}"), "demo")).expect("a valid spec");
            let recorded = store.create_function(function).await.expect("stored");
            recorded_ids.push(recorded.event.id);
            let _ = bus.send(BusMessage::Event(recorded.event));
        }

        // Two log messages push every event message out of the receiver: only its lag says that something was missed.
        for last_seq in 1..=2 {
            let _ = bus.send(BusMessage::Logs { execution_id: ExecutionId::generate(), last_seq });
        }

        let next = tokio::time::timeout(Duration::from_secs(5), feed.next_chunk()).await;
        let (chunk, _feed) = next.expect("the lag wakes the stream").expect("a chunk");
        let text = String::from_utf8(chunk.expect("infallible").to_vec()).expect("UTF-8");
        let sent_ids: Vec<u64> = text
            .lines()
            .filter_map(|line| line.strip_prefix("id: "))
            .map(|id| id.parse().expect("a numeric id"))
            .collect();
        assert_eq!(sent_ids, recorded_ids);
    }

    #[tokio::test]
    async fn the_next_event_goes_out_from_the_bus_and_a_gap_is_read_from_the_store() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let (bus, receiver) = broadcast::channel(16);
        let feed = EventFeed {
            store: StoreReader::new(store.clone()),
            listener: Listener::new(receiver),
            after: 0,
            must_look: false,
            _slot: StreamSlot { dashboard: None },
        };
        // Event 1 is on the bus but not in this store: only the bus could have sent it.
        let function = Function::create(FunctionSpec::new("on-the-bus", "demo")).expect("a valid spec");
        let event =
            dashboard_core::NewEvent::for_function(dashboard_core::EventKind::FunctionCreated, &function)
                .recorded(1, dashboard_core::now());
        let _ = bus.send(BusMessage::Event(event));
        let (chunk, feed) = feed.next_chunk().await.expect("a chunk");
        let text = String::from_utf8(chunk.expect("infallible").to_vec()).expect("UTF-8");
        assert!(text.starts_with("id: 1\n") && text.contains("on-the-bus"), "{text}");

        // Event 5 skips 2–4: the stream reads the store instead of trusting the bus, and sends what is stored after
        // event 1 — here event 2.
        for name in ["first-in-store", "second-in-store"] {
            let function = Function::create(FunctionSpec::new(name, "demo")).expect("a valid spec");
            store.create_function(function).await.expect("stored");
        }
        let mut skipping = store.list_events(0, 1).await.expect("events")[0].clone();
        skipping.id = 5;
        let _ = bus.send(BusMessage::Event(skipping));
        let (chunk, _feed) = feed.next_chunk().await.expect("a chunk");
        let text = String::from_utf8(chunk.expect("infallible").to_vec()).expect("UTF-8");
        assert!(
            text.starts_with("id: 2\n") && text.contains("second-in-store") && !text.contains("id: 5\n"),
            "{text}"
        );
    }
}
