//! An instance's id on a store of its own (SQLite): `GET /api/instances` lists the answering instance alone, with
//! `this`; the executions it runs carry its id (`instance`) in the API and on their status page; `/metrics` names it.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its message.

mod common;

use std::time::Duration;

use common::binary::TestDir;
use common::server_with;
use dashboard_server::{InstanceId, StoreSpec};
use serde_json::json;

#[tokio::test]
async fn a_lone_instance_lists_itself_and_marks_what_it_ran() {
    let dir = TestDir::new("instances");
    let server = server_with(|config| {
        config.store = StoreSpec::Sqlite(dir.path().join("dashboard.db"));
        config.instance_id = InstanceId::Named("web-1".into());
    })
    .await;

    let listed = server.get("/api/instances").await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", listed.body);
    let this = &items[0];
    assert_eq!((&this["id"], &this["this"], &this["running"]), (&json!("web-1"), &json!(true), &json!(0)));
    for field in ["started_at", "heartbeat_at"] {
        let text = this[field].as_str().unwrap_or_else(|| panic!("{field}: {this}"));
        assert!(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok(),
            "{text}"
        );
    }

    let id = server.trigger("hello-agent", json!({"steps": 1, "delay_ms": 0})).await;
    let execution = server.wait_for(&id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(execution["instance"], "web-1", "{execution}");
    let page = server.get(&format!("/executions/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("<dt data-field=\"instance-label\">Instance</dt>")
            && page.text().contains(">web-1</dd>"),
        "{}",
        page.text()
    );

    let metrics = server.get("/metrics").await;
    assert!(metrics.text().contains("dashboard_instance_info{instance=\"web-1\"} 1\n"), "{}", metrics.text());
    assert!(
        metrics.text().contains("dashboard_instance_running_executions{instance=\"web-1\"} 0\n"),
        "{}",
        metrics.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_queued_execution_names_no_instance_and_its_page_shows_none() {
    let server = server_with(|config| config.instance_id = InstanceId::Named("web-2".into())).await;
    server.create_function("waits", json!({"max_concurrency": 1})).await;
    let running = server.trigger("waits", json!({"hang": true})).await;
    server.wait_for(&running, "running", Duration::from_secs(60)).await;
    let queued = server.trigger("waits", json!({})).await;
    let execution = server.get(&format!("/api/executions/{queued}")).await.body;
    assert_eq!(
        (&execution["status"], &execution["instance"]),
        (&json!("queued"), &json!(null)),
        "{execution}"
    );
    let page = server.get(&format!("/executions/{queued}")).await;
    // The row is there, hidden, for the page's script to show once the execution starts somewhere.
    assert!(
        page.text().contains("<dt data-field=\"instance-label\" hidden>Instance</dt>"),
        "{}",
        page.text()
    );
    let listed = server.get("/api/instances").await.body;
    assert_eq!(listed["items"][0]["running"], 1, "{listed}");
    server.post(&format!("/api/executions/{running}/cancel"), json!({})).await;
    server.stop().await;
}
