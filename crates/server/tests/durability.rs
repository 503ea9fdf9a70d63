//! Durability of the real binary on a SQLite file: what was answered 202 survives `kill -9`, recovery leaves nothing
//! running or queued, and many concurrent clients never meet "database is locked".

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its message.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::binary::{BinaryServer, TestDir};
use dashboard_engine::INTERRUPTED_ERROR;
use serde_json::{Value, json};

/// How long the clients may take to get their triggers in, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// The database file of a test, in a folder the server must create.
fn database(dir: &TestDir) -> PathBuf {
    dir.path().join("data").join("dashboard.db")
}

/// The binary on the SQLite file at `database`.
async fn start(dir: &TestDir, database: &Path) -> BinaryServer {
    BinaryServer::start(dir, &[("DASHBOARD_STORE", format!("sqlite:{}", database.display()))]).await
}

/// Opens the file as an operator would after a crash, and checks it is whole; returns the ids in each status.
fn inspect(database: &Path) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let connection = rusqlite::Connection::open(database).expect("the file opens");
    let integrity: String =
        connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("a check");
    assert_eq!(integrity, "ok");
    let ids = |condition: &str| -> HashSet<String> {
        let mut statement =
            connection.prepare(&format!("SELECT id FROM executions WHERE {condition}")).expect("a query");
        statement.query_map([], |row| row.get(0)).expect("rows").collect::<Result<_, _>>().expect("ids")
    };
    (ids("1 = 1"), ids("status = 'running'"), ids("status = 'queued'"))
}

