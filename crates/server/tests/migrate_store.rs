//! `agent-dashboard migrate-store` and the start on PostgreSQL, with the real binary: a dashboard run on a SQLite file
//! is stopped, its file copied into an empty PostgreSQL database, and the binary started on that database serves the
//! same functions, executions, logs and events. Bad usage exits 2; an unreachable server exits 1 — also at start —
//! naming its URL without the password.
//!
//! The copy needs a PostgreSQL server (`DASHBOARD_TEST_POSTGRES`); without one that test skips, saying why, unless
//! `CI` or `DASHBOARD_REQUIRE_POSTGRES=1` requires one.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its message.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::binary::{BinaryServer, TestDir, free_port};
use serde_json::{Value, json};

/// A URL with a password, of a server nothing listens on.
const UNREACHABLE: &str = "postgres://dash:s3cret-pw@127.0.0.1:1/dashboard";

/// Runs `agent-dashboard` with `args` in a clean `DASHBOARD_*` environment plus `env`.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHBOARD_")) {
        command.env_remove(name);
    }
    command.current_dir(dir).args(args).envs(env.iter().copied()).output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_usage_exits_2_and_an_unreachable_database_exits_1_without_showing_its_password() {
    let dir = TestDir::new("migrate-usage");
    for args in [
        &["migrate-store", "--to", UNREACHABLE][..],
        &["migrate-store", "--from", "data.db", "--to", UNREACHABLE],
        &["migrate-store", "--from", "sqlite:data.db", "--to", "sqlite:other.db"],
        &["migrate-store", "--from", "sqlite:data.db", "--to", UNREACHABLE, "--force"],
    ] {
        let output = run(dir.path(), args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("Usage: agent-dashboard migrate-store"), "{}", stderr(&output));
        assert!(!stderr(&output).contains("s3cret-pw"), "{}", stderr(&output));
    }

    let output = run(dir.path(), &["migrate-store", "--from", "sqlite:missing.db", "--to", UNREACHABLE], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("no SQLite file at missing.db"), "{}", stderr(&output));
    assert!(!dir.path().join("missing.db").exists(), "no empty database was made in its place");

    std::fs::write(dir.path().join("data.db"), b"").unwrap();
    let output = run(dir.path(), &["migrate-store", "--from", "sqlite:data.db", "--to", UNREACHABLE], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let printed = stderr(&output);
    assert!(printed.contains("PostgreSQL at postgres://dash:***@127.0.0.1:1/dashboard"), "{printed}");
    assert!(!printed.contains("s3cret-pw"), "{printed}");

    // The server refuses to start on it the same way.
    let port = free_port().to_string();
    let env = [("DASHBOARD_STORE", UNREACHABLE), ("DASHBOARD_HOST", "127.0.0.1"), ("DASHBOARD_PORT", &port)];
    let output = run(dir.path(), &[], &env);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let printed = stderr(&output);
    assert!(
        printed.contains("could not open the store: PostgreSQL at postgres://dash:***@127.0.0.1:1/dashboard"),
        "{printed}"
    );
    assert!(!printed.contains("s3cret-pw"), "{printed}");
}

/// Every execution, newest first, as the API lists them.
async fn executions(server: &BinaryServer) -> Vec<Value> {
    server.get_ok("/api/executions?limit=500").await["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_moved_to_postgres_serves_the_same_data() {
    let Some(database) = dashboard_store_postgres::testing::database("migrate").await else {
        return;
    };
    let dir = TestDir::new("migrate-store");
    let file = dir.path().join("dashboard.db");
    let sqlite = format!("sqlite:{}", file.display());

    let mut before = BinaryServer::start(
        &dir,
        &[("DASHBOARD_STORE", sqlite.clone()), ("DASHBOARD_INSTANCE_ID", "on-sqlite".into())],
    )
    .await;
    let mut ids = Vec::new();
    for input in
        [json!({"steps": 3, "delay_ms": 0}), json!({"steps": 1, "delay_ms": 0, "fail": true}), json!({})]
    {
        ids.push(before.trigger("hello-agent", input).await);
    }
    before.wait_until_all_finished().await;
    let executions_before = executions(&before).await;
    let mut logs_before = Vec::new();
    for id in &ids {
        logs_before.push(before.get_ok(&format!("/api/executions/{id}/logs")).await["items"].clone());
    }
    let events_before = before.all_events().await;
    let functions_before = before.get_ok("/api/functions").await;
    before.terminate();

    let output = run(dir.path(), &["migrate-store", "--from", &sqlite, "--to", &database], &[]);
    assert!(output.status.success(), "migrate-store: {}", stderr(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("1 functions, 3 executions"), "{report}");
    // The database holds data now: a second copy is refused, and changes nothing.
    let again = run(dir.path(), &["migrate-store", "--from", &sqlite, "--to", &database], &[]);
    assert_eq!(again.status.code(), Some(1), "a second copy into a database with data: {}", stderr(&again));

    let after = BinaryServer::start(
        &dir,
        &[("DASHBOARD_STORE", database.clone()), ("DASHBOARD_INSTANCE_ID", "on-postgres".into())],
    )
    .await;
    assert_eq!(after.get_ok("/api/functions").await, functions_before, "the functions, versions unchanged");
    assert_eq!(executions(&after).await, executions_before, "the executions, field for field");
    for (id, logs) in ids.iter().zip(&logs_before) {
        assert_eq!(
            &after.get_ok(&format!("/api/executions/{id}/logs")).await["items"],
            logs,
            "the log of {id}"
        );
    }
    assert_eq!(after.all_events().await, events_before, "the activity feed, ids kept");
    assert!(executions_before.iter().all(|execution| execution["instance"] == "on-sqlite"));

    // It goes on from there: a new run gets the next event ids and this instance's id.
    let id = after.trigger("hello-agent", json!({"steps": 1, "delay_ms": 0})).await;
    let execution = after.wait_for(&id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(execution["instance"], "on-postgres", "{execution}");
    let last_before = events_before.last().and_then(|event| event["id"].as_u64()).unwrap_or(0);
    let events_after = after.all_events().await;
    assert!(events_after.len() > events_before.len());
    assert!(events_after[events_before.len()..].iter().all(|event| event["id"].as_u64() > Some(last_before)));
}
