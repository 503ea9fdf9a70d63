//! `GET /metrics` over HTTP: the Prometheus text counts what the API did, and routes are labelled by pattern.

mod common;

use std::time::Duration;

use common::server;
use serde_json::json;

/// The value of the sample `series` (name and labels exactly as printed), if the text has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_triggers_completions_and_requests_by_route() {
    let server = server().await;
    server.create_function("quick", json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(server.trigger("quick", json!({"steps": 0})).await);
    }
    for id in &ids {
        server.wait_for(id, "succeeded", Duration::from_secs(10)).await;
        assert_eq!(server.get(&format!("/api/executions/{id}")).await.status, 200);
    }
    assert_eq!(server.get("/api/executions/not-an-id").await.status, 404);

    let answer = server.get("/metrics").await;
    assert_eq!(answer.status, 200);
    let content_type = answer.headers.get("content-type").and_then(|value| value.to_str().ok());
    assert!(content_type.is_some_and(|value| value.starts_with("text/plain")), "{content_type:?}");
    let text = answer.text();

    let at_least = |series: &str, minimum: f64| {
        let value = sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
        assert!(value >= minimum, "{series} is {value}, expected at least {minimum}");
    };
    at_least(r#"dashboard_executions{status="succeeded"}"#, 3.0);
    at_least(r#"dashboard_executions_triggered_total{backend="demo"}"#, 3.0);
    at_least(r#"dashboard_executions_started_total{backend="demo"}"#, 3.0);
    at_least(r#"dashboard_executions_finished_total{backend="demo",status="succeeded"}"#, 3.0);
    at_least("dashboard_execution_duration_seconds_count", 3.0);
    at_least(r#"dashboard_execution_duration_seconds_bucket{le="+Inf"}"#, 3.0);
    at_least(r#"dashboard_http_requests_total{method="POST",route="/api/executions",status="202"}"#, 3.0);
    at_least(r#"dashboard_http_requests_total{method="GET",route="/api/executions/{id}",status="200"}"#, 3.0);
    at_least(r#"dashboard_http_requests_total{method="GET",route="/api/executions/{id}",status="404"}"#, 1.0);
    assert_eq!(sample(text, "dashboard_queue_depth"), Some(0.0), "{text}");
    assert_eq!(sample(text, "dashboard_running_executions"), Some(0.0), "{text}");
    assert_eq!(sample(text, "dashboard_sse_clients"), Some(0.0), "{text}");
    for id in &ids {
        assert!(!text.contains(id.as_str()), "a raw execution id became a label:\n{text}");
    }
    assert!(text.contains("# TYPE dashboard_store_commit_seconds histogram"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn the_sqlite_store_reports_its_group_commits() {
    let directory = std::env::temp_dir().join(format!("dashboard-metrics-{}", std::process::id()));
    let path = directory.join("metrics.db");
    let server = common::server_with(|config| {
        config.store = dashboard_server::StoreSpec::Sqlite(path.clone());
    })
    .await;
    server.create_function("quick", json!({})).await;
    let id = server.trigger("quick", json!({"steps": 0})).await;
    server.wait_for(&id, "succeeded", Duration::from_secs(10)).await;
    let text = server.get("/metrics").await.text().to_owned();
    assert!(
        sample(&text, "dashboard_store_commit_seconds_count").is_some_and(|count| count >= 3.0),
        "{text}"
    );
    assert!(sample(&text, "dashboard_store_commit_batch_size_sum").is_some_and(|sum| sum >= 3.0), "{text}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&directory);
}
