//! The OpenAPI document against the real server: it lists exactly the API routes of the route table, and real
//! answers (a function, an execution, the list pages, error bodies) satisfy the schemas it documents for them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Answer, TestServer, server};
use serde_json::{Value, json};

/// The document as the server serves it.
async fn document(server: &TestServer) -> Value {
    let answer = server.get("/api/openapi.json").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["openapi"], "3.1.0");
    answer.body
}

/// Checks that `answer` is one the document gives for `method` on `path`: its status is documented and its body
/// satisfies the schema documented for that status.
fn check(document: &Value, method: &str, path: &str, answer: &Answer) {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    let mut response = &operation["responses"][answer.status.to_string()];
    if let Some(target) = response["$ref"].as_str() {
        response = document.pointer(target.trim_start_matches('#')).expect("the reference resolves");
    }
    assert!(response.is_object(), "{method} {path} does not document {}: {:?}", answer.status, answer.body);
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        assert!(
            answer.body.as_str().is_some_and(str::is_empty),
            "{method} {path}: a body where none is documented"
        );
        return;
    };
    // The schema is checked where it stands in the document, so its `$ref`s to the components resolve.
    let mut root = schema.clone();
    root["components"] = document["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{method} {path} {}: {errors:#?}\nin {:#}", answer.status, answer.body);
}

