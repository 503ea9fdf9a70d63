//! The server over a store that cannot write: `/healthz` says 503 with the reason while writes fail, cancel is taken
//! meanwhile and lands once they succeed again (a full disk injected at the store trait over a real SQLite file), and
//! the binary refuses to start on a database file it may only read.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its message.

mod common;

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Answer, answer, client};
use dashboard_backend_api::Principal;
use dashboard_backends::DemoBackend;
use dashboard_core::FunctionSpec;
use dashboard_engine::Dashboard;
use dashboard_store::{DashboardStore, FailingWrites};
use dashboard_store_sqlite::SqliteStore;
use serde_json::json;

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `condition` holds.
async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting: {what}");
}

#[actix_web::test]
async fn while_writes_fail_healthz_is_503_with_the_reason_and_a_cancel_lands_once_they_succeed() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let dashboard = Dashboard::builder()
        .store(store.clone() as Arc<dyn DashboardStore>)
        .backend("demo", DemoBackend)
        .build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("hangs", "demo"))
        .await
        .expect("a function");
    let (url, handle) = common::mount(dashboard.clone(), None);
    let client = client();
    let get = |path: &str| answer(client.get(format!("{url}{path}")));

    let trigger = json!({"function": "hangs", "input": {"steps": 1, "hang": true}});
    let triggered = answer(client.post(format!("{url}/api/executions")).json(&trigger)).await;
    assert_eq!(triggered.status, 202, "{}", triggered.body);
    let id = triggered.body["id"].as_str().expect("an id").to_owned();
    let execution_path = format!("/api/executions/{id}");
    wait_until("it runs", || async { get(&execution_path).await.body["status"] == "running" }).await;
    assert_eq!(get("/healthz").await.status, 200);

    store.fail_writes(true);
    // A health check reuses the probe's answer for a second: the next probe finds writes failing.
    wait_until("unhealthy", || async { get("/healthz").await.status == 503 }).await;
    let health = get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body["detail"].as_str().unwrap().contains("database or disk is full"), "{}", health.body);
    let refused = answer(client.post(format!("{url}/api/executions")).json(&trigger)).await;
    assert_eq!(refused.status, 503, "a trigger that cannot be stored: {}", refused.body);

    let cancel: Answer = answer(client.post(format!("{url}{execution_path}/cancel"))).await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    wait_until("the cancelled run holds its status", || async { dashboard.metrics().held_executions() == 1 })
        .await;
    assert_eq!(get(&execution_path).await.body["status"], "running", "not stored yet");
    let health = get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body["detail"].as_str().unwrap().contains("1 executions wait"), "{}", health.body);
    assert!(dashboard.metrics().store_write_failures() > 0);
    let metrics = get("/metrics").await;
    for series in [
        "dashboard_store_writes_failing 1",
        "dashboard_store_held_executions 1",
        "dashboard_store_write_episodes_total 1",
    ] {
        assert!(metrics.text().lines().any(|line| line == series), "{series} missing: {}", metrics.text());
    }

    store.fail_writes(false);
    wait_until("the cancel lands", || async { get(&execution_path).await.body["status"] == "cancelled" })
        .await;
    wait_until("healthy again", || async { get("/healthz").await.status == 200 }).await;
    let retried = answer(client.post(format!("{url}{execution_path}/retry"))).await;
    assert_eq!(retried.status, 202, "a finished execution may be retried: {}", retried.body);
    common::stop_mounted(handle).await;
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_refuses_to_start_on_a_database_it_cannot_write_and_says_why() {
    let dir = std::env::temp_dir().join(format!("agent-dashboard-read-only-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a test folder");
    let database = dir.join("dashboard.db");
    drop(SqliteStore::open(&database).expect("a database with the current schema"));
    // The folder stays writable (for the server's other files); the database file is made read-only.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod the folder");
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o444)).expect("chmod the file");

    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHBOARD_")) {
        command.env_remove(name);
    }
    command
        .env("DASHBOARD_STORE", format!("sqlite:{}", database.display()))
        .env("DASHBOARD_HOST", "127.0.0.1")
        .env("DASHBOARD_PORT", port.to_string())
        .env("RUST_LOG", "info")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The superuser writes read-only files all the same: run the server as nobody, as a service would run.
    let is_superuser = std::fs::metadata(&dir).expect("the folder").uid() == 0;
    if is_superuser {
        command.uid(65534).gid(65534);
    }
    let mut child = command.spawn().expect("the binary starts");
    let client = client();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's state") {
            break status;
        }
        if client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("the server started on a database it cannot write");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output().expect("the child's output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("for writing: Permission denied"), "{stderr}");
}
