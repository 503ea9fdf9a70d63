//! The pages end to end: every page answers HTML with the data it is about, user text comes back escaped, the
//! trigger, cancel and retry forms work without JavaScript, and the status page shows the transcript (each kind of
//! item, paged) with the log one link away.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Answer, Browser, TestServer, server};
use dashboard_backend_api::Principal;
use dashboard_backends::DemoBackend;
use dashboard_core::{
    ExecutionId, FileChange, FileChangeKind, FunctionSpec, ItemBody, ItemStatus, MessageRole, NewItem,
    PlanEntry,
};
use dashboard_engine::Dashboard;
use dashboard_store::{DashboardStore, MemoryStore};
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;&#x2F;script&gt;";

/// Posts a form as a browser that opened the dashboard; returns the status and the `Location`.
async fn post_form(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let answer = post_form_answer(server, path, fields).await;
    (answer.status, answer.location().to_owned())
}

/// Posts a form as a browser that opened the dashboard; returns the whole answer.
async fn post_form_answer(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> Answer {
    let mut browser = Browser::open(&server.url, None).await;
    browser.post_form(path, fields).await
}

/// Gets a page and checks it is a 200 HTML page containing every one of `expected`.
async fn check_page(server: &TestServer, path: &str, expected: &[&str]) -> String {
    let response =
        server.client.get(format!("{}{path}", server.url)).send().await.expect("the server answers");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let content_type = response.headers()["content-type"].to_str().unwrap_or("").to_owned();
    assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
    let html = response.text().await.expect("a body");
    for text in expected {
        assert!(html.contains(text), "{path} lacks {text:?}");
    }
    assert!(!html.contains(HOSTILE), "{path} shows user text unescaped");
    html
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_its_data_and_escapes_user_text() {
    let server = server().await;
    server.create_function("escaper", json!({"description": HOSTILE, "tags": [HOSTILE]})).await;
    let id = server.trigger("escaper", json!({"steps": 1, "delay_ms": 0, "note": HOSTILE})).await;
    server.wait_for(&id, "succeeded", Duration::from_secs(10)).await;

    check_page(&server, "/", &["escaper", &id, "succeeded"]).await;
    check_page(&server, "/functions", &["escaper", "hello-agent", ESCAPED]).await;
    check_page(&server, "/functions/new", &["demo", "name=\"name\""]).await;
    check_page(&server, "/functions/escaper", &[ESCAPED, "demo", "name=\"input\""]).await;
    check_page(&server, "/functions/escaper/edit", &[ESCAPED]).await;
    check_page(&server, "/executions", &[&id, "escaper"]).await;
    check_page(&server, "/executions?status=succeeded&function=escaper", &[&id]).await;
    check_page(&server, &format!("/executions/{id}"), &["escaper", "succeeded", "step 1 of 1"]).await;
    check_page(&server, "/activity", &["escaper", "succeeded"]).await;
    check_page(&server, "/backends", &["demo", "simulated agent"]).await;

    let missing = server.get("/executions/0197a0c2-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<html"), "a page 404 is an HTML page");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_with_markup_is_shown_as_text() {
    let server = server().await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    server
        .create_function("echo-prompt", json!({"prompt": "hello {{ input.name }}", "input_schema": schema}))
        .await;
    let id = server.trigger("echo-prompt", json!({"name": "<img src=x onerror=alert(1)>"})).await;
    server.wait_for(&id, "succeeded", Duration::from_secs(10)).await;
    let html =
        check_page(&server, &format!("/executions/{id}"), &["&lt;img src=x onerror=alert(1)&gt;"]).await;
    assert!(!html.contains("<img src=x"), "the log line was rendered as markup");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_cancel_and_retry_forms_work_without_javascript() {
    let server = server().await;
    let (status, location) = post_form(
        &server,
        "/functions/hello-agent/trigger",
        &[("input", r#"{"steps": 0, "hang": true}"#), ("backend", "demo"), ("idempotency_key", "")],
    )
    .await;
    assert_eq!(status, 303);
    let id = location.strip_prefix("/executions/").expect("redirected to the status page").to_owned();
    server.wait_for(&id, "running", Duration::from_secs(10)).await;

    let (status, location) = post_form(&server, &format!("/executions/{id}/cancel"), &[]).await;
    assert_eq!((status, location.as_str()), (303, format!("/executions/{id}").as_str()));
    server.wait_for(&id, "cancelled", Duration::from_secs(10)).await;

    let (status, location) = post_form(&server, &format!("/executions/{id}/retry"), &[]).await;
    assert_eq!(status, 303);
    let retry = server.get(&format!("/api{location}")).await;
    assert_eq!(
        (retry.body["retry_of"].as_str(), retry.body["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    server.post(&format!("/api{location}/cancel"), json!({})).await;

    let (status, _) =
        post_form(&server, "/functions/hello-agent/trigger", &[("input", "{not json"), ("backend", "demo")])
            .await;
    assert_eq!(status, 422, "bad JSON re-renders the form");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_trigger_form_types_its_fields_and_names_the_bad_ones() {
    let server = server().await;
    check_page(&server, "/functions/hello-agent", &["name=\"input.steps\"", "type=\"checkbox\"", "Raw JSON"])
        .await;
    let path = "/functions/hello-agent/trigger";
    let bad = [("mode", "fields"), ("input.name", "Ada"), ("input.steps", "two"), ("backend", "demo")];
    assert_eq!(post_form(&server, path, &bad).await.0, 422);
    let html = post_form_answer(&server, path, &bad).await;
    assert!(html.text().contains("&quot;two&quot; is not a whole number"), "no message beside the field");

    let good = [("mode", "fields"), ("input.name", "Ada"), ("input.steps", "0"), ("input.delay_ms", "0")];
    let (status, location) = post_form(&server, path, &good).await;
    assert_eq!(status, 303);
    let execution = server.get(&format!("/api{location}")).await;
    assert_eq!(
        execution.body["input"],
        json!({"name": "Ada", "steps": 0, "delay_ms": 0, "fail": false, "hang": false})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_shows_a_bad_schema_beside_its_field() {
    let server = server().await;
    let fields = [("name", "x"), ("backend", "demo"), ("input_schema", "{not json")];
    assert_eq!(post_form(&server, "/functions", &fields).await.0, 422);
    let html = post_form_answer(&server, "/functions", &fields).await;
    assert!(html.text().contains("id=\"f-schema-error\" data-json-error>input_schema: is not valid JSON"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_cancel_and_retry_act_on_the_fitting_executions_only() {
    let server = server().await;
    let hanging = [
        server.trigger("hello-agent", json!({"steps": 0, "hang": true})).await,
        server.trigger("hello-agent", json!({"steps": 0, "hang": true})).await,
    ];
    let done = server.trigger("hello-agent", json!({"steps": 0})).await;
    server.wait_for(&done, "succeeded", Duration::from_secs(10)).await;
    for id in &hanging {
        server.wait_for(id, "running", Duration::from_secs(10)).await;
    }
    // Running rows carry their start, so that the page can keep their duration ticking; finished ones do not.
    let list = check_page(&server, "/executions", &["data-running-since=\""]).await;
    assert_eq!(list.matches("data-running-since=").count(), 2, "only the two running rows tick");
    let ids = [hanging[0].as_str(), hanging[1].as_str(), done.as_str()];
    let fields = |action| {
        let mut fields = vec![("action", action), ("back", "/executions?status=running")];
        fields.extend(ids.iter().map(|id| ("ids", *id)));
        fields
    };
    let (status, location) = post_form(&server, "/executions/bulk", &fields("cancel")).await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/executions?status=running&bulk=cancel&done=2&skipped=1&failed=0")
    );
    for id in &hanging {
        server.wait_for(id, "cancelled", Duration::from_secs(10)).await;
    }
    check_page(&server, &location, &["Cancelled 2 executions; skipped 1 that cannot be cancelled"]).await;

    let (_, location) = post_form(&server, "/executions/bulk", &fields("retry")).await;
    assert!(location.ends_with("bulk=retry&done=2&skipped=1&failed=0"), "{location}");
    let retries = server.get("/api/executions?limit=10").await.body["items"].clone();
    let n_retries =
        retries.as_array().map_or(0, |items| items.iter().filter(|item| item["attempt"] == 2).count());
    assert_eq!(n_retries, 2);
    for item in retries.as_array().into_iter().flatten().filter(|item| item["attempt"] == 2) {
        if let Some(id) = item["id"].as_str() {
            server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
        }
    }
    server.stop().await;
}

/// A server over a memory store that the test writes transcript items into directly, as a run of a backend that
/// reports items would, and one finished execution to put them on.
struct TranscriptServer {
    url: String,
    client: reqwest::Client,
    store: Arc<MemoryStore>,
    execution_id: ExecutionId,
    handle: actix_web::dev::ServerHandle,
}

impl TranscriptServer {
    async fn start() -> Self {
        let store = Arc::new(MemoryStore::default());
        let dashboard = Dashboard::builder()
            .store(store.clone() as Arc<dyn DashboardStore>)
            .backend("demo", DemoBackend)
            .build();
        dashboard
            .create_function(&Principal::anonymous(), FunctionSpec::new("agent", "demo"))
            .await
            .expect("a function");
        let (url, handle) = common::mount(dashboard, None);
        let client = common::client();
        let trigger = json!({"function": "agent", "input": {"steps": 0, "delay_ms": 0}});
        let triggered = common::answer(client.post(format!("{url}/api/executions")).json(&trigger)).await;
        assert_eq!(triggered.status, 202, "{}", triggered.body);
        let id = triggered.body["id"].as_str().expect("an id").to_owned();
        common::poll_status(
            |path| common::answer(client.get(format!("{url}{path}"))),
            &id,
            "succeeded",
            Duration::from_secs(10),
        )
        .await;
        let execution_id = id.parse().expect("an execution id");
        Self { url, client, store, execution_id, handle }
    }

    async fn add(&self, items: Vec<NewItem>) {
        self.store.upsert_items(self.execution_id, items).await.expect("the memory store takes items");
    }

    /// The status page with `query` (e.g. `?view=log`): 200 and HTML, with no user text unescaped.
    async fn page(&self, query: &str) -> String {
        let path = format!("/executions/{}{query}", self.execution_id);
        let answer = common::answer(self.client.get(format!("{}{path}", self.url))).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let html = answer.text().to_owned();
        assert!(!html.contains(HOSTILE), "{path} shows user text unescaped");
        html
    }

    async fn stop(self) {
        // The client first, so that no idle keep-alive connection holds up the graceful stop.
        drop(self.client);
        common::stop_mounted(self.handle).await;
    }
}

fn item(id: &str, status: ItemStatus, body: ItemBody) -> NewItem {
    NewItem::new(id, status, body).expect("a valid item")
}

/// The transcript's item ids on a page, in order.
fn item_ids(html: &str) -> Vec<String> {
    html.split("data-item-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn the_transcript_shows_every_kind_of_item_escaped_with_the_log_one_link_away() {
    let server = TranscriptServer::start().await;
    let diff =
        "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,2 +1,2 @@\n fn keep() {}\n-fn old() {}\n+fn new() {}\n";
    server
        .add(vec![
            item(
                "m1",
                ItemStatus::Completed,
                ItemBody::Message { role: MessageRole::User, text: "Fix it".into() },
            ),
            item("r1", ItemStatus::Completed, ItemBody::Reasoning { text: "Thinking about the bug".into() }),
            item(
                "c1",
                ItemStatus::Failed,
                ItemBody::Command {
                    command: "cargo test".into(),
                    cwd: Some("/work".into()),
                    output: format!("error: {HOSTILE}"),
                    exit_code: Some(101),
                },
            ),
            item(
                "f1",
                ItemStatus::Completed,
                ItemBody::FileChange {
                    changes: vec![
                        FileChange {
                            path: "src/lib.rs".into(),
                            kind: FileChangeKind::Update,
                            diff: Some(diff.into()),
                        },
                        FileChange {
                            path: "NEW.md".into(),
                            kind: FileChangeKind::Add,
                            diff: Some("hello\n".into()),
                        },
                    ],
                },
            ),
            item(
                "t1",
                ItemStatus::Failed,
                ItemBody::ToolCall {
                    server: Some("files".into()),
                    tool: "read".into(),
                    arguments: json!({"path": HOSTILE}),
                    result: None,
                    error: Some("no such file".into()),
                },
            ),
            item("w1", ItemStatus::Completed, ItemBody::WebSearch { query: "rust diff".into() }),
            item(
                "p1",
                ItemStatus::InProgress,
                ItemBody::Plan {
                    entries: vec![
                        PlanEntry { text: "read the code".into(), done: true },
                        PlanEntry { text: "fix the bug".into(), done: false },
                    ],
                },
            ),
            item("e1", ItemStatus::Completed, ItemBody::Error { message: "stream disconnected".into() }),
            item(
                HOSTILE,
                ItemStatus::Completed,
                ItemBody::Message { role: MessageRole::Agent, text: format!("Done: {HOSTILE}") },
            ),
        ])
        .await;

    let html = server.page("").await;
    assert_eq!(item_ids(&html)[..8], ["m1", "r1", "c1", "f1", "t1", "w1", "p1", "e1"], "in seq order");
    for expected in [
        // The views are links; the transcript is the default, so the log is not rendered.
        "<a href=\"?view=transcript\" aria-current=\"page\">Transcript</a>",
        "<a href=\"?view=log\">Log</a>",
        // Messages, the agent's and the user's told apart, and the hostile text escaped wherever it is.
        "item-message item-completed item-user",
        &format!("Done: {ESCAPED}"),
        &format!("data-item-id=\"{ESCAPED}\""),
        "item-reasoning",
        // A command folded, its exit code in the summary and its output inside.
        "<details class=\"item-fold\"><summary class=\"item-head\"><span class=\"item-label\">Command</span><code class=\"item-summary\">cargo test</code><span class=\"item-outcome outcome-failed\">exit 101</span>",
        &format!("<pre class=\"item-output\">error: {ESCAPED}</pre>"),
        "in <code>&#x2F;work</code>",
        // Each file with its diff, every line classed.
        "<code class=\"file-path\">src&#x2F;lib.rs</code>",
        "<div class=\"diff-line diff-hunk\">@@ -1,2 +1,2 @@</div>",
        "<div class=\"diff-line diff-del\">-fn old() {}</div>",
        "<div class=\"diff-line diff-add\">+fn new() {}</div>",
        "<div class=\"diff-line diff-ctx\"> fn keep() {}</div>",
        "<div class=\"diff-line diff-add\">hello</div>",
        "<span class=\"diff-stat-add\">+1</span>",
        // A tool call with its arguments as JSON and its error.
        "<code class=\"item-summary\">files &#x2F; read</code>",
        &format!("&quot;path&quot;: &quot;{ESCAPED}&quot;"),
        "no such file",
        "item-web_search",
        "rust diff",
        // A plan with its done marks, still in progress.
        "1 of 2 done",
        "<li class=\"plan-entry plan-done\"><span class=\"plan-mark\">✓</span><span class=\"plan-text\">read the code</span>",
        "<span class=\"item-outcome outcome-running\">running</span>",
        // An error, shown as a warning.
        "item-error item-completed",
        "stream disconnected",
    ] {
        assert!(html.contains(expected), "the transcript lacks {expected:?}");
    }
    assert!(!html.contains("data-log "), "the log is one link away, not on the transcript view");

    let log = server.page("?view=log").await;
    assert!(log.contains("<a href=\"?view=log\" aria-current=\"page\">Log</a>"));
    assert!(log.contains("data-log ") && !log.contains("data-transcript"), "the log view shows the log only");
    server.stop().await;
}

#[actix_web::test]
async fn a_long_transcript_is_paged_by_links_and_a_run_without_items_shows_its_log() {
    let server = TranscriptServer::start().await;
    let html = server.page("").await;
    // A run that reported no items: its log as before transcripts, no links to an empty view.
    assert!(item_ids(&html).is_empty(), "no item is stored yet");
    assert!(html.contains("data-log ") && !html.contains("data-view-tabs"), "no items: the log");

    let messages = (0..250)
        .map(|n| {
            let text = format!("message {n}");
            item(
                &format!("m{n}"),
                ItemStatus::Completed,
                ItemBody::Message { role: MessageRole::Agent, text },
            )
        })
        .collect();
    server.add(messages).await;
    let all = server.store.list_items(server.execution_id, 0, 1000).await.expect("the memory store");
    let first = server.page("").await;
    let ids = item_ids(&first);
    assert_eq!(ids.len(), 200, "one page of items");
    let last_seq = all[199].seq;
    assert!(
        first.contains(&format!(
            "<a href=\"?view=transcript&amp;items_after={last_seq}\" data-items-more-link>"
        )),
        "a link to the next page"
    );
    let second = server.page(&format!("?items_after={last_seq}")).await;
    let ids: Vec<String> = item_ids(&second);
    let expected: Vec<String> = all[200..].iter().map(|item| item.id.clone()).collect();
    assert_eq!(ids, expected, "the rest, in order");
    assert!(second.contains("data-items-more hidden"), "the last page has no more");
    assert!(second.contains("<a href=\"?view=transcript\">back to the first</a>"));
    server.stop().await;
}

#[actix_web::test]
async fn long_texts_are_shown_cut_with_a_link_to_the_whole_item() {
    let server = TranscriptServer::start().await;
    let output = format!("the start{}the end", "x".repeat(200 * 1024));
    let command = ItemBody::Command { command: "yes".into(), cwd: None, output, exit_code: Some(0) };
    let short = ItemBody::Message { role: MessageRole::Agent, text: "short".into() };
    server
        .add(vec![item("long", ItemStatus::Completed, command), item("short", ItemStatus::Completed, short)])
        .await;
    let html = server.page("").await;
    assert!(html.contains("the end") && !html.contains("the start"), "the output's end is shown");
    assert!(html.len() < 150 * 1024, "the page holds {} bytes", html.len());
    let link = format!("/api/executions/{}/items?after=0&amp;limit=1", server.execution_id);
    assert_eq!(html.matches(&link).count(), 1, "one link, to the cut item");
    assert_eq!(html.matches("Shown cut").count(), 1);
    server.stop().await;
}
