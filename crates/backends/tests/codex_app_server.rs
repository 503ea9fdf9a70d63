//! The `codex` backend's `app-server` mode against a fake `codex app-server` (a script that answers the handshake
//! and plays a scenario named in the prompt), checking what reaches the dashboard and what the fake received.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dashboard_backend_api::{Backend, BackendError, RunContext, RunEntry, RunOutcome, log_channel};
use dashboard_backends::{BackendConfig, CodexApproval, CodexBackend, CodexConfig, CodexMode, CodexSandbox};
use dashboard_core::{ExecutionId, LogStream, NewItem, NewLogLine};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How a run of the fake went: its outcome, log lines, transcript items, and every message the fake received.
struct Ran {
    outcome: Result<RunOutcome, BackendError>,
    lines: Vec<NewLogLine>,
    items: Vec<Value>,
    /// Each diff reported, in order (the last is the turn's).
    diffs: Vec<String>,
    sessions: Vec<String>,
    received: Vec<Value>,
}

fn config(workdir: &Path) -> CodexConfig {
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-codex-app-server");
    CodexConfig {
        mode: CodexMode::AppServer,
        command: fake.display().to_string(),
        workdir: Some(workdir.to_owned()),
        kill_grace_secs: 1,
        sandbox: Some(CodexSandbox::WorkspaceWrite),
        approval: Some(CodexApproval::OnRequest),
        ..CodexConfig::default()
    }
}

/// Runs the fake on `prompt` as the first turn of a thread; `cancel_after`, when given, cancels the run that long
/// after it starts.
async fn run(prompt: &str, cancel_after: Option<Duration>) -> Ran {
    run_turn(prompt, cancel_after, None).await
}

