//! Sessions and diffs over HTTP: the diff route answers the diff a backend reported (the demo's, with `"diff":
//! true`) as `text/x-diff`, 204 without one and 404 for an unknown execution, and the status page shows it
//! highlighted.

mod common;

use std::time::Duration;

use common::{TestServer, server};
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
