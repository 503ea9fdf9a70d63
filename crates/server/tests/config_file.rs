//! The config file end to end: the binary starts with `examples/agent-dashboard.toml` and shows what it declares;
//! a bad file stops start-up with a message naming the file, the entry and the field; instances that start together
//! on one store create each declared function once.

mod common;
#[path = "common/hooked_store.rs"]
mod hooked_store;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::binary::{BinaryServer, TestDir};
use dashboard_backends::DemoBackend;
use dashboard_core::FunctionSpec;
use dashboard_engine::Dashboard;
use dashboard_server::config_file::sync_functions;
use dashboard_store::{DashboardStore, FunctionKey, MemoryStore};
use hooked_store::{Hook, HookedStore};
use serde_json::{Value, json};

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
    let schedules = server.get("/api/schedules").await.body;
    let [schedule] = schedules["items"].as_array().expect("items").as_slice() else { panic!("{schedules}") };
    assert_eq!(
        (&schedule["function"], &schedule["cron"], &schedule["timezone"], &schedule["input"]),
        (&json!("say-hello"), &json!("0 9 * * 1-5"), &json!("Europe/Berlin"), &json!({"name": "team"}))
    );
    assert!(schedule["next_run_at"].is_string(), "{schedule}");
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
    let function =
        "[[backends]]\nname = \"demo\"\nkind = \"demo\"\n[[functions]]\nname = \"f\"\nbackend = \"demo\"\n";
    let (started, printed) =
        start_with(&format!("{function}[[schedules]]\nfunction = \"g\"\ncron = \"* * * * *\"\n"));
    assert!(!started);
    assert!(printed.contains("schedules[0]: function: no [[functions]] entry is called \"g\""), "{printed}");
    let (started, printed) =
        start_with(&format!("{function}[[schedules]]\nfunction = \"f\"\ncron = \"61 * * * *\"\n"));
    assert!(!started);
    assert!(printed.contains("bad.toml: schedules[0] (\"f\"): cron: "), "{printed}");
    let (started, printed) =
        start_with(&format!("{function}[[schedules]]\nfunction = \"f\"\ncron = \"* * * * *\"\nevery = 2\n"));
    assert!(!started);
    assert!(printed.contains("schedules[0]: every: unknown field"), "{printed}");
}

/// Two instances that start together on one store sync the same file at once. The store holds the first read of each
/// at a barrier until the other has read too, so both find the same thing and both write: a function missing from
/// the store is created once (version 1) and the other instance's create, refused as a duplicate, is no error; a
/// function the file changed is updated once (version 2), not once per instance.
#[tokio::test]
async fn two_instances_syncing_one_file_at_once_create_and_update_each_function_once() {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let reads_to_hold = Arc::new(AtomicUsize::new(0));
    let (held, gate) = (reads_to_hold.clone(), barrier.clone());
    let hook: Hook = Arc::new(move |method| {
        let is_held = method == "get_function"
            && held.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok();
        let gate = gate.clone();
        Box::pin(async move {
            if is_held {
                gate.wait().await;
            }
            Ok(())
        })
    });
    let store: Arc<dyn DashboardStore> = Arc::new(HookedStore::new(Arc::new(MemoryStore::default()), hook));
    let instance = || Dashboard::builder().store(store.clone()).backend("demo", DemoBackend).build();
    let (first, second) = (instance(), instance());
    let version = async |name: &str| {
        let function = store.get_function(&FunctionKey::Name(name.into())).await.expect("memory store");
        function.map(|function| (function.version, function.description))
    };

    let mut specs = vec![FunctionSpec::new("triage", "demo"), FunctionSpec::new("review", "demo")];
    reads_to_hold.store(2, Ordering::SeqCst);
    let (a, b) = tokio::join!(sync_functions(&first, &specs), sync_functions(&second, &specs));
    let (a, b) = (a.expect("the first instance syncs"), b.expect("the second instance syncs"));
    assert_eq!((a.0 + b.0, a.1 + b.1), (2, 0), "created and updated, by both: {a:?} {b:?}");
    assert_eq!(version("triage").await, Some((1, String::new())));
    assert_eq!(version("review").await, Some((1, String::new())));

    specs[0].description = "Triage an issue.".into();
    reads_to_hold.store(2, Ordering::SeqCst);
    let (a, b) = tokio::join!(sync_functions(&first, &specs), sync_functions(&second, &specs));
    let (a, b) = (a.expect("the first instance syncs"), b.expect("the second instance syncs"));
    assert_eq!((a.0 + b.0, a.1 + b.1), (0, 1), "created and updated, by both: {a:?} {b:?}");
    assert_eq!(version("triage").await, Some((2, "Triage an issue.".to_owned())));
    assert_eq!(version("review").await, Some((1, String::new())));
}
