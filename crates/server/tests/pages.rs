//! The pages end to end: every page answers HTML with the data it is about, user text comes back escaped, and the
//! trigger, cancel and retry forms work without JavaScript.

mod common;

use std::time::Duration;

use common::{Answer, Browser, TestServer, server};
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
