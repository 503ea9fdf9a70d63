//! The `http` (AgentKit) backend end to end: the real binary, configured from a TOML file with the webhook secret in
//! its environment, hands runs to a fake agent server that checks the Standard Webhooks signature and reports back
//! through the callback routes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::binary::{BinaryServer, TestDir};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const SECRET_KEY: &[u8] = b"test-webhook-secret-0123456789ab";
const SETTLE: Duration = Duration::from_secs(20);

/// What the fake agent server received.
#[derive(Default)]
struct Received {
    bodies: Vec<Value>,
    bad_signatures: usize,
}

/// Checks the Standard Webhooks headers of a request against the shared secret.
fn is_signed(request: &HttpRequest, body: &[u8]) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET_KEY).expect("any key length");
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature").split(' ').any(|signature| signature == expected)
}

/// The fake agent: `mode` in the input says whether it answers at once (`sync`), calls back (`callback`), or takes
/// the run and never reports (`silent`).
async fn agent(received: web::Data<Mutex<Received>>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    if !is_signed(&request, &body) {
        received.lock().expect("lock").bad_signatures += 1;
        return HttpResponse::Unauthorized().json(json!({"error": {"message": "bad webhook signature"}}));
    }
    let run: Value = serde_json::from_slice(&body).unwrap_or_default();
    received.lock().expect("lock").bodies.push(run.clone());
    match run["input"]["mode"].as_str() {
        Some("sync") => HttpResponse::Ok().json(json!({"output": {"answer": 42}, "usage": {"tokens": 7}})),
        Some("callback") => {
            tokio::spawn(call_back(run));
            HttpResponse::Accepted().finish()
        }
        _ => HttpResponse::Accepted().finish(),
    }
}

/// Reports logs, then success, the way an AgentKit server would.
async fn call_back(run: Value) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = reqwest::Client::new();
    let url = run["callback_url"].as_str().unwrap_or_default().to_owned();
    let token = run["callback_token"].as_str().unwrap_or_default().to_owned();
    let lines = json!({"lines": [{"message": "agent: reading the issue"}, {"message": "patch applied", "stream": "stdout"}]});
    let _ = client.post(format!("{url}/logs")).bearer_auth(&token).json(&lines).send().await;
    let done = json!({"status": "succeeded", "output": {"pull_request": "https://example.test/pr/1"}, "usage": {"tokens": 99}});
    let _ = client.post(format!("{url}/status")).bearer_auth(&token).json(&done).send().await;
}

async fn fake_agent() -> (String, Arc<Mutex<Received>>, actix_web::dev::ServerHandle) {
    let received = web::Data::new(Mutex::new(Received::default()));
    let shared = received.clone().into_inner();
    let server =
        HttpServer::new(move || App::new().app_data(received.clone()).route("/run", web::post().to(agent)))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("a port");
    let url = format!("http://{}/run", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, shared, handle)
}

fn config(agent_url: &str) -> String {
    format!(
        r#"
[[backends]]
name = "agentkit"
kind = "agentkit"
url = "{agent_url}"
secret_env = "AGENTKIT_WEBHOOK_SECRET"
retries = 0

[[backends]]
name = "impostor"
kind = "http"
url = "{agent_url}"
secret_env = "IMPOSTOR_WEBHOOK_SECRET"
retries = 0

[[functions]]
name = "remote"
backend = "agentkit"
prompt = "Work in mode {{{{ input.mode }}}}"
timeout_secs = 3
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_server_takes_runs_signed_and_reports_back_through_the_callbacks() {
    let (agent_url, received, agent_handle) = fake_agent().await;
    let dir = TestDir::new("http-backend");
    let config_path = dir.path().join("dashboard.toml");
    std::fs::write(&config_path, config(&agent_url)).expect("the config file");
    let secret = format!("whsec_{}", STANDARD.encode(SECRET_KEY));
    let impostor = format!("whsec_{}", STANDARD.encode(b"another-secret-entirely-012345"));
    let server = BinaryServer::start(
        &dir,
        &[
            ("DASHBOARD_STORE", "memory".into()),
            ("DASHBOARD_CONFIG", config_path.display().to_string()),
            ("AGENTKIT_WEBHOOK_SECRET", secret),
            ("IMPOSTOR_WEBHOOK_SECRET", impostor),
        ],
    )
    .await;

    // 202, then callbacks: the logs and the output the agent reported.
    let called_back = server.trigger("remote", json!({"mode": "callback"})).await;
    let done = server.wait_for(&called_back, "succeeded", SETTLE).await;
    assert_eq!(done["output"], json!({"pull_request": "https://example.test/pr/1"}));
    // Usage in the one shape: a vocabulary it does not know keeps the agent's report in `raw`.
    assert_eq!(done["usage"], json!({"raw": {"tokens": 99}}));
    let logs = server.get(&format!("/api/executions/{called_back}/logs")).await.body;
    let lines: Vec<(String, String)> = logs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|line| {
            (
                line["stream"].as_str().unwrap_or("").to_owned(),
                line["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(lines.contains(&("agent".into(), "agent: reading the issue".into())), "{lines:?}");
    assert!(lines.contains(&("stdout".into(), "patch applied".into())), "{lines:?}");
    let sent = received.lock().expect("lock").bodies[0].clone();
    assert_eq!(sent["prompt"], "Work in mode callback");
    assert_eq!(sent["callback_url"], format!("{}/api/executions/{called_back}", server.url));
    let token = sent["callback_token"].as_str().expect("a token").to_owned();

    // A repeated terminal report is a no-op.
    let again = server
        .post_with_token(
            &format!("/api/executions/{called_back}/status"),
            &token,
            json!({"status": "failed", "error": "late"}),
        )
        .await;
    assert_eq!((again.status, again.body["status"].as_str()), (200, Some("succeeded")));

    // 200 at once: the answer is the output.
    let sync = server.trigger("remote", json!({"mode": "sync"})).await;
    let done = server.wait_for(&sync, "succeeded", SETTLE).await;
    assert_eq!((&done["output"], &done["usage"]), (&json!({"answer": 42}), &json!({"raw": {"tokens": 7}})));

    // Signed with the wrong secret: the agent refuses, the run fails saying so.
    let refused = server
        .post(
            "/api/executions",
            json!({"function": "remote", "backend": "impostor", "input": {"mode": "sync"}}),
        )
        .await;
    let refused = refused.body["id"].as_str().expect("an id").to_owned();
    let failed = server.wait_for(&refused, "failed", SETTLE).await;
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|error| error.contains("401") && error.contains("bad webhook signature")),
        "{failed}"
    );
    assert_eq!(received.lock().expect("lock").bad_signatures, 1);

    // Taken but never reported: the engine's timeout still applies.
    let silent = server.trigger("remote", json!({"mode": "silent"})).await;
    server.wait_for(&silent, "running", SETTLE).await;
    // Another execution's token, or none, cannot write to it.
    let foreign = server
        .post_with_token(
            &format!("/api/executions/{silent}/logs"),
            &token,
            json!({"lines": [{"message": "x"}]}),
        )
        .await;
    assert_eq!((foreign.status, foreign.code()), (403, "forbidden"));
    let anonymous =
        server.post(&format!("/api/executions/{silent}/status"), json!({"status": "succeeded"})).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"));
    let timed_out = server.wait_for(&silent, "timed_out", SETTLE).await;
    assert_eq!(timed_out["error"], "timed out after 3 s");

    assert!(!server.log().contains(&token), "a callback token appeared in the server log");
    agent_handle.stop(false).await;
}
