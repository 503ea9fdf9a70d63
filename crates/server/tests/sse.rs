//! The live streams over real HTTP: resume with `Last-Event-ID` without gap or duplicate, many clients beside one
//! that never reads, the log stream to its terminal status, and the cap on open streams.

mod common;

use std::pin::Pin;
use std::time::{Duration, Instant};

use common::{TestServer, server, server_with};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

/// Generous limits for things that take milliseconds, so a busy machine does not fail the test.
const SETTLE: Duration = Duration::from_secs(10);
/// How soon a stream whose client has gone must give its place back: well under the 15 s heartbeat, which used to be
/// the first write that could find the client gone.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// One SSE message as the server sent it.
#[derive(Debug, Clone)]
struct Message {
    id: u64,
    event: String,
    data: Value,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Send>>;

/// An open stream, parsed by hand: messages end with a blank line, lines starting with `:` are comments.
struct SseClient {
    body: Body,
    buffer: Vec<u8>,
}

impl SseClient {
    /// Opens `path` (with `Last-Event-ID` when given); panics unless the answer is a 200 event stream.
    async fn open(server: &TestServer, path: &str, last_event_id: Option<u64>) -> Self {
        Self::open_with(&server.client, &format!("{}{path}", server.url), last_event_id).await
    }

    async fn open_with(client: &reqwest::Client, url: &str, last_event_id: Option<u64>) -> Self {
        let mut request = client.get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok());
        assert_eq!(content_type, Some("text/event-stream"), "{url}");
        Self { body: Box::pin(response.bytes_stream()), buffer: Vec::new() }
    }

    /// The next message; `None` when the stream has ended. Panics after `SETTLE`.
    async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(SETTLE, self.next_message())
            .await
            .expect("a message or the end of the stream in time")
    }

    /// The next message if one comes within `limit`.
    async fn next_within(&mut self, limit: Duration) -> Option<Message> {
        tokio::time::timeout(limit, self.next_message()).await.ok().flatten()
    }

    async fn next_message(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if let Some(message) = parse_frame(&String::from_utf8(frame).expect("UTF-8 frames")) {
                    return Some(message);
                }
                continue;
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.expect("the stream reads")),
                None => return None,
            }
        }
    }

    /// Every message up to the end of the stream.
    async fn read_to_end(mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            messages.push(message);
        }
        messages
    }
}

/// A frame with data; comments (the heartbeat) give `None`.
fn parse_frame(frame: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, String::from("message"), None);
    for line in frame.lines() {
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => id = Some(value.parse().expect("numeric ids")),
            "event" => event = value.to_owned(),
            "data" => data = Some(serde_json::from_str(value).expect("JSON data")),
            _ => assert!(line.starts_with(':') || line.is_empty(), "unexpected line {line:?}"),
        }
    }
    Some(Message { id: id.expect("every message has an id"), event, data: data? })
}

fn ids(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|message| message.id).collect()
}

