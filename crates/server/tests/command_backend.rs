//! The `command` backend through the real binary and its API: output is readable while the program runs, exit codes
//! become statuses, and cancel and timeout leave no process of the run alive.

mod common;

use std::time::Duration;

use common::binary::{BinaryServer, TestDir};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[[backends]]
name = "sh"
kind = "command"
command = "{{ input.script }}"
shell = true
kill_grace_secs = 2

[[functions]]
name = "script"
backend = "sh"
input_schema = { type = "object", required = ["script"], properties = { script = { type = "string" } } }

[[functions]]
name = "slow-script"
backend = "sh"
timeout_secs = 1
input_schema = { type = "object", required = ["script"], properties = { script = { type = "string" } } }
"#;

async fn server(dir: &TestDir) -> BinaryServer {
    let path = dir.path().join("dashboard.toml");
    std::fs::write(&path, CONFIG).expect("the config file");
    BinaryServer::start(
        dir,
        &[("DASHBOARD_STORE", "memory".into()), ("DASHBOARD_CONFIG", path.display().to_string())],
    )
    .await
}

/// Whether a process is alive (a zombie counts as dead).
fn is_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

async fn log_messages(server: &BinaryServer, id: &str) -> Vec<String> {
    let logs = server.get(&format!("/api/executions/{id}/logs")).await.body;
    logs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|line| line["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_programs_stream_fail_stop_and_time_out_through_the_api() {
    let dir = TestDir::new("command-backend");
    let server = server(&dir).await;

    // Lines show up while the program still runs.
    let ticking = server
        .trigger("script", json!({"script": "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done"}))
        .await;
    let started = std::time::Instant::now();
    loop {
        let messages = log_messages(&server, &ticking).await;
        if messages.iter().any(|message| message == "tick 1") {
            let execution = server.get(&format!("/api/executions/{ticking}")).await.body;
            assert_eq!(execution["status"], "running", "the first line must be readable before the end");
            break;
        }
        assert!(started.elapsed() < SETTLE, "no line arrived: {messages:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = server.wait_for(&ticking, "succeeded", SETTLE).await;
    assert_eq!(done["output"], "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\ntick 7\ntick 8");

    // A non-zero exit fails naming the code.
    let failing = server.trigger("script", json!({"script": "echo 'no such file' >&2; exit 3"})).await;
    let failed = server.wait_for(&failing, "failed", SETTLE).await;
    assert_eq!(failed["error"], "exited with code 3: no such file");

    // Cancel: the program and the child it started are both gone afterwards.
    let sleeping =
        server.trigger("script", json!({"script": "sleep 600 & echo child $!; echo self $$; wait"})).await;
    let mut pids = Vec::new();
    let started = std::time::Instant::now();
    while pids.len() < 2 {
        pids = log_messages(&server, &sleeping)
            .await
            .iter()
            .filter(|message| message.starts_with("child ") || message.starts_with("self "))
            .filter_map(|message| message.split_whitespace().nth(1).and_then(|pid| pid.parse::<u64>().ok()))
            .collect();
        assert!(started.elapsed() < SETTLE, "the script never said its pids");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pids.iter().all(|pid| is_alive(*pid)));
    let cancel = server.post(&format!("/api/executions/{sleeping}/cancel"), json!({})).await;
    assert_eq!(cancel.status, 202);
    server.wait_for(&sleeping, "cancelled", SETTLE).await;
    let started = std::time::Instant::now();
    while pids.iter().any(|pid| is_alive(*pid)) {
        assert!(started.elapsed() < SETTLE, "processes {pids:?} survived the cancel");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Timeout.
    let slow = server.trigger("slow-script", json!({"script": "sleep 600"})).await;
    let timed_out = server.wait_for(&slow, "timed_out", SETTLE).await;
    assert_eq!(timed_out["error"], "timed out after 1 s");
}
