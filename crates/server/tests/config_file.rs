//! The config file end to end: the binary starts with `examples/agent-dashboard.toml` and shows what it declares;
//! a bad file stops start-up with a message naming the file, the entry and the field.

mod common;

use std::process::Command;

use common::binary::{BinaryServer, TestDir};
use serde_json::Value;

fn example_config() -> String {
    format!("{}/../../examples/agent-dashboard.toml", env!("CARGO_MANIFEST_DIR"))
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_declares_its_backends_and_functions() {
    let dir = TestDir::new("example-config");
    let server = BinaryServer::start(
        &dir,
        &[
            ("DASHBOARD_STORE", "memory".into()),
            ("DASHBOARD_CONFIG", example_config()),
            ("AGENTKIT_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        ],
    )
    .await;
    let backends = server.get("/api/backends").await.body;
    assert_eq!(names(&backends), ["agentkit", "codex", "demo", "local-llm", "shell"]);
    let kinds: Vec<&str> = backends["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["http", "codex", "demo", "openai", "command"]);
    assert!(!backends.to_string().contains("MfKQ9r8"), "a secret was shown");
    assert_eq!(names(&server.get("/api/functions").await.body), ["say-hello", "summarize", "triage-issue"]);
}

/// Runs the binary with a config file holding `text`; returns its exit success and what it printed.
fn start_with(text: &str) -> (bool, String) {
    let dir = TestDir::new("bad-config");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("a config file");
    let output = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"))
        .env("DASHBOARD_HOST", "127.0.0.1")
        .env("DASHBOARD_PORT", common::binary::free_port().to_string())
        .env("DASHBOARD_STORE", "memory")
        .env("DASHBOARD_CONFIG", &path)
        .output()
        .expect("the binary runs");
    let printed =
        String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    (output.status.success(), printed)
}

#[test]
fn a_bad_config_stops_start_up_naming_file_entry_and_field() {
    let (started, printed) = start_with("[[backends]]\nname = \"llm\"\nkind = \"opneai\"\n");
    assert!(!started);
    assert!(
        printed.contains("bad.toml: backends[0] (\"llm\"): kind: unknown kind \"opneai\"; known kinds:"),
        "{printed}"
    );
    let (started, printed) = start_with(
        "[[backends]]\nname = \"hook\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nsecret_env = \"NO_SUCH_SECRET_VARIABLE\"\n",
    );
    assert!(!started);
    assert!(
        printed.contains(
            "backends[0] (\"hook\"): secret_env: the environment variable NO_SUCH_SECRET_VARIABLE is not set"
        ),
        "{printed}"
    );
}
