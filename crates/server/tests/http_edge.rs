//! The HTTP edges a hostile client pokes at: metric labels it could multiply, query strings the access log could
//! leak, and request framing (RFC 9112) — each against the real server, the framing cases with the exact bytes over
//! raw TCP.

mod common;

use std::time::{Duration, Instant};

use common::binary::{BinaryServer, TestDir};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "edge-admin-token-0123456789";

/// A bound on waiting for the server to answer or close, so a server that keeps a connection open fails the test
/// instead of hanging it; the assertions never depend on how fast anything is.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Writes `request` exactly as given on a fresh connection and reads until the server closes it.
async fn exchange(url: &str, request: &[u8]) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("a connection");
    stream.write_all(request).await.expect("the request is sent");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT_LIMIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("the answer is read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status lines of every answer in `text`.
fn status_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|line| line.starts_with("HTTP/1.")).collect()
}

#[tokio::test]
async fn made_up_methods_and_unknown_paths_add_no_metric_series() {
    let server = common::server_with(|config| {
        config.auth_tokens = vec![TokenSpec::from_secret("admin", ADMIN_TOKEN, Scope::Admin)];
    })
    .await;
    let client = &server.client;
    for method in ["FOOBARBAZ", "QUUXMETHOD", "get"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method token");
        let response = client.request(method, format!("{}/api/functions", server.url)).send().await;
        assert!(response.is_ok_and(|response| response.status().is_client_error()));
    }
    for path in ["/no/such/path-one", "/api/no-such-route-two", "/static/no-such-file-three.css"] {
        let _ = client.get(format!("{}{path}", server.url)).send().await.expect("an answer");
    }
    let answer = server.send(client.get(format!("{}/metrics", server.url)).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(answer.status, 200);
    let text = answer.text();
    for made_up in ["FOOBARBAZ", "QUUXMETHOD", "method=\"get\"", "path-one", "route-two", "file-three"] {
        assert!(!text.contains(made_up), "{made_up} became a label:\n{text}");
    }
    assert!(
        text.contains(r#"dashboard_http_requests_total{method="other",route="/api/functions""#),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn query_values_and_credentials_never_reach_the_access_log() {
    let dir = TestDir::new("access-log");
    let env = [
        ("DASHBOARD_STORE", "memory".to_owned()),
        ("DASHBOARD_AUTH_TOKEN", ADMIN_TOKEN.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let server = BinaryServer::start(&dir, &env).await;
    let refused = server.get(&format!("/metrics?token={ADMIN_TOKEN}")).await;
    assert_eq!(refused.status, 401);
    let with_credentials =
        server.client.get(format!("{}/api/functions?limit=5&secret=query-secret-4567", server.url));
    let with_credentials =
        with_credentials.bearer_auth(ADMIN_TOKEN).header("Cookie", "dashboard_session=cookie-secret-8910");
    assert_eq!(server.send(with_credentials).await.status, 200);
    let bare = server.get("/api/functions?bare-secret-1112").await;
    assert_eq!(bare.status, 401);

    // A line is written when its answer is done, which may be just after the client has read it.
    let expected = [
        "GET /metrics?token=REDACTED HTTP/1.1 401",
        "GET /api/functions?limit=REDACTED&secret=REDACTED HTTP/1.1 200",
        "GET /api/functions?REDACTED HTTP/1.1 401",
    ];
    let started = Instant::now();
    let log = loop {
        let log = server.log();
        if expected.iter().all(|line| log.contains(line)) {
            break log;
        }
        assert!(started.elapsed() < WAIT_LIMIT, "the access log lacks one of {expected:?}:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for secret in [ADMIN_TOKEN, "query-secret-4567", "cookie-secret-8910", "bare-secret-1112", "Bearer"] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[tokio::test]
async fn a_request_with_both_lengths_is_refused_and_its_connection_closed() {
    let server = common::server().await;
    let body = br#"{"name": "smuggled", "backend": "demo"}"#;
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut request = format!(
        "POST /api/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunked);
    request.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");

    let answer = exchange(&server.url, &request).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 400 Bad Request"], "{answer}");
    assert!(answer.contains("\"invalid-header\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert_eq!(server.get("/api/functions/smuggled").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_its_connection_open_after_a_refused_request_is_closed_on() {
    let server = common::server().await;
    let mut stream =
        TcpStream::connect(server.url.trim_start_matches("http://")).await.expect("a connection");
    let refused = "POST /api/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                   Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    stream.write_all(refused.as_bytes()).await.expect("the request is sent");
    // The client reads the refusal's head, then sends another request and never closes its side.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT_LIMIT, stream.read_u8()).await.expect("an answer");
        head.push(byte.expect("a byte"));
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 400 Bad Request"), "{head:?}");
    // The server may have closed already: a refused write is as good as an unread one.
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT_LIMIT, stream.read_to_end(&mut rest)).await;
    let rest = match closed.expect("the server closes the connection") {
        Ok(_) => String::from_utf8_lossy(&rest).into_owned(),
        // A reset after the close (the unread request) ends the connection too.
        Err(error) => format!("reset: {error}"),
    };
    assert!(status_lines(&rest).is_empty(), "the request behind the refused one is not answered: {rest}");
    server.stop().await;
}

#[tokio::test]
async fn a_second_host_header_is_refused() {
    let server = common::server().await;
    for hosts in ["Host: 127.0.0.1\r\nHost: evil.example", "Host: evil.example\r\nHost: 127.0.0.1"] {
        let request = format!("GET /api/functions HTTP/1.1\r\n{hosts}\r\nConnection: close\r\n\r\n");
        let answer = exchange(&server.url, request.as_bytes()).await;
        assert_eq!(status_lines(&answer), ["HTTP/1.1 400 Bad Request"], "{answer}");
        assert!(answer.contains("\"invalid-header\""), "{answer}");
    }
    let one_host =
        exchange(&server.url, b"GET /api/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status_lines(&one_host.await), ["HTTP/1.1 200 OK"]);
    server.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_100_continue() {
    let server = common::server_with(|config| config.max_body_bytes = 4096).await;
    let request = "POST /api/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                   Content-Length: 4097\r\nExpect: 100-continue\r\n\r\n";
    let answer = exchange(&server.url, request.as_bytes()).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 413 Payload Too Large"], "{answer}");
    assert!(answer.contains("\"body-too-large\""), "{answer}");

    // Within the limit the client is invited to send its body, and the request goes through.
    let body = br#"{"name": "announced", "backend": "demo"}"#;
    let head = format!(
        "POST /api/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream =
        TcpStream::connect(server.url.trim_start_matches("http://")).await.expect("a connection");
    stream.write_all(head.as_bytes()).await.expect("the head is sent");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT_LIMIT, stream.read_u8()).await.expect("an interim answer");
        interim.push(byte.expect("a byte"));
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body).await.expect("the body is sent");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT_LIMIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("the answer is read");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_lines(&answer), ["HTTP/1.1 201 Created"], "{answer}");
    server.stop().await;
}
