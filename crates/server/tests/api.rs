//! The JSON API end to end: the real server on 127.0.0.1:0, the memory store and the demo backend, over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{Answer, TestServer, server, server_with};
use serde_json::{Value, json};

/// Generous limits for things that take milliseconds, so a busy machine does not fail the test.
const SETTLE: Duration = Duration::from_secs(10);

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!((answer.status, answer.code()), (status, code), "{:?}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()),
        "{:?}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_goes_from_queued_through_running_to_succeeded_with_its_events_in_order() {
    let server = server().await;
    server.create_function("greeter", json!({"description": "says hello"})).await;
    let cursor = server.event_cursor().await;

    let answer = server
        .post("/api/executions", json!({"function": "greeter", "input": {"steps": 3, "delay_ms": 10}}))
        .await;
    assert_eq!((answer.status, answer.body["status"].as_str()), (202, Some("queued")), "{:?}", answer.body);
    let id = answer.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(answer.headers["location"], format!("/api/executions/{id}").as_str());

    let done = server.wait_for(&id, "succeeded", SETTLE).await;
    assert_eq!(done["output"]["steps"], 3);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string(), "{done}");
    assert!(done["usage"].is_object(), "{done}");

    let events = server.get(&format!("/api/events?after={cursor}")).await;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|event| event["execution_id"] == id.as_str())
        .map(|event| event["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["execution.queued", "execution.started", "execution.succeeded"]);
    let ids: Vec<u64> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_u64().unwrap_or(0))
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]) && ids[0] > cursor, "{ids:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_read_by_cursor_without_gaps() {
    let server = server().await;
    server.create_function("chatty", json!({})).await;
    let id = server.trigger("chatty", json!({"steps": 7, "delay_ms": 0})).await;
    server.wait_for(&id, "succeeded", SETTLE).await;

    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = server.get(&format!("/api/executions/{id}/logs?after={after}&limit=3")).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["items"].as_array().expect("items").clone();
        seqs.extend(items.iter().map(|line| line["seq"].as_u64().expect("seq")));
        after = page.body["next_after"].as_u64().expect("next_after");
        if page.body["finished"] == true {
            break;
        }
        assert_eq!(items.len(), 3, "a page short of the limit must be the last: {:?}", page.body);
    }
    // 7 steps, plus the engine's opening and closing system lines.
    assert_eq!(seqs, (1..=9).collect::<Vec<u64>>());
    let text = server.get(&format!("/api/executions/{id}/logs?format=text")).await;
    assert_eq!(text.status, 200);
    assert!(text.text().contains("[stdout] step 7 of 7"), "{}", text.text());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_download_is_streamed_whole_and_in_order() {
    let server = server().await;
    server.create_function("long-log", json!({})).await;
    let id = server.trigger("long-log", json!({"steps": 2500, "delay_ms": 0})).await;
    server.wait_for(&id, "succeeded", SETTLE).await;

    let answer =
        server.client.get(format!("{}/api/executions/{id}/logs?format=text", server.url)).send().await;
    let answer = answer.expect("the download answers");
    assert_eq!(answer.status(), 200);
    // Streamed in chunks, not built whole first: no length is known when the answer starts.
    assert!(answer.headers().get("content-length").is_none(), "{:?}", answer.headers());
    assert_eq!(answer.headers()["transfer-encoding"], "chunked");
    let text = answer.text().await.expect("the download is read");
    let steps: Vec<&str> = text.lines().filter(|line| line.contains("[stdout] step ")).collect();
    assert_eq!(steps.len(), 2500);
    for (index, line) in steps.iter().enumerate() {
        assert!(line.contains(&format!("step {} of 2500", index + 1)), "line {index}: {line}");
    }
    // The engine's opening and closing lines, around the steps.
    assert_eq!(text.lines().count(), 2502);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_hanging_execution_ends_it_within_a_second() {
    let server = server().await;
    server.create_function("hanger", json!({})).await;
    let id = server.trigger("hanger", json!({"steps": 1, "hang": true})).await;
    server.wait_for(&id, "running", SETTLE).await;

    let asked = Instant::now();
    let answer = server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let cancelled = server.wait_for(&id, "cancelled", Duration::from_secs(1)).await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(cancelled["error"], "cancelled");

    assert_error(
        &server.post(&format!("/api/executions/{id}/cancel"), json!({})).await,
        409,
        "execution-finished",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_execution_is_cancelled_before_it_starts() {
    let server = server().await;
    server.create_function("single", json!({"max_concurrency": 1})).await;
    let first = server.trigger("single", json!({"steps": 0, "hang": true})).await;
    server.wait_for(&first, "running", SETTLE).await;
    let second = server.trigger("single", json!({"steps": 0})).await;
    assert_eq!(server.get(&format!("/api/executions/{second}")).await.body["status"], "queued");

    let answer = server.post(&format!("/api/executions/{second}/cancel"), json!({})).await;
    assert_eq!(
        (answer.status, answer.body["status"].as_str()),
        (202, Some("cancelled")),
        "{:?}",
        answer.body
    );
    assert!(answer.body["started_at"].is_null());
    server.post(&format!("/api/executions/{first}/cancel"), json!({})).await;
    server.wait_for(&first, "cancelled", SETTLE).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_past_its_timeout_is_timed_out() {
    let server = server().await;
    server.create_function("slow", json!({"timeout_secs": 1})).await;
    let id = server.trigger("slow", json!({"steps": 0, "hang": true})).await;
    let timed_out = server.wait_for(&id, "timed_out", SETTLE).await;
    assert_eq!(timed_out["error"], "timed out after 1 s");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_failed_execution_makes_a_second_attempt() {
    let server = server().await;
    server.create_function("flaky", json!({})).await;
    let id = server.trigger("flaky", json!({"steps": 0, "fail": true})).await;
    let failed = server.wait_for(&id, "failed", SETTLE).await;
    assert!(failed["error"].as_str().is_some_and(|error| error.contains("failed as asked")), "{failed}");

    let retry = server.post(&format!("/api/executions/{id}/retry"), json!({})).await;
    assert_eq!(retry.status, 202, "{:?}", retry.body);
    assert_eq!(
        (retry.body["retry_of"].as_str(), retry.body["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    assert_ne!(retry.body["id"], id.as_str());
    server.wait_for(retry.body["id"].as_str().expect("id"), "failed", SETTLE).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_an_unfinished_execution_is_a_conflict() {
    let server = server().await;
    server.create_function("hang", json!({})).await;
    let id = server.trigger("hang", json!({"steps": 0, "hang": true})).await;
    assert_error(
        &server.post(&format!("/api/executions/{id}/retry"), json!({})).await,
        409,
        "execution-not-finished",
    );
    server.stop().await;
}

/// Sends `body` to `POST path` and checks the status and error code.
async fn check(server: &TestServer, path: &str, body: Value, expected: (u16, &str)) -> Answer {
    let answer = server.post(path, body.clone()).await;
    assert_error(&answer, expected.0, expected.1);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_naming_the_problem() {
    let server = server_with(|config| config.max_body_bytes = 4096).await;
    let schema = json!({"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}});
    server.create_function("strict", json!({"input_schema": schema})).await;

    let answer =
        check(&server, "/api/executions", json!({"function": "strict", "input": {}}), (422, "invalid-input"))
            .await;
    assert_eq!(answer.body["error"]["details"]["path"], "/url");
    let answer = check(
        &server,
        "/api/executions",
        json!({"function": "strict", "input": {"url": 5}}),
        (422, "invalid-input"),
    )
    .await;
    assert_eq!(answer.body["error"]["details"]["field"], "input.url");
    let answer = check(
        &server,
        "/api/executions",
        json!({"function": "strict", "colour": "red"}),
        (422, "unknown-field"),
    )
    .await;
    assert_eq!(answer.body["error"]["details"]["field"], "colour");
    let answer = check(
        &server,
        "/api/functions",
        json!({"name": "Bad Name", "backend": "demo"}),
        (422, "invalid-field"),
    )
    .await;
    assert_eq!(answer.body["error"]["details"]["field"], "name");
    let answer = check(
        &server,
        "/api/functions",
        json!({"name": "nob", "backend": "nowhere"}),
        (422, "invalid-field"),
    )
    .await;
    assert_eq!(answer.body["error"]["details"]["field"], "backend");
    let answer = check(&server, "/api/functions", json!({"backend": "demo"}), (422, "missing-field")).await;
    assert_eq!(answer.body["error"]["details"]["field"], "name");

    assert_error(
        &server.post_raw("/api/executions", "application/json", "{\"function\": ").await,
        400,
        "malformed-json",
    );
    assert_error(
        &server.post_raw("/api/executions", "text/plain", "{}").await,
        415,
        "unsupported-media-type",
    );
    let big = format!("{{\"function\": \"strict\", \"input\": {{\"url\": \"{}\"}}}}", "x".repeat(5000));
    assert_error(&server.post_raw("/api/executions", "application/json", big).await, 413, "body-too-large");

    check(&server, "/api/executions", json!({"function": "missing"}), (404, "not-found")).await;
    assert_error(&server.get("/api/executions/0197a0c2-0000-7000-8000-000000000000").await, 404, "not-found");
    assert_error(&server.get("/api/executions/not-an-id").await, 404, "not-found");
    assert_error(&server.get("/api/functions/missing").await, 404, "not-found");
    assert_error(&server.get("/api/nowhere").await, 404, "not-found");
    let not_allowed = server.delete("/api/executions").await;
    assert_error(&not_allowed, 405, "method-not-allowed");
    assert_eq!(not_allowed.headers["allow"], "GET, POST", "405 names the methods the path has");
    assert_error(&server.get("/api/executions?limit=0").await, 400, "invalid-query");
    assert_error(&server.get("/api/executions?status=done").await, 400, "invalid-query");
    assert_error(&server.get("/api/events?after=-1").await, 400, "invalid-query");
    check(&server, "/api/functions", json!({"name": "strict", "backend": "demo"}), (409, "duplicate-name"))
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_returns_the_first_execution() {
    let server = server().await;
    server.create_function("once", json!({})).await;
    let body = json!({"function": "once", "input": {"steps": 0}, "idempotency_key": "order-17"});
    let first = server.post("/api/executions", body.clone()).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let again = server.post("/api/executions", body).await;
    assert_eq!((again.status, &again.body["id"]), (200, &first.body["id"]));

    let header = server
        .send(
            server
                .client
                .post(format!("{}/api/executions", server.url))
                .header("Idempotency-Key", "order-17")
                .json(&json!({"function": "once", "input": {"steps": 0}})),
        )
        .await;
    assert_eq!((header.status, &header.body["id"]), (200, &first.body["id"]));

    let other = json!({"function": "once", "input": {"steps": 1}, "idempotency_key": "order-17"});
    let answer = check(&server, "/api/executions", other, (409, "idempotency-key-reused")).await;
    assert_eq!(answer.body["error"]["details"]["execution_id"], first.body["id"]);
    let listed = server.get("/api/executions?function=once").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_paged_newest_first_with_limit_and_before() {
    let server = server().await;
    server.create_function("paged", json!({})).await;
    let mut triggered = Vec::new();
    for n in 0..7 {
        triggered.push(server.trigger("paged", json!({"steps": 0, "n": n})).await);
    }
    let mut seen = Vec::new();
    let mut path = "/api/executions?function=paged&limit=3".to_owned();
    loop {
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        seen.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["id"].as_str().unwrap_or("").to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/executions?function=paged&limit=3&before={cursor}"),
            None => break,
        }
    }
    triggered.reverse();
    assert_eq!(seen, triggered);

    let found = server.get("/api/executions?q=%22N%22%3A3").await;
    assert_eq!(found.body["items"].as_array().map(Vec::len), Some(1), "{:?}", found.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_listed_replaced_with_a_version_check_and_deleted() {
    let server = server().await;
    server.create_function("zeta", json!({})).await;
    server.create_function("alpha", json!({})).await;
    let names: Vec<String> = server.get("/api/functions").await.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|f| f["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names, ["alpha", "hello-agent", "zeta"]);

    let replaced = server
        .put(
            "/api/functions/alpha",
            json!({"name": "alpha", "backend": "demo", "description": "v2", "expected_version": 1}),
        )
        .await;
    assert_eq!((replaced.status, replaced.body["version"].as_u64()), (200, Some(2)), "{:?}", replaced.body);
    let stale = server
        .put("/api/functions/alpha", json!({"name": "alpha", "backend": "demo", "expected_version": 1}))
        .await;
    assert_error(&stale, 409, "version-mismatch");
    let id = replaced.body["id"].as_str().expect("id");
    assert_eq!(server.get(&format!("/api/functions/{id}")).await.body["description"], "v2");

    let execution = server.trigger("alpha", json!({"steps": 0})).await;
    assert_eq!(server.delete("/api/functions/alpha").await.status, 204);
    assert_error(&server.get("/api/functions/alpha").await, 404, "not-found");
    assert_eq!(
        server.get(&format!("/api/executions/{execution}")).await.status,
        200,
        "executions outlive their function"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_backends_answer() {
    let server = server().await;
    let health = server.get("/healthz").await;
    assert_eq!((health.status, &health.body), (200, &json!({"status": "ok"})));
    let backends = server.get("/api/backends").await;
    assert_eq!(
        backends.body["items"],
        json!([{"name": "demo", "kind": "demo", "ready": true, "detail": "simulated agent, always available"}])
    );
    server.stop().await;
}
