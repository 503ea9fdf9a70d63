//! Inbound webhooks over HTTP: `POST /hooks/{function}` with a GitHub signature, a Standard Webhooks signature or a
//! bearer token triggers the function (202, the input mapped from the payload), a delivery that does not verify is
//! 401 and creates nothing, a repeated delivery id answers 200 with the first execution, and a function without a
//! webhook or a body that is not JSON are refused saying so.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Answer, TestServer, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::{TokenSpec, config_file};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const GITHUB_SECRET: &str = "github-secret-of-the-test";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN_SECRET: &str = "token-secret-of-the-test";

const CONFIG: &str = r#"
[[backends]]
name = "demo"
kind = "demo"

[[functions]]
name = "triage"
backend = "demo"
input_schema = { type = "object", required = ["title", "url", "author"], properties = { title = { type = "string" }, body = { type = ["string", "null"] }, url = { type = "string" }, author = { type = "string" } } }

[functions.webhook]
secret_env = "TRIAGE_SECRET"
verify = "github"
input = { title = "/issue/title", body = "/issue/body", url = "/issue/html_url", author = "/issue/user/login" }

[[functions]]
name = "signed"
backend = "demo"

[functions.webhook]
secret_env = "SIGNED_SECRET"
verify = "standard-webhooks"

[[functions]]
name = "tokened"
backend = "demo"

[functions.webhook]
secret_env = "TOKENED_SECRET"
verify = "token"

[[functions]]
name = "plain"
backend = "demo"
"#;

/// A server with the functions of [`CONFIG`], their secrets given as the environment; `auth` turns auth on.
async fn hooked_server(auth: bool) -> TestServer {
    let path = std::env::temp_dir().join(format!(
        "agent-dashboard-webhooks-{}-{}.toml",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, CONFIG).expect("the config file");
    let env = |name: &str| match name {
        "TRIAGE_SECRET" => Some(GITHUB_SECRET.to_owned()),
        "SIGNED_SECRET" => Some(STANDARD_SECRET.to_owned()),
        "TOKENED_SECRET" => Some(TOKEN_SECRET.to_owned()),
        _ => None,
    };
    let file = config_file::load_with_env(&path, &env).expect("a valid config file");
    let server = server_with(|config| {
        config.config_file = Some(path.clone());
        config.file = Some(file);
        if auth {
            config.auth_tokens = vec![TokenSpec::from_secret("root", "root-token-0123456789", Scope::Admin)];
        }
    })
    .await;
    let _ = std::fs::remove_file(&path);
    server
}

fn rand_suffix() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or(0).to_string()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let hex: String = hmac(secret.as_bytes(), &[body]).iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// GitHub's `issues` event, cut to what the test maps (and a field it does not).
fn issue_opened() -> Vec<u8> {
    let payload = json!({
        "action": "opened",
        "issue": {
            "title": "The dashboard forgets my filter",
            "body": "Steps: open /executions, filter, reload.",
            "html_url": "https://github.com/acme/app/issues/7",
            "user": {"login": "ana"},
            "number": 7,
        },
        "repository": {"full_name": "acme/app"},
    });
    serde_json::to_vec(&payload).expect("JSON")
}

async fn deliver(server: &TestServer, function: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut request = server
        .client
        .post(format!("{}/hooks/{function}", server.url))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    server.send(request).await
}

async fn github(server: &TestServer, delivery: &str, signature: &str, body: &[u8]) -> Answer {
    let headers =
        [("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", delivery), ("X-Hub-Signature-256", signature)];
    deliver(server, "triage", &headers, body).await
}

async fn standard(server: &TestServer, id: &str, timestamp: i64, body: &[u8]) -> Answer {
    let key = STANDARD.decode(STANDARD_SECRET.trim_start_matches("whsec_")).expect("base64");
    let timestamp = timestamp.to_string();
    let signature = STANDARD.encode(hmac(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]));
    let signature = format!("v1,{signature}");
    let headers = [("webhook-id", id), ("webhook-timestamp", &timestamp), ("webhook-signature", &signature)];
    deliver(server, "signed", &headers, body).await
}

fn now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0);
    i64::try_from(secs).expect("a time of this era")
}