/// The ids of the polling feed after `after`.
async fn polled_ids(server: &TestServer, after: u64) -> Vec<u64> {
    let answer = server.get(&format!("/api/events?after={after}&limit=1000")).await;
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|event| event["id"].as_u64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_the_missed_events_in_order() {
    let server = server().await;
    server.create_function("resumer", json!({})).await;
    let mut stream = SseClient::open(&server, "/api/events/stream", None).await;
    let first = server.trigger("resumer", json!({"steps": 0})).await;
    let mut seen = Vec::new();
    while seen.last().is_none_or(|message: &Message| message.data["kind"] != "execution.succeeded") {
        seen.push(stream.next().await.expect("the stream stays open"));
    }
    assert!(
        seen.iter().all(|message| message.event == "event" && message.data["execution_id"] == first.as_str())
    );
    assert!(seen.iter().all(|message| message.data["id"] == message.id), "id: is the event's id");
    let last_seen = seen.last().expect("a message").id;
    drop(stream);

    for _ in 0..3 {
        let missed = server.trigger("resumer", json!({"steps": 0})).await;
        server.wait_for(&missed, "succeeded", SETTLE).await;
    }
    let expected = polled_ids(&server, last_seen).await;
    assert_eq!(expected.len(), 9, "three executions, three events each: {expected:?}");

    for (path, header) in [
        ("/api/events/stream".to_owned(), Some(last_seen)),
        (format!("/api/events/stream?after={last_seen}"), None),
        // A reconnecting EventSource keeps its URL and adds the header: the header wins.
        ("/api/events/stream?after=0".to_owned(), Some(last_seen)),
    ] {
        let mut resumed = SseClient::open(&server, &path, header).await;
        let mut received = Vec::new();
        while received.len() < expected.len() {
            received.push(resumed.next().await.expect("the stream stays open"));
        }
        assert_eq!(ids(&received), expected, "{path}");
        let extra = resumed.next_within(Duration::from_millis(300)).await;
        assert!(extra.is_none(), "{path}: nothing is sent twice: {extra:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_newest_event_starts_the_stream_from_now() {
    let server = server().await;
    server.create_function("late", json!({})).await;
    let mut stream = SseClient::open(&server, "/api/events/stream", Some(1_000_000)).await;
    let id = server.trigger("late", json!({"steps": 0})).await;
    let first = stream.next().await.expect("the stream stays open");
    assert_eq!(
        (first.data["kind"].as_str(), first.data["execution_id"].as_str()),
        (Some("execution.queued"), Some(id.as_str()))
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_streams_get_a_new_event_within_a_second_while_one_client_never_reads() {
    const READERS: usize = 200;
    let server = server().await;
    server.create_function("broadcast", json!({})).await;
    let url = format!("{}/api/events/stream", server.url);
    let client = common::client();

    // Connected (the answer's head has arrived) but never read: one on the events stream, and one on the log stream
    // of a long execution, with over half a megabyte waiting that the client never takes.
    let stalled = client.get(&url).send().await.expect("the server answers");
    assert_eq!(stalled.status(), 200);
    // The demo backend names the function in every line: a long name makes long lines.
    let backlog_function = "backlog-with-a-long-name-so-that-every-log-line-of-it-is-longer";
    server.create_function(backlog_function, json!({})).await;
    let backlog = server.trigger(backlog_function, json!({"steps": 3_000, "delay_ms": 0})).await;
    server.wait_for(&backlog, "succeeded", 3 * SETTLE).await;
    let log_url = format!("{}/api/executions/{backlog}/logs/stream", server.url);
    let stalled_logs = client.get(&log_url).send().await.expect("the server answers");
    assert_eq!(stalled_logs.status(), 200);
    // Every reader has its answer before the trigger, so each is subscribed.
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let mut reader = SseClient::open_with(&client, &url, None).await;
        let report = report.clone();
        readers.push(tokio::spawn(async move {
            let message = reader.next_message().await;
            let _ = report.send((Instant::now(), message));
            // Stays connected until the test ends.
            std::future::pending::<()>().await;
        }));
    }
    drop(report);

    let triggered_at = Instant::now();
    let id = server.trigger("broadcast", json!({"steps": 0})).await;
    let mut delays = Vec::with_capacity(READERS);
    while delays.len() < READERS {
        let (received_at, message) = tokio::time::timeout(SETTLE, reports.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {READERS} readers got the event", delays.len()))
            .expect("the readers report");
        let message = message.expect("a message before the stream ends");
        assert_eq!(
            (message.data["kind"].as_str(), message.data["execution_id"].as_str()),
            (Some("execution.queued"), Some(id.as_str()))
        );
        delays.push(received_at - triggered_at);
    }
    delays.sort();
    let max = delays[READERS - 1];
    eprintln!(
        "{READERS} readers beside two stalled clients: median delivery {:?}, max {max:?}",
        delays[READERS / 2]
    );
    assert!(max <= Duration::from_secs(1), "the slowest reader got the event after {max:?}");
    // Every connection closes before the server stops, so its graceful stop does not wait for them.
    readers.iter().for_each(tokio::task::JoinHandle::abort);
    for reader in readers {
        let _ = reader.await;
    }
    drop((stalled, stalled_logs, client));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_sends_every_line_then_the_terminal_status_and_ends() {
    let server = server().await;
    server.create_function("talker", json!({})).await;
    let id = server.trigger("talker", json!({"steps": 5, "delay_ms": 100})).await;
    let path = format!("/api/executions/{id}/logs/stream");
    let messages = SseClient::open(&server, &path, None).await.read_to_end().await;

    // 5 steps, plus the engine's opening and closing system lines.
    let lines: Vec<&Message> = messages.iter().filter(|message| message.event == "log").collect();
    let seqs: Vec<u64> = lines.iter().map(|line| line.data["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<u64>>());
    assert!(lines.iter().all(|line| line.data["seq"] == line.id), "id: is the seq");
    let (first, last) = (&messages[0], &messages[messages.len() - 1]);
    assert_eq!((first.event.as_str(), first.data["id"].as_str()), ("status", Some(id.as_str())), "{first:?}");
    assert_eq!(
        (last.event.as_str(), last.data["status"].as_str(), last.id),
        ("status", Some("succeeded"), 7)
    );
    let statuses: Vec<&str> = messages
        .iter()
        .filter(|message| message.event == "status")
        .map(|message| message.data["status"].as_str().unwrap_or(""))
        .collect();
    let mut distinct = statuses.clone();
    distinct.dedup();
    assert_eq!(distinct, statuses, "a status is sent when it changes");

    let check_resume = |path: String, header: Option<u64>| {
        let server = &server;
        async move {
            let messages = SseClient::open(server, &path, header).await.read_to_end().await;
            let sent: Vec<(String, u64)> =
                messages.iter().map(|message| (message.event.clone(), message.id)).collect();
            let expected =
                [("log", 5), ("log", 6), ("log", 7), ("status", 7)].map(|(event, id)| (event.to_owned(), id));
            assert_eq!(sent, expected, "{path} {header:?}");
        }
    };
    check_resume(path.clone(), Some(4)).await;
    check_resume(format!("{path}?after=4"), None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_follows_a_running_execution_until_it_is_cancelled() {
    let server = server().await;
    server.create_function("sleeper", json!({})).await;
    let id = server.trigger("sleeper", json!({"hang": true})).await;
    server.wait_for(&id, "running", SETTLE).await;
    let mut stream = SseClient::open(&server, &format!("/api/executions/{id}/logs/stream"), None).await;
    let first = stream.next().await.expect("the current status");
    assert_eq!((first.event.as_str(), first.data["status"].as_str()), ("status", Some("running")));

    let answer = server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let rest = stream.read_to_end().await;
    let last = rest.last().expect("the terminal status");
    assert_eq!((last.event.as_str(), last.data["status"].as_str()), ("status", Some("cancelled")));
    assert!(rest[..rest.len() - 1].iter().all(|message| message.event == "log"), "{rest:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_requests_that_cannot_be_served_get_json_errors() {
    let server = server().await;
    let unknown = "/api/executions/0190b9c5-0000-7000-8000-000000000000/logs/stream";
    let answer = server.get(unknown).await;
    assert_eq!((answer.status, answer.code()), (404, "not-found"), "{:?}", answer.body);
    let request =
        server.client.get(format!("{}/api/events/stream", server.url)).header("Last-Event-ID", "yesterday");
    let answer = server.send(request).await;
    assert_eq!((answer.status, answer.code()), (400, "invalid-header"), "{:?}", answer.body);
    let answer = server.get("/api/events/stream?after=-1").await;
    assert_eq!((answer.status, answer.code()), (400, "invalid-query"), "{:?}", answer.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_cap_are_refused_until_one_closes() {
    let server = server_with(|config| config.max_sse_clients = 2).await;
    let first = SseClient::open(&server, "/api/events/stream", None).await;
    let second = SseClient::open(&server, "/api/events/stream", None).await;
    let answer = server.get("/api/events/stream").await;
    assert_eq!((answer.status, answer.code()), (503, "too-many-streams"), "{:?}", answer.body);

    // The place is given back as soon as the client goes: the server stops a stream at the client's end of the
    // connection, with no event or heartbeat needed to find it gone (the next heartbeat is 15 s away).
    drop(first);
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let url = format!("{}/api/events/stream", server.url);
        let response = server.client.get(url).send().await.expect("an answer");
        if response.status() == 200 {
            break;
        }
        assert!(started.elapsed() < GONE_WITHIN, "the departed client's place was not given back");
    }
    drop(second);
    server.stop().await;
}
