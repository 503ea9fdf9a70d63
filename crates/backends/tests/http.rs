//! The `http` backend's delivery rules against local servers: refused connections and 5xx answers are retried with
//! backoff and then fail clearly; a 4xx fails at once; 200 and 202 end or detach the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dashboard_backend_api::{Backend, RunContext, RunOutcome, log_channel};
use dashboard_backends::{HttpBackend, HttpConfig};
use dashboard_core::ExecutionId;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `status` and `body`, counting the requests.
async fn answering(status: &'static str, body: &str) -> (String, Arc<AtomicUsize>) {
    let body = body.to_owned();
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

/// A server that answers every request with `status` and a chunked body that never ends; the flag is set when the
/// client hangs up.
async fn answering_endlessly(status: &'static str) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/run", listener.local_addr().expect("an address"));
    let hung_up = Arc::new(AtomicBool::new(false));
    let flag = hung_up.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let chunk = format!("{:x}\r\n{}\r\n", 1024, "x".repeat(1024));
            let mut written = socket.write_all(head.as_bytes()).await;
            while written.is_ok() {
                written = socket.write_all(chunk.as_bytes()).await;
            }
            flag.store(true, Ordering::SeqCst);
        }
    });
    (url, hung_up)
}

/// Whether the flag is set within a few seconds.
async fn is_set_soon(flag: &AtomicBool) -> bool {
    for _ in 0..250 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A URL where nothing listens.
async fn refusing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/run", listener.local_addr().expect("an address"));
    drop(listener);
    url
}

async fn deliver(url: &str, retries: u32) -> RunOutcome {
    deliver_with(HttpConfig { retries, retry_backoff_ms: 10, ..HttpConfig::new(url) }).await
}

async fn deliver_with(config: HttpConfig) -> RunOutcome {
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
async fn a_200_answer_over_max_response_bytes_fails_naming_the_limit() {
    let limited = |url: &str| HttpConfig { retries: 0, max_response_bytes: 1024, ..HttpConfig::new(url) };
    let over = RunOutcome::Failed {
        error: "the agent server's answer is over the limit of 1 KiB (max_response_bytes)".into(),
    };
    // Up to the limit, the answer is the output.
    let at_limit = format!("\"{}\"", "x".repeat(1022));
    let (url, _) = answering("200 OK", &at_limit).await;
    assert_eq!(
        deliver_with(limited(&url)).await,
        RunOutcome::Succeeded { output: json!("x".repeat(1022)), usage: None }
    );
    let (url, count) = answering("200 OK", &format!("\"{}\"", "x".repeat(1023))).await;
    assert_eq!(deliver_with(limited(&url)).await, over);
    assert_eq!(count.load(Ordering::SeqCst), 1, "an answer over the limit is not retried");
    // An answer that never ends is not read to its end.
    let (url, hung_up) = answering_endlessly("200 OK").await;
    assert_eq!(deliver_with(limited(&url)).await, over);
    assert!(is_set_soon(&hung_up).await, "the client read on");
}

#[tokio::test]
async fn of_an_endless_error_answer_only_the_start_is_read() {
    let (url, hung_up) = answering_endlessly("500 Internal Server Error").await;
    let RunOutcome::Failed { error } = deliver(&url, 0).await else { panic!("succeeded on 500") };
    assert!(
        error.ends_with(&format!("after 1 attempts: HTTP 500 Internal Server Error: {}", "x".repeat(500)))
    );
    assert!(is_set_soon(&hung_up).await, "the client read on");
}

#[test]
fn max_response_bytes_defaults_to_4_mib() {
    let config: HttpConfig = serde_json::from_value(json!({"url": "http://x/run"})).expect("a valid config");
    assert_eq!(config.max_response_bytes, 4 * 1024 * 1024);
}

#[tokio::test]
async fn readiness_tells_reachable_from_refusing() {
    let (url, _) = answering("200 OK", "{}").await;
    assert!(HttpBackend::new(HttpConfig::new(&url)).expect("a backend").check().await.ready);
    let readiness = HttpBackend::new(HttpConfig::new(refusing().await)).expect("a backend").check().await;
    assert!(!readiness.ready && readiness.detail.ends_with("refuses connections"), "{readiness:?}");
}