/// Runs the fake on `prompt`, as a follow-up turn of the thread `resume` when given.
async fn run_turn(prompt: &str, cancel_after: Option<Duration>, resume: Option<&str>) -> Ran {
    let dir = std::env::temp_dir().join(format!("fake-codex-app-server-{}", ExecutionId::generate()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (sink, mut receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "fix-bug", json!({}), sink);
    context.prompt = Some(prompt.to_owned());
    context.resume = resume.map(str::to_owned);
    let cancel: CancellationToken = context.cancel.clone();
    if let Some(after) = cancel_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    let outcome = CodexBackend::new(config(&dir)).trigger(context).await;
    let (mut lines, mut items, mut diffs, mut sessions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Ok(entry) = receiver.try_recv() {
        match entry {
            RunEntry::Line(line) => lines.push(line),
            RunEntry::Item(item) => items.push(summary(&item)),
            RunEntry::Diff(diff) => diffs.push(diff),
            RunEntry::Session(session) => sessions.push(session),
        }
    }
    let received = std::fs::read_to_string(dir.join("received.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("the backend sends JSON"))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ran { outcome, lines, items, diffs, sessions, received }
}

fn summary(item: &NewItem) -> Value {
    serde_json::to_value(item).expect("an item is JSON")
}

fn has_line(lines: &[NewLogLine], stream: LogStream, text: &str) -> bool {
    lines.iter().any(|line| line.stream == stream && line.message == text)
}

/// The last state reported of the item `id`.
fn last<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items.iter().rev().find(|item| item["id"] == id).unwrap_or_else(|| panic!("no item {id} in {items:?}"))
}

fn method(received: &[Value], method: &str) -> Value {
    received
        .iter()
        .find(|message| message["method"] == method)
        .cloned()
        .unwrap_or_else(|| panic!("no {method} in {received:?}"))
}

#[tokio::test]
async fn a_turn_with_a_command_a_file_change_and_a_message() {
    let Ran { outcome, lines, items, diffs, sessions, received } = run("a full-turn please", None).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Fixed parse; the tests pass."}));
    // Thread totals: the last report replaces the first.
    assert_eq!(
        usage,
        Some(json!({"input_tokens": 250, "cached_input_tokens": 40, "cache_write_input_tokens": 8,
                    "output_tokens": 30, "reasoning_output_tokens": 12, "total_tokens": 280}))
    );

    let order: Vec<String> = items
        .iter()
        .map(|item| format!("{} {} {}", item["id"], item["kind"], item["status"]).replace('"', ""))
        .collect();
    assert_eq!(order.first().map(String::as_str), Some("prompt message completed"), "{order:?}");
    assert!(order.contains(&"cmd_1 command in_progress".to_owned()), "{order:?}");
    assert_eq!(
        last(&items, "cmd_1"),
        &json!({"id": "cmd_1", "status": "completed", "kind": "command", "command": "cargo test", "cwd": "/w",
                "output": "test parse ... ok\ntest result: ok", "exit_code": 0})
    );
    assert_eq!(
        last(&items, "fc_1")["changes"],
        json!([{"path": "src/parse.rs", "kind": "update", "diff": "@@ -1 +1 @@\n-a\n+b\n"},
               {"path": "NOTES.md", "kind": "add", "diff": "hello\n"}])
    );
    assert_eq!(last(&items, "msg_1")["text"], "Fixed parse; the tests pass.");
    assert_eq!(last(&items, "msg_1")["status"], "completed");
    assert_eq!(
        diffs.last().map(String::as_str),
        Some("diff --git a/src/parse.rs b/src/parse.rs\n-a\n+b\ndiff --git a/NOTES.md b/NOTES.md\n+hello\n")
    );
    assert_eq!(sessions, ["thr_1"], "the thread is the session");

    // The command's output is logged as it streams, its last line when it ends.
    for (stream, text) in [
        (LogStream::System, "codex thread thr_1 started"),
        (LogStream::Agent, "$ cargo test"),
        (LogStream::Stdout, "test parse ... ok"),
        (LogStream::Stdout, "test result: ok"),
        (LogStream::Agent, "$ cargo test → exit code 0"),
        (LogStream::Agent, "file update: src/parse.rs"),
        (LogStream::Agent, "file add: NOTES.md"),
        (LogStream::Agent, "Fixed parse; the tests pass."),
    ] {
        assert!(has_line(&lines, stream, text), "{text}: {lines:?}");
    }
    // Unknown notifications leave no trace in the log.
    assert!(lines.iter().all(|line| !line.message.contains("something/new")), "{lines:?}");

    let methods: Vec<&str> = received.iter().filter_map(|message| message["method"].as_str()).collect();
    assert_eq!(methods, ["initialize", "initialized", "thread/start", "turn/start"]);
    let thread = method(&received, "thread/start");
    assert_eq!(thread["params"]["sandbox"], "workspace-write");
    assert_eq!(thread["params"]["approvalPolicy"], "on-request");
    let turn = method(&received, "turn/start");
    assert_eq!(
        turn["params"],
        json!({"threadId": "thr_1", "input": [{"type": "text", "text": "a full-turn please"}]})
    );
}

#[tokio::test]
async fn a_follow_up_resumes_the_thread_and_counts_only_its_own_turn() {
    assert!(
        CodexBackend::new(config(Path::new("."))).can_continue(),
        "the app-server mode continues threads"
    );
    let Ran { outcome, sessions, received, .. } =
        run_turn("a follow-up please", None, Some("thr_earlier")).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Done, as you asked."}));
    // The thread's totals at the end, less its totals before this turn's first request (1,150 − 150).
    assert_eq!(
        usage,
        Some(json!({"input_tokens": 420, "cached_input_tokens": 300, "output_tokens": 30,
                    "reasoning_output_tokens": 7, "total_tokens": 450}))
    );
    assert_eq!(sessions, ["thr_earlier"], "the session stays the thread");

    let methods: Vec<&str> = received.iter().filter_map(|message| message["method"].as_str()).collect();
    assert_eq!(methods, ["initialize", "initialized", "thread/resume", "turn/start"]);
    let resume = method(&received, "thread/resume");
    assert_eq!(resume["params"]["threadId"], "thr_earlier");
    assert_eq!(
        resume["params"]["sandbox"], "workspace-write",
        "the backend's settings apply to the resumed thread"
    );
    assert_eq!(resume["params"]["approvalPolicy"], "on-request");
    let turn = method(&received, "turn/start");
    assert_eq!(
        turn["params"],
        json!({"threadId": "thr_earlier", "input": [{"type": "text", "text": "a follow-up please"}]})
    );
}

#[tokio::test]
async fn a_failed_turn_fails_with_its_error() {
    let Ran { outcome, lines, .. } = run("please fail-turn", None).await;
    assert!(
        matches!(&outcome, Ok(RunOutcome::Failed { error }) if error == "usage limit reached"),
        "{outcome:?}"
    );
    assert!(has_line(&lines, LogStream::Stderr, "error: stream disconnected (retrying)"), "{lines:?}");
    assert!(has_line(&lines, LogStream::Stderr, "turn failed: usage limit reached"), "{lines:?}");
}

#[tokio::test]
async fn a_cancel_interrupts_the_turn_and_the_run_ends_cancelled() {
    let started = std::time::Instant::now();
    let Ran { outcome, received, .. } = run("hang please", Some(Duration::from_millis(500))).await;
    assert!(matches!(outcome, Err(BackendError::Cancelled)), "{outcome:?}");
    let interrupt = method(&received, "turn/interrupt");
    assert_eq!(interrupt["params"], json!({"threadId": "thr_1", "turnId": "turn_1"}));
    // The turn ended at once, so the server was stopped without waiting out its `sleep`.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_approval_request_is_declined_and_logged_and_other_requests_are_refused() {
    let Ran { outcome, lines, items, received, .. } = run("needs approval", None).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "I was not allowed to remove build/."}));
    let declined = "codex asked for approval of `rm -rf build`: declined, approvals are not available yet in this \
                    version of the dashboard";
    assert!(has_line(&lines, LogStream::System, declined), "{lines:?}");
    let answers: Vec<&Value> = received.iter().filter(|message| message.get("method").is_none()).collect();
    assert_eq!(answers[0], &json!({"id": "srv_0", "result": {"decision": "decline"}}));
    assert_eq!(answers[1], &json!({"id": "srv_1", "error": {"code": -32601, "message": "not supported"}}));
    assert_eq!(last(&items, "cmd_2")["status"], "declined");
}

#[tokio::test]
async fn a_server_that_exits_mid_turn_fails_the_run_with_its_stderr() {
    let Ran { outcome, .. } = run("crash now", None).await;
    let Ok(RunOutcome::Failed { error }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        error,
        "codex app-server exited with code 3 before the turn ended: thread 'main' panicked: model provider unreachable"
    );
}

#[test]
fn the_mode_and_codex_settings_are_read_from_the_backend_entry() {
    let entry =
        json!({"kind": "codex", "mode": "app-server", "sandbox": "danger-full-access", "approval": "never"});
    let Ok(BackendConfig::Codex(config)) = serde_json::from_value::<BackendConfig>(entry) else {
        panic!("refused")
    };
    assert_eq!(
        (config.mode, config.sandbox, config.approval),
        (CodexMode::AppServer, Some(CodexSandbox::DangerFullAccess), Some(CodexApproval::Never))
    );
    let Ok(BackendConfig::Codex(config)) = serde_json::from_value::<BackendConfig>(json!({"kind": "codex"}))
    else {
        panic!("refused")
    };
    assert_eq!((config.mode, config.sandbox, config.approval), (CodexMode::Exec, None, None));
    let wrong = json!({"kind": "codex", "sandbox": "none-at-all"});
    let error = serde_json::from_value::<BackendConfig>(wrong).expect_err("an unknown sandbox");
    assert!(error.to_string().contains("sandbox"), "{error}");
}
