//! The `http` backend's delivery rules against local servers: refused connections and 5xx answers are retried with
//! backoff and then fail clearly; a 4xx fails at once; 200 and 202 end or detach the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashboard_backends::{Backend, HttpBackend, HttpConfig, RunContext, RunOutcome, log_channel};
use dashboard_core::ExecutionId;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `status` and `body`, counting the requests.
async fn answering(status: &'static str, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/run", listener.local_addr().expect("an address"));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = vec![0; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (url, count)
}

/// A URL where nothing listens.
async fn refusing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/run", listener.local_addr().expect("an address"));
    drop(listener);
    url
}

async fn deliver(url: &str, retries: u32) -> RunOutcome {
    let config = HttpConfig { retries, retry_backoff_ms: 10, ..HttpConfig::new(url) };
    let (sink, _receiver) = log_channel(16);
    let run = RunContext::new(ExecutionId::generate(), "remote", json!({"x": 1}), sink);
    HttpBackend::new(config).expect("a backend").trigger(run).await.expect("the run ends")
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_fails_clearly() {
    let url = refusing().await;
    let RunOutcome::Failed { error } = deliver(&url, 2).await else { panic!("succeeded against nothing") };
    assert_eq!(
        error,
        format!("the agent server at {url} did not take the run after 3 attempts: connection refused")
    );
}

#[tokio::test]
async fn a_5xx_is_retried_the_configured_number_of_times() {
    let (url, count) = answering("503 Service Unavailable", r#"{"error": {"message": "warming up"}}"#).await;
    let RunOutcome::Failed { error } = deliver(&url, 2).await else { panic!("succeeded on 503") };
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(error.ends_with("after 3 attempts: HTTP 503 Service Unavailable: warming up"), "{error}");
}

#[tokio::test]
async fn a_4xx_fails_at_once_with_the_servers_message() {
    let (url, count) =
        answering("400 Bad Request", r#"{"error": {"message": "input.repo is required"}}"#).await;
    let outcome = deliver(&url, 3).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            error: "the agent server refused the run: HTTP 400 Bad Request: input.repo is required".into()
        }
    );
}

#[tokio::test]
async fn a_200_completes_and_a_202_detaches() {
    let (url, _) = answering("200 OK", r#"{"output": {"done": true}, "usage": {"tokens": 3}}"#).await;
    assert_eq!(
        deliver(&url, 0).await,
        RunOutcome::Succeeded { output: json!({"done": true}), usage: Some(json!({"tokens": 3})) }
    );
    let (url, _) = answering("202 Accepted", "").await;
    assert_eq!(deliver(&url, 0).await, RunOutcome::Detached);
}

#[tokio::test]
async fn readiness_tells_reachable_from_refusing() {
    let (url, _) = answering("200 OK", "{}").await;
    assert!(HttpBackend::new(HttpConfig::new(&url)).expect("a backend").check().await.ready);
    let readiness = HttpBackend::new(HttpConfig::new(refusing().await)).expect("a backend").check().await;
    assert!(!readiness.ready && readiness.detail.ends_with("refuses connections"), "{readiness:?}");
}
