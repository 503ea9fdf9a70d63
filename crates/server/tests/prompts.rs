//! Prompt templates over the API: a function whose prompt reaches outside its input is refused when it is saved (422
//! naming what it reached for), and a prompt that would run away with time or memory is refused at trigger (422),
//! while the server goes on serving.

mod common;

use common::server;
use serde_json::json;

/// Creating a function with `prompt` answers 422 for the field `prompt`, its message naming `named`.
async fn check_refused_on_create(prompt: &str, named: &str) {
    let server = server().await;
    let answer =
        server.post("/api/functions", json!({"name": "leak", "backend": "demo", "prompt": prompt})).await;
    assert_eq!(answer.status, 422, "{prompt:?}: {:?}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(named), "{prompt:?}: {message:?} does not name {named:?}");
    assert_eq!(server.get("/api/functions/leak").await.status, 404, "{prompt:?} was stored");
    server.stop().await;
}

#[actix_web::test]
async fn a_prompt_that_reads_the_environment_is_refused_when_saved() {
    check_refused_on_create("{{ get_env(name=\"DASHBOARD_AUTH_TOKEN\") }}", "get_env").await;
    check_refused_on_create("{{ now() }}", "now").await;
    check_refused_on_create("{% set x = input.a ~ input.a %}{{ x }}", "set").await;
}

#[actix_web::test]
async fn an_update_to_a_prompt_that_reads_the_environment_is_refused() {
    let server = server().await;
    server.create_function("kept", json!({"prompt": "Hello {{ input.name }}"})).await;
    let answer = server
        .put(
            "/api/functions/kept",
            json!({"name": "kept", "backend": "demo", "prompt": "{{ get_env(name=\"HOME\") }}"}),
        )
        .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().unwrap_or_default().contains("get_env"),
        "{:?}",
        answer.body
    );
    assert_eq!(server.get("/api/functions/kept").await.body["prompt"], "Hello {{ input.name }}");
    server.stop().await;
}

#[actix_web::test]
async fn a_runaway_prompt_is_refused_at_trigger_and_the_server_serves_on() {
    let server = server().await;
    server
        .create_function("loops", json!({"prompt": "{% for i in range(end=input.times) %}{% endfor %}"}))
        .await;
    let answer = server.post("/api/executions", json!({"function": "loops", "input": {"times": 3e8}})).await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().unwrap_or_default().contains("100000"),
        "{:?}",
        answer.body
    );

    server
        .create_function(
            "long",
            json!({"prompt": "{% for i in range(end=input.n) %}{{ input.text }}{% endfor %}"}),
        )
        .await;
    let answer = server
        .post("/api/executions", json!({"function": "long", "input": {"n": 20000, "text": "x".repeat(100)}}))
        .await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().unwrap_or_default().contains("1048576 bytes"),
        "{:?}",
        answer.body
    );

    // Within the limits the same function runs.
    server.trigger("long", json!({"n": 3, "text": "ok"})).await;
    assert_eq!(server.get("/healthz").await.status, 200);
    server.stop().await;
}