/// The executions of `function`, newest first.
async fn executions_of(server: &TestServer, function: &str) -> Vec<Value> {
    let answer = server.get(&format!("/api/executions?function={function}")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_github_signed_delivery_runs_the_function_with_the_mapped_input() {
    let server = hooked_server(false).await;
    let body = issue_opened();
    let answer = github(&server, "delivery-1", &github_signature(GITHUB_SECRET, &body), &body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let expected = json!({
        "title": "The dashboard forgets my filter",
        "body": "Steps: open /executions, filter, reload.",
        "url": "https://github.com/acme/app/issues/7",
        "author": "ana",
    });
    assert_eq!(answer.body["input"], expected, "exactly the mapped keys");
    assert_eq!(answer.body["function"], "triage");
    assert_eq!(answer.body["triggered_by"], "webhook:triage");
    let id = answer.body["id"].as_str().expect("an id");
    assert_eq!(answer.location(), format!("/api/executions/{id}"));
    let stored = executions_of(&server, "triage").await;
    assert_eq!(stored.len(), 1);
    assert_eq!((&stored[0]["id"], &stored[0]["input"]), (&json!(id), &expected));
    server.wait_for(id, "succeeded", std::time::Duration::from_secs(20)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_delivery_that_does_not_verify_is_401_and_creates_nothing() {
    let server = hooked_server(false).await;
    let body = issue_opened();
    let before = executions_of(&server, "triage").await.len();
    let wrong_secret = github_signature("not-the-secret", &body);
    let mut other_body = body.clone();
    other_body.push(b' ');
    let right_for_other_body = github_signature(GITHUB_SECRET, &other_body);
    for signature in [wrong_secret.as_str(), right_for_other_body.as_str(), "sha256=", "nonsense"] {
        let answer = github(&server, "delivery-2", signature, &body).await;
        assert_eq!((answer.status, answer.code()), (401, "unauthorized"), "{signature}: {:?}", answer.body);
    }
    let unsigned = deliver(&server, "triage", &[("X-GitHub-Delivery", "delivery-3")], &body).await;
    assert_eq!(unsigned.status, 401, "{:?}", unsigned.body);
    assert!(unsigned.body["error"]["message"].as_str().unwrap_or("").contains("X-Hub-Signature-256"));
    assert_eq!(executions_of(&server, "triage").await.len(), before, "nothing was created");
    // The delivery id of a refused delivery is not spent: the real one goes through.
    let answer = github(&server, "delivery-2", &github_signature(GITHUB_SECRET, &body), &body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    server.stop().await;
}

#[tokio::test]
async fn the_same_delivery_twice_runs_once() {
    let server = hooked_server(false).await;
    let body = issue_opened();
    let signature = github_signature(GITHUB_SECRET, &body);
    let first = github(&server, "delivery-4", &signature, &body).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let again = github(&server, "delivery-4", &signature, &body).await;
    assert_eq!(again.status, 200, "a redelivery answers with the first execution: {:?}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(executions_of(&server, "triage").await.len(), 1);
    let other = github(&server, "delivery-5", &signature, &body).await;
    assert_eq!(other.status, 202, "another delivery runs again: {:?}", other.body);
    assert_eq!(executions_of(&server, "triage").await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn standard_webhooks_deliveries_verify_and_old_ones_are_refused() {
    let server = hooked_server(false).await;
    let body = br#"{"event": "invoice.paid", "amount": 12}"#;
    let answer = standard(&server, "msg_1", now(), body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["input"], json!({"event": "invoice.paid", "amount": 12}), "the whole payload");
    assert_eq!(answer.body["triggered_by"], "webhook:signed");
    let again = standard(&server, "msg_1", now(), body).await;
    assert_eq!((again.status, &again.body["id"]), (200, &answer.body["id"]));
    let old = standard(&server, "msg_2", now() - 600, body).await;
    assert_eq!((old.status, old.code()), (401, "unauthorized"), "{:?}", old.body);
    assert!(old.body["error"]["message"].as_str().unwrap_or("").contains("webhook-timestamp"));
    let timestamp = now().to_string();
    let forged = [
        ("webhook-id", "msg_3"),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", "v1,AAAA"),
    ];
    assert_eq!(deliver(&server, "signed", &forged, body).await.status, 401);
    assert_eq!(executions_of(&server, "signed").await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_bearer_token_must_be_the_secret() {
    let server = hooked_server(false).await;
    let right = format!("Bearer {TOKEN_SECRET}");
    let answer = deliver(&server, "tokened", &[("Authorization", &right)], br#"{"n": 1}"#).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    for wrong in ["Bearer token-secret-of-the-tes", "Bearer nope", "", TOKEN_SECRET] {
        let headers: &[(&str, &str)] = if wrong.is_empty() { &[] } else { &[("Authorization", wrong)] };
        let answer = deliver(&server, "tokened", headers, br#"{"n": 2}"#).await;
        assert_eq!((answer.status, answer.code()), (401, "unauthorized"), "{wrong:?}: {:?}", answer.body);
    }
    assert_eq!(executions_of(&server, "tokened").await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_function_without_a_webhook_is_not_found() {
    let server = hooked_server(false).await;
    for function in ["plain", "no-such-function"] {
        let answer = deliver(&server, function, &[("Authorization", "Bearer x")], b"{}").await;
        assert_eq!((answer.status, answer.code()), (404, "not-found"), "{function}: {:?}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("no webhook") && message.contains(function), "{message}");
    }
    assert!(executions_of(&server, "plain").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_or_that_the_schema_refuses_is_named() {
    let server = hooked_server(false).await;
    let text = b"payload=%7B%7D";
    let answer = github(&server, "delivery-6", &github_signature(GITHUB_SECRET, text), text).await;
    assert_eq!((answer.status, answer.code()), (400, "malformed-json"), "{:?}", answer.body);
    assert!(answer.body["error"]["message"].as_str().unwrap_or("").contains("must be JSON"));
    // An issue without a title: the mapped input lacks a required key, which the function's schema names.
    let untitled =
        serde_json::to_vec(&json!({"issue": {"html_url": "u", "user": {"login": "ana"}}})).expect("JSON");
    let answer = github(&server, "delivery-7", &github_signature(GITHUB_SECRET, &untitled), &untitled).await;
    assert_eq!((answer.status, answer.code()), (422, "invalid-input"), "{:?}", answer.body);
    assert!(executions_of(&server, "triage").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn with_auth_on_a_webhook_needs_its_signature_not_a_token() {
    let server = hooked_server(true).await;
    let body = issue_opened();
    let answer = github(&server, "delivery-8", &github_signature(GITHUB_SECRET, &body), &body).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let wrong = github(&server, "delivery-9", &github_signature("nope", &body), &body).await;
    assert_eq!(wrong.status, 401, "{:?}", wrong.body);
    server.stop().await;
}