/// Words that betray lock contention or a failing store, in an answer or in the server's log.
fn assert_no_lock_trouble(what: &str, text: &str) {
    for word in ["database is locked", "SQLITE_BUSY", "store unavailable", "could not store log lines"] {
        assert!(!text.contains(word), "{what} says {word:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_trigger_answered_202_survives_sigkill_and_recovery_leaves_nothing_unfinished() {
    let dir = TestDir::new("sigkill");
    let database = database(&dir);
    let mut server = start(&dir, &database).await;
    server.create_function("durable").await;
    // Executions that are certainly running at the kill: they never end by themselves.
    let mut hanging = Vec::new();
    for _ in 0..3 {
        let id = server.trigger("durable", json!({"steps": 1, "hang": true})).await;
        server.wait_until(&id, "running", |execution| execution["status"] == "running").await;
        hanging.push(id);
    }

    // Many clients trigger as fast as they can until the server dies under them; each 202 is noted.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, acknowledged) =
                (server.client.clone(), server.url.clone(), Arc::clone(&acknowledged));
            tokio::spawn(async move {
                for _ in 0..400 {
                    let body = json!({"function": "durable", "input": {"steps": 4, "delay_ms": 25}});
                    // A request the kill cut off has no answer: it was never acknowledged.
                    let Ok(response) = client.post(format!("{url}/api/executions")).json(&body).send().await
                    else {
                        return;
                    };
                    let status = response.status().as_u16();
                    let Ok(body) = response.json::<Value>().await else { return };
                    assert_eq!(status, 202, "{body}");
                    acknowledged.lock().unwrap().push(body["id"].as_str().expect("an id").to_owned());
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(started.elapsed() < PATIENCE, "the clients stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for client in clients {
        client.await.expect("a client panicked");
    }
    let acknowledged: HashSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    assert_no_lock_trouble("the first run's log", &server.log());

    let (stored, running_at_kill, queued_at_kill) = inspect(&database);
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged executions are not in the file: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    assert!(hanging.iter().all(|id| running_at_kill.contains(id)), "the hanging executions were running");
    eprintln!(
        "acknowledged {} triggers before SIGKILL; the file holds {} executions, {} running and {} queued",
        acknowledged.len(),
        stored.len(),
        running_at_kill.len(),
        queued_at_kill.len()
    );

    let server = start(&dir, &database).await;
    for id in &running_at_kill {
        let execution = server.get_ok(&format!("/api/executions/{id}")).await;
        assert_eq!(
            (&execution["status"], &execution["error"]),
            (&json!("failed"), &json!(INTERRUPTED_ERROR)),
            "{execution}"
        );
    }
    server.wait_until_all_finished().await;
    for id in &stored {
        let execution = server.get_ok(&format!("/api/executions/{id}")).await;
        let is_interrupted = execution["status"] == "failed" && execution["error"] == INTERRUPTED_ERROR;
        let expected =
            if running_at_kill.contains(id) { is_interrupted } else { execution["status"] == "succeeded" };
        assert!(expected, "running at the kill: {}; now {execution}", running_at_kill.contains(id));
    }
    let events = server.all_events().await;
    for id in &running_at_kill {
        let interrupted = events.iter().rev().find(|event| event["execution_id"] == id.as_str());
        let interrupted = interrupted.expect("events of an interrupted execution");
        assert_eq!(
            (&interrupted["kind"], &interrupted["data"]["error"]),
            (&json!("execution.failed"), &json!(INTERRUPTED_ERROR))
        );
    }
    assert!(
        server.log().contains(&format!("recovery: {} interrupted", running_at_kill.len())),
        "{}",
        server.log()
    );
    assert_no_lock_trouble("the second run's log", &server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_trigger_and_log_at_once_without_lock_errors_or_5xx() {
    const CLIENTS: usize = 32;
    const TRIGGERS_PER_CLIENT: usize = 8;
    const STEPS: u64 = 25;
    let dir = TestDir::new("concurrency");
    let database = database(&dir);
    let server = start(&dir, &database).await;
    server.create_function("chatty").await;

    // Each client triggers executions that write log lines while they run, and reads their logs meanwhile.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (server.client.clone(), server.url.clone());
            tokio::spawn(async move {
                let mut answers: Vec<(u16, String)> = Vec::new();
                let mut ids = Vec::new();
                for _ in 0..TRIGGERS_PER_CLIENT {
                    let body = json!({"function": "chatty", "input": {"steps": STEPS, "delay_ms": 2}});
                    let response = client.post(format!("{url}/api/executions")).json(&body).send().await;
                    let response = response.expect("the server answers");
                    let status = response.status().as_u16();
                    let text = response.text().await.expect("a body");
                    if let Some(id) = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|body| body["id"].as_str().map(str::to_owned))
                    {
                        ids.push(id);
                    }
                    answers.push((status, text));
                    for id in &ids {
                        let response =
                            client.get(format!("{url}/api/executions/{id}/logs?after=0")).send().await;
                        let response = response.expect("the server answers");
                        answers.push((response.status().as_u16(), response.text().await.expect("a body")));
                    }
                }
                (ids, answers)
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut n_answers = 0;
    for client in clients {
        let (client_ids, answers) = client.await.expect("a client panicked");
        for (status, text) in &answers {
            assert!(*status < 500, "a {status} answer: {text}");
            assert_no_lock_trouble("an answer", text);
        }
        n_answers += answers.len();
        ids.extend(client_ids);
    }
    assert_eq!(ids.len(), CLIENTS * TRIGGERS_PER_CLIENT, "every trigger was accepted");

    server.wait_until_all_finished().await;
    // Each run logs its steps between the engine's opening and closing lines, numbered without a gap.
    let expected_seqs: Vec<u64> = (1..=STEPS + 2).collect();
    for id in &ids {
        let execution = server.get_ok(&format!("/api/executions/{id}")).await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
        let logs = server.get_ok(&format!("/api/executions/{id}/logs?after=0&limit=1000")).await;
        let seqs: Vec<u64> =
            logs["items"].as_array().expect("items").iter().filter_map(|line| line["seq"].as_u64()).collect();
        assert_eq!(seqs, expected_seqs, "execution {id}");
    }
    eprintln!(
        "{} executions, {n_answers} answers, {} log lines, all below 500",
        ids.len(),
        ids.len() as u64 * (STEPS + 2)
    );
    assert_no_lock_trouble("the server's log", &server.log());
    assert!(!server.log().contains(" ERROR "), "the server logged errors:\n{}", server.log());
    drop(server);
    inspect(&database);
}