#[tokio::test]
async fn the_document_lists_exactly_the_api_routes_of_the_table() {
    let server = server().await;
    let document = document(&server).await;
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routes: BTreeSet<(String, String)> = dashboard_server::routes::table()
        .into_iter()
        .filter(|route| route.is_api())
        .map(|route| (route.method.to_string(), route.path.to_owned()))
        .collect();
    assert_eq!(documented, routes);
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            assert!(
                operation["responses"].as_object().is_some_and(|answers| !answers.is_empty()),
                "{method} {path}"
            );
            assert!(operation["summary"].is_string(), "{method} {path} has no summary");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn real_answers_satisfy_the_documented_schemas() {
    let server = server().await;
    let document = document(&server).await;

    let created = server
        .post(
            "/api/functions",
            json!({"name": "greet", "backend": "demo", "timeout_secs": 60, "tags": ["demo"], "metadata": {"team": "a"},
                   "input_schema": {"type": "object", "properties": {"steps": {"type": "integer"}}}}),
        )
        .await;
    check(&document, "post", "/api/functions", &created);
    check(&document, "get", "/api/functions", &server.get("/api/functions").await);
    check(&document, "get", "/api/functions/{key}", &server.get("/api/functions/greet").await);
    let replaced = server
        .put("/api/functions/greet", json!({"name": "greet", "backend": "demo", "expected_version": 1}))
        .await;
    check(&document, "put", "/api/functions/{key}", &replaced);

    let input = json!({"steps": 2, "items": true});
    let triggered = server.post("/api/executions", json!({"function": "greet", "input": input})).await;
    assert_eq!(triggered.status, 202, "{:?}", triggered.body);
    check(&document, "post", "/api/executions", &triggered);
    let id = triggered.body["id"].as_str().expect("an id").to_owned();
    server.wait_for(&id, "succeeded", Duration::from_secs(10)).await;
    check(&document, "get", "/api/executions/{id}", &server.get(&format!("/api/executions/{id}")).await);
    check(&document, "get", "/api/executions", &server.get("/api/executions?limit=1").await);
    check(
        &document,
        "get",
        "/api/executions/{id}/logs",
        &server.get(&format!("/api/executions/{id}/logs")).await,
    );
    let items = server.get(&format!("/api/executions/{id}/items")).await;
    assert_eq!(items.body["items"].as_array().map(Vec::len), Some(3), "{:?}", items.body);
    check(&document, "get", "/api/executions/{id}/items", &items);
    check(&document, "get", "/api/events", &server.get("/api/events").await);
    check(&document, "get", "/api/backends", &server.get("/api/backends").await);
    check(&document, "get", "/api/instances", &server.get("/api/instances").await);
    check(&document, "get", "/healthz", &server.get("/healthz").await);
    let retried = server.post(&format!("/api/executions/{id}/retry"), json!({})).await;
    check(&document, "post", "/api/executions/{id}/retry", &retried);

    // Error bodies.
    let missing = server.get("/api/executions/0190b0c4-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status, 404);
    check(&document, "get", "/api/executions/{id}", &missing);
    let unknown_field = server.post("/api/executions", json!({"function": "greet", "colour": 1})).await;
    assert_eq!(unknown_field.status, 422);
    check(&document, "post", "/api/executions", &unknown_field);
    let malformed = server.post_raw("/api/functions", "application/json", "{").await;
    assert_eq!(malformed.status, 400);
    check(&document, "post", "/api/functions", &malformed);
    let bad_query = server.get("/api/executions?limit=0").await;
    assert_eq!(bad_query.status, 400);
    check(&document, "get", "/api/executions", &bad_query);
    let finished_cancel = server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
    assert_eq!(finished_cancel.status, 409);
    check(&document, "post", "/api/executions/{id}/cancel", &finished_cancel);
    let no_token = server.post(&format!("/api/executions/{id}/status"), json!({"status": "running"})).await;
    assert_eq!(no_token.status, 401);
    check(&document, "post", "/api/executions/{id}/status", &no_token);

    check(&document, "delete", "/api/functions/{key}", &server.delete("/api/functions/greet").await);
    server.stop().await;
}

/// The check above is only worth something if it refuses what breaks a schema.
#[tokio::test]
#[should_panic(expected = "get /api/executions/{id} 200")]
async fn the_check_refuses_an_answer_that_breaks_its_schema() {
    let server = server().await;
    let document = document(&server).await;
    let answer =
        Answer { status: 200, body: json!({"id": 5, "status": "done"}), headers: Default::default() };
    check(&document, "get", "/api/executions/{id}", &answer);
}

/// With auth on, the document itself needs a token, and the refusals are the documented ones.
#[tokio::test]
async fn with_auth_on_refusals_are_documented() {
    const READER: &str = "openapi-reader-token-0123456789abcdef";
    let server = common::server_with(|config| {
        config.auth_tokens = vec![dashboard_server::TokenSpec::from_secret(
            "viewer",
            READER,
            dashboard_backend_api::Scope::Read,
        )];
    })
    .await;
    let url = |path: &str| format!("{}{path}", server.url);
    let no_token = server.get("/api/openapi.json").await;
    assert_eq!(no_token.status, 401, "{:?}", no_token.body);
    let fetched = server.send(server.client.get(url("/api/openapi.json")).bearer_auth(READER)).await;
    assert_eq!(fetched.status, 200, "{:?}", fetched.body);
    let document = fetched.body;
    check(&document, "get", "/api/openapi.json", &no_token);
    check(&document, "get", "/healthz", &server.get("/healthz").await);
    let request = server.client.post(url("/api/functions")).bearer_auth(READER).json(&json!({"name": "x"}));
    let read_only = server.send(request).await;
    assert_eq!(read_only.status, 403, "{:?}", read_only.body);
    check(&document, "post", "/api/functions", &read_only);
    server.stop().await;
}

/// The approval routes' answers, and their refusals, are the documented ones.
#[tokio::test]
async fn approval_answers_satisfy_the_documented_schemas() {
    let server = server().await;
    let document = document(&server).await;
    server.create_function("careful", json!({"approval_policy": "ask"})).await;
    let id = server.trigger("careful", json!({"steps": 0, "approvals": 1})).await;
    server.wait_for(&id, "waiting", Duration::from_secs(10)).await;
    let pending = server.get("/api/approvals").await;
    check(&document, "get", "/api/approvals", &pending);
    let approval_id = pending.body["items"][0]["id"].as_str().expect("a pending approval").to_owned();
    let path = format!("/api/approvals/{approval_id}");
    check(&document, "get", "/api/approvals/{id}", &server.get(&path).await);
    let unknown_field = server.post(&path, json!({"decision": "approve", "colour": 1})).await;
    assert_eq!(unknown_field.status, 422);
    check(&document, "post", "/api/approvals/{id}", &unknown_field);
    let decided = server.post(&path, json!({"decision": "approve", "note": "ok"})).await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    check(&document, "post", "/api/approvals/{id}", &decided);
    let again = server.post(&path, json!({"decision": "decline"})).await;
    assert_eq!(again.status, 409);
    check(&document, "post", "/api/approvals/{id}", &again);
    server.wait_for(&id, "succeeded", Duration::from_secs(10)).await;
    check(
        &document,
        "get",
        "/api/approvals",
        &server.get(&format!("/api/approvals?status=all&execution={id}")).await,
    );
    let bad_query = server.get("/api/approvals?status=decided").await;
    assert_eq!(bad_query.status, 400);
    check(&document, "get", "/api/approvals", &bad_query);
    let missing = server.get("/api/approvals/0190b0c4-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status, 404);
    check(&document, "get", "/api/approvals/{id}", &missing);
    check(&document, "get", "/api/functions/{key}", &server.get("/api/functions/careful").await);
    server.stop().await;
}
