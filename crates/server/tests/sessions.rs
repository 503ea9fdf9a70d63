//! Sessions and diffs over HTTP: a demo execution continued through `POST /api/executions/{id}/continue` is the next
//! turn of its session (and says so in its log), refused while it runs or without a prompt; the status page lists
//! the turns with a prompt box that works without JavaScript; the diff route answers the diff a backend reported (the
//! demo's, with `"diff": true`) as `text/x-diff`, 204 without one and 404 for an unknown execution, and the status
//! page shows it highlighted.

mod common;

use std::time::Duration;

use common::{Browser, TestServer, server};
use serde_json::json;

/// Generous limits for things that take milliseconds, so a busy machine does not fail the test.
const SETTLE: Duration = Duration::from_secs(10);

/// A function on the demo backend with a prompt.
async fn function(server: &TestServer) {
    server.create_function("notes", json!({"prompt": "Note {{ input.topic }}."})).await;
}

/// Triggers the demo and waits until it has succeeded; its id.
async fn run(server: &TestServer, input: serde_json::Value) -> String {
    let id = server.trigger("notes", input).await;
    server.wait_for(&id, "succeeded", SETTLE).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diff_route_answers_the_diff_a_backend_reported() {
    let server = server().await;
    function(&server).await;
    let id = run(&server, json!({"steps": 2, "delay_ms": 1, "diff": true, "topic": "owls"})).await;

    let answer = server.get(&format!("/api/executions/{id}/diff")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/x-diff; charset=utf-8");
    assert_eq!(
        answer.text(),
        "diff --git a/NOTES.md b/NOTES.md\n--- a/NOTES.md\n+++ b/NOTES.md\n@@ -1 +1,3 @@\n # Notes on notes\n\
         +step 1 of 2 done\n+step 2 of 2 done\n"
    );

    let plain = run(&server, json!({"steps": 1, "delay_ms": 1, "topic": "owls"})).await;
    let answer = server.get(&format!("/api/executions/{plain}/diff")).await;
    assert_eq!((answer.status, answer.text()), (204, ""), "a run without a diff");
    let unknown = "01890a5d-ac96-774b-bcce-b302099a8057";
    let answer = server.get(&format!("/api/executions/{unknown}/diff")).await;
    assert_eq!((answer.status, answer.code()), (404, "not-found"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_diff_highlighted_when_there_is_one() {
    let server = server().await;
    function(&server).await;
    let id = run(&server, json!({"steps": 1, "delay_ms": 1, "diff": true, "topic": "owls"})).await;
    let page = server.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<h2>Diff</h2>"), "{html}");
    assert!(html.contains(r#"<div class="diff-line diff-add">+step 1 of 1 done</div>"#), "{html}");
    assert!(html.contains(r#"<div class="diff-line diff-hunk">@@ -1 +1,2 @@</div>"#), "{html}");
    assert!(html.contains(&format!(r#"href="/api/executions/{id}/diff""#)), "a download link");

    let plain = run(&server, json!({"steps": 1, "delay_ms": 1, "topic": "owls"})).await;
    let page = server.get(&format!("/executions/{plain}")).await;
    assert!(!page.text().contains("<h2>Diff</h2>"), "no diff, no section");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_demo_execution_is_the_next_turn_of_its_session() {
    let server = server().await;
    function(&server).await;
    let first = run(&server, json!({"steps": 1, "delay_ms": 1, "topic": "owls"})).await;
    let stored = server.get(&format!("/api/executions/{first}")).await;
    let session_id = format!("demo-{first}");
    assert_eq!(stored.body["session_id"], session_id.as_str(), "the demo invents a session");
    assert_eq!(stored.body["continues"], serde_json::Value::Null);

    let answer =
        server.post(&format!("/api/executions/{first}/continue"), json!({"prompt": "Now the bats."})).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let second = answer.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(answer.headers["location"], format!("/api/executions/{second}").as_str());
    let body = &answer.body;
    assert_eq!(
        (&body["continues"], &body["session_id"], &body["attempt"], &body["prompt"], &body["function"]),
        (&json!(first), &json!(session_id), &json!(1), &json!("Now the bats."), &json!("notes"))
    );
    server.wait_for(&second, "succeeded", SETTLE).await;
    let log = server.get(&format!("/api/executions/{second}/logs?format=text")).await;
    assert!(log.text().contains(&format!("continuing session {session_id}")), "{}", log.text());
    assert!(log.text().contains("prompt: Now the bats."), "the new prompt is the run's: {}", log.text());
    let turns = server.get(&format!("/api/executions?session={session_id}")).await;
    let ids: Vec<&str> =
        turns.body["items"].as_array().expect("items").iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "the session's turns, newest first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_is_refused_while_the_turn_runs_and_without_a_prompt() {
    let server = server().await;
    function(&server).await;
    let running = server.trigger("notes", json!({"steps": 0, "hang": true, "topic": "owls"})).await;
    server.wait_for(&running, "running", SETTLE).await;
    let answer =
        server.post(&format!("/api/executions/{running}/continue"), json!({"prompt": "More."})).await;
    assert_eq!((answer.status, answer.code()), (409, "execution-not-finished"));
    server.post(&format!("/api/executions/{running}/cancel"), json!({})).await;
    server.wait_for(&running, "cancelled", SETTLE).await;

    let answer = server.post(&format!("/api/executions/{running}/continue"), json!({})).await;
    assert_eq!((answer.status, answer.code()), (422, "missing-field"));
    let answer = server.post(&format!("/api/executions/{running}/continue"), json!({"prompt": " "})).await;
    assert_eq!((answer.status, answer.code()), (422, "invalid-field"));
    let unknown = "01890a5d-ac96-774b-bcce-b302099a8057";
    let answer =
        server.post(&format!("/api/executions/{unknown}/continue"), json!({"prompt": "More."})).await;
    assert_eq!((answer.status, answer.code()), (404, "not-found"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_lists_the_turns_and_its_prompt_box_continues_without_javascript() {
    let server = server().await;
    function(&server).await;
    let first = run(&server, json!({"steps": 1, "delay_ms": 1, "diff": true, "topic": "owls"})).await;
    let page = server.get(&format!("/executions/{first}")).await;
    assert!(page.text().contains(&format!(r#"action="/executions/{first}/continue""#)), "{}", page.text());

    let mut browser = Browser::open(&server.url, None).await;
    let answer =
        browser.post_form(&format!("/executions/{first}/continue"), &[("prompt", "Now <b>bats</b>.")]).await;
    assert_eq!(answer.status, 303);
    let second = answer.location().strip_prefix("/executions/").expect("the new turn's page").to_owned();
    server.wait_for(&second, "succeeded", SETTLE).await;

    let html = server.get(&format!("/executions/{second}")).await.text().to_owned();
    let first_link = html.find(&format!(r#"href="/executions/{first}""#)).expect("a link to the first turn");
    let second_link =
        html.find(&format!(r#"href="/executions/{second}""#)).expect("a link to the second turn");
    assert!(first_link < second_link, "the turns in order");
    assert!(html.contains("Now &lt;b&gt;bats&lt;&#x2F;b&gt;."), "the prompt, escaped: {html}");
    assert!(
        html.contains(&format!(r#"action="/executions/{second}/continue""#)),
        "the box under the last turn"
    );
    assert!(!html.contains(&format!(r#"action="/executions/{first}/continue""#)), "and only there");

    let first_page = server.get(&format!("/executions/{first}")).await.text().to_owned();
    assert!(
        first_page.contains(&format!(r#"href="/executions/{second}""#)),
        "a turn's page lists later turns too"
    );
    assert!(first_page.contains("<h2>Diff</h2>"), "and the first turn's diff");
    let answer = browser.post_form(&format!("/executions/{second}/continue"), &[("prompt", "")]).await;
    assert_eq!(answer.status, 422, "an empty prompt shows the page again with why");
    server.stop().await;
}
