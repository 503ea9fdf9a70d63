//! Transcript items over HTTP, from a backend that reports them (the demo backend with `"items": true`): the items
//! route lists them in order with their fields, an item reported twice under one id shows its newest state, and the
//! log stream carries `event: item` after the lines reported before each item, and every item again on a reconnect.

mod common;

use std::time::Duration;

use common::{TestServer, server};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Generous limits for things that take milliseconds, so a busy machine does not fail the test.
const SETTLE: Duration = Duration::from_secs(10);

/// One SSE message: its id, event name and data.
#[derive(Debug)]
struct Message {
    id: u64,
    event: String,
    data: Value,
}

/// Reads the log stream of `id` to its end (with `Last-Event-ID` when given).
async fn read_stream(server: &TestServer, id: &str, last_event_id: Option<u64>) -> Vec<Message> {
    let mut request = server.client.get(format!("{}/api/executions/{id}/logs/stream", server.url));
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last.to_string());
    }
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(std::str::from_utf8(&chunk.expect("the stream reads")).expect("UTF-8"));
        }
    };
    tokio::time::timeout(SETTLE, read).await.expect("the stream ends after the terminal status");
    text.split("\n\n").filter_map(parse_frame).collect()
}

/// A frame with data; comments (the heartbeat) and the empty tail give `None`.
fn parse_frame(frame: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, String::new(), None);
    for line in frame.lines() {
        match line.split_once(": ") {
            Some(("id", value)) => id = value.parse().ok(),
            Some(("event", value)) => event = value.to_owned(),
            Some(("data", value)) => data = serde_json::from_str(value).ok(),
            _ => {}
        }
    }
    Some(Message { id: id?, event, data: data? })
}

/// A function on the demo backend whose prompt becomes the first item.
async fn function(server: &TestServer) {
    server.create_function("narrator", json!({"prompt": "Tell me about {{ input.topic }}."})).await;
}

/// `id kind status`, the short form of an item the tests compare.
fn summary(item: &Value) -> String {
    format!("{} {} {}", item["id"], item["kind"], item["status"]).replace('"', "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_items_route_lists_the_transcript_in_order_with_its_fields() {
    let server = server().await;
    function(&server).await;
    let id =
        server.trigger("narrator", json!({"steps": 2, "delay_ms": 1, "items": true, "topic": "owls"})).await;
    server.wait_for(&id, "succeeded", SETTLE).await;

    let answer = server.get(&format!("/api/executions/{id}/items")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let items = answer.body["items"].as_array().expect("items").clone();
    let summaries: Vec<String> = items.iter().map(summary).collect();
    assert_eq!(
        summaries,
        [
            "prompt message completed",
            "step-1 message completed",
            "step-2 message completed",
            // Reported in progress, then completed under the same id: one item, in its newest state.
            "command command completed",
        ]
    );
    let seqs: Vec<u64> = items.iter().map(|item| item["seq"].as_u64().expect("a seq")).collect();
    assert_eq!((seqs, answer.body["next_after"].as_u64()), (vec![1, 2, 3, 4], Some(4)));
    assert_eq!(
        (items[0]["role"].as_str(), items[0]["text"].as_str()),
        (Some("user"), Some("Tell me about owls."))
    );
    assert_eq!(
        (items[1]["role"].as_str(), items[1]["text"].as_str()),
        (Some("agent"), Some("step 1 of 2: thinking about narrator"))
    );
    let command = &items[3];
    assert_eq!(
        (command["command"].as_str(), command["output"].as_str(), command["exit_code"].as_i64()),
        (Some("demo --summarize"), Some("2 steps done\n"), Some(0))
    );
    assert!(command["updated_at"].as_str() >= command["ts"].as_str(), "{command}");

    // Paging by cursor.
    let first = server.get(&format!("/api/executions/{id}/items?limit=3")).await;
    assert_eq!(first.body["next_after"], 3);
    let rest = server.get(&format!("/api/executions/{id}/items?after=3")).await;
    let rest: Vec<String> = rest.body["items"].as_array().expect("items").iter().map(summary).collect();
    assert_eq!(rest, ["command command completed"]);
    let empty = server.get(&format!("/api/executions/{id}/items?after=4")).await;
    assert_eq!((empty.body["items"].clone(), empty.body["next_after"].clone()), (json!([]), json!(4)));

    // Refusals.
    let unknown = server.get("/api/executions/0190b9c5-0000-7000-8000-000000000000/items").await;
    assert_eq!((unknown.status, unknown.code()), (404, "not-found"), "{:?}", unknown.body);
    let too_many = server.get(&format!("/api/executions/{id}/items?limit=5001")).await;
    assert_eq!((too_many.status, too_many.code()), (400, "invalid-query"), "{:?}", too_many.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_carries_items_after_their_lines_and_all_of_them_again_on_reconnect() {
    let server = server().await;
    function(&server).await;
    let input = json!({"steps": 3, "delay_ms": 150, "items": true, "topic": "owls"});
    let id = server.trigger("narrator", input).await;
    let messages = read_stream(&server, &id, None).await;

    // Each step's item comes after the step's line, and carries the seq of the last line sent before it.
    let position = |wanted: &dyn Fn(&Message) -> bool| {
        messages.iter().position(wanted).expect("the message is in the stream")
    };
    for step in 1..=3 {
        let text = format!("step {step} of 3: thinking about narrator");
        let line = position(&|message| message.event == "log" && message.data["message"] == text.as_str());
        let item =
            position(&|message| message.event == "item" && message.data["id"] == format!("step-{step}"));
        assert!(line < item, "step {step}: the line at {line}, the item at {item}");
        assert_eq!(messages[item].data["text"], text.as_str());
        let last_line_before = messages[..item]
            .iter()
            .filter(|message| message.event == "log")
            .map(|message| message.id)
            .next_back();
        assert_eq!(Some(messages[item].id), last_line_before, "an item's id is the line cursor");
    }
    // The command, reported twice under one id, is seen in progress and then completed.
    let command: Vec<&str> = messages
        .iter()
        .filter(|message| message.event == "item" && message.data["id"] == "command")
        .map(|message| message.data["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(command, ["in_progress", "completed"]);
    let last = messages.last().expect("messages");
    assert_eq!((last.event.as_str(), last.data["status"].as_str()), ("status", Some("succeeded")));

    // A reconnect after line 2: the lines after it, then every item in its newest state, then the status.
    let resumed = read_stream(&server, &id, Some(2)).await;
    let kinds: Vec<&str> = resumed.iter().map(|message| message.event.as_str()).collect();
    let n_lines = kinds.iter().filter(|kind| **kind == "log").count();
    let first_item = kinds.iter().position(|kind| *kind == "item").expect("items");
    assert!(kinds[..first_item].iter().all(|kind| *kind == "log" || *kind == "status"), "{kinds:?}");
    assert_eq!(resumed.iter().filter(|message| message.event == "log").map(|m| m.id).next(), Some(3));
    let items: Vec<String> = resumed
        .iter()
        .filter(|message| message.event == "item")
        .map(|message| summary(&message.data))
        .collect();
    assert_eq!(
        items,
        [
            "prompt message completed",
            "step-1 message completed",
            "step-2 message completed",
            "step-3 message completed",
            "command command completed",
        ]
    );
    assert!(n_lines > 0 && kinds.last() == Some(&"status"), "{kinds:?}");
    server.stop().await;
}
