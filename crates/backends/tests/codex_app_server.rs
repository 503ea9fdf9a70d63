//! The `codex` backend's `app-server` mode against a fake `codex app-server` (a script that answers the handshake
//! and plays a scenario named in the prompt), checking what reaches the dashboard, what the fake received, and what
//! its approval requests asked of a test gate that records them and answers as the test scripts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{
    ApprovalAnswer, ApprovalGate, ApprovalRequest, ApproveAll, Backend, BackendError, RunContext, RunEntry,
    RunOutcome, UsageMeter, log_channel,
};
use dashboard_backends::{BackendConfig, CodexApproval, CodexBackend, CodexConfig, CodexMode, CodexSandbox};
use dashboard_core::{ApprovalKind, ApprovalPolicy, Decision, ExecutionId, LogStream, NewItem, NewLogLine};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A gate that records every request and answers each with the next answer the test sends it, waiting for one as
/// long as it takes (a test that keeps its sender and sends nothing gets a gate that never answers).
#[derive(Debug)]
struct TestGate {
    asked: Mutex<Vec<ApprovalRequest>>,
    answers: tokio::sync::Mutex<mpsc::UnboundedReceiver<ApprovalAnswer>>,
}

#[async_trait]
impl ApprovalGate for TestGate {
    async fn ask(&self, request: ApprovalRequest) -> ApprovalAnswer {
        self.asked.lock().expect("an unpoisoned lock").push(request);
        let answer = self.answers.lock().await.recv().await;
        answer.unwrap_or_else(|| ApprovalAnswer::new(Decision::Decline, "the test, which ended"))
    }
}

impl TestGate {
    /// A gate, and where its answers come from.
    fn new() -> (Arc<Self>, mpsc::UnboundedSender<ApprovalAnswer>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let gate = Self { asked: Mutex::new(Vec::new()), answers: tokio::sync::Mutex::new(receiver) };
        (Arc::new(gate), sender)
    }

    /// A gate that gives these answers, in order.
    fn answering(answers: impl IntoIterator<Item = ApprovalAnswer>) -> Arc<Self> {
        let (gate, sender) = Self::new();
        for answer in answers {
            sender.send(answer).expect("the gate listens");
        }
        gate
    }

    fn asked(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().expect("an unpoisoned lock").clone()
    }
}

fn answer(decision: Decision, by: &str) -> ApprovalAnswer {
    ApprovalAnswer::new(decision, by)
}

/// How a run of the fake went: its outcome, log lines, transcript items, and every message the fake received.
struct Ran {
    outcome: Result<RunOutcome, BackendError>,
    lines: Vec<NewLogLine>,
    items: Vec<Value>,
    /// Each diff reported, in order (the last is the turn's).
    diffs: Vec<String>,
    sessions: Vec<String>,
    received: Vec<Value>,
    /// Each usage reported while the run went on (`run.report_usage`), in order.
    usage_reports: Vec<Value>,
}

/// A meter that keeps every usage report.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<Value>>);

impl UsageMeter for Recorder {
    fn report(&self, usage: &Value) {
        self.0.lock().expect("an unpoisoned lock").push(usage.clone());
    }
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

/// Runs the fake on `prompt` as the first turn of a thread, with a gate that approves everything; `cancel_after`,
/// when given, cancels the run that long after it starts.
async fn run(prompt: &str, cancel_after: Option<Duration>) -> Ran {
    run_turn(prompt, cancel_after, None, Arc::new(ApproveAll)).await
}

/// Runs the fake on `prompt`, its approval requests going to `gate`.
async fn run_asking(prompt: &str, gate: Arc<dyn ApprovalGate>) -> Ran {
    run_turn(prompt, None, None, gate).await
}

/// A run of the fake under way: where its entries arrive, how to cancel it, and its outcome to come.
struct Started {
    dir: PathBuf,
    receiver: mpsc::Receiver<RunEntry>,
    cancel: CancellationToken,
    outcome: tokio::task::JoinHandle<Result<RunOutcome, BackendError>>,
    meter: Arc<Recorder>,
}

/// Starts the fake on `prompt`, as a follow-up turn of the thread `resume` when given.
fn start(prompt: &str, resume: Option<&str>, gate: Arc<dyn ApprovalGate>) -> Started {
    let dir = std::env::temp_dir().join(format!("fake-codex-app-server-{}", ExecutionId::generate()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let (sink, receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "fix-bug", json!({}), sink);
    context.prompt = Some(prompt.to_owned());
    context.resume = resume.map(str::to_owned);
    context.approvals = gate;
    let meter = Arc::new(Recorder::default());
    context.meter = meter.clone();
    let cancel = context.cancel.clone();
    let backend = CodexBackend::new(config(&dir));
    let outcome = tokio::spawn(async move { backend.trigger(context).await });
    Started { dir, receiver, cancel, outcome, meter }
}

/// Runs the fake on `prompt`, as a follow-up turn of the thread `resume` when given.
async fn run_turn(
    prompt: &str,
    cancel_after: Option<Duration>,
    resume: Option<&str>,
    gate: Arc<dyn ApprovalGate>,
) -> Ran {
    let started = start(prompt, resume, gate);
    if let Some(after) = cancel_after {
        let cancel = started.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    finish(started).await
}

/// Waits for the run to end, and gathers what it reported and what the fake received.
async fn finish(started: Started) -> Ran {
    let Started { dir, mut receiver, outcome, meter, .. } = started;
    let outcome = outcome.await.expect("the run does not panic");
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
    let usage_reports = std::mem::take(&mut *meter.0.lock().expect("an unpoisoned lock"));
    Ran { outcome, lines, items, diffs, sessions, received, usage_reports }
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
    let Ran { outcome, lines, items, diffs, sessions, received, usage_reports } =
        run("a full-turn please", None).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Fixed parse; the tests pass."}));
    // Each report was told to the meter as it came, so a budget can stop the turn; the last is the run's usage.
    let told: Vec<&Value> = usage_reports.iter().map(|report| &report["total_tokens"]).collect();
    assert_eq!(told, [&json!(105), &json!(280)]);
    assert_eq!(usage_reports.last(), usage.as_ref());
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
        run_turn("a follow-up please", None, Some("thr_earlier"), Arc::new(ApproveAll)).await;
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

/// The answers the fake received (every message without a method), in order.
fn answers(received: &[Value]) -> Vec<&Value> {
    received.iter().filter(|message| message.get("method").is_none()).collect()
}

/// Runs the one-command approval scenario with a gate answering `decision`: the answer the fake received to its
/// request, and the run.
async fn command_answered(decision: Decision) -> (Value, Ran) {
    let gate = TestGate::answering([answer(decision, "alice")]);
    let ran = run_asking("needs approval", gate.clone()).await;
    let asked = gate.asked();
    let [request] = asked.as_slice() else { panic!("one request: {asked:?}") };
    assert_eq!(
        (request.kind, request.summary.as_str(), request.item_id.as_deref(), request.grant_key.as_deref()),
        (ApprovalKind::Command, "rm -rf build", Some("cmd_2"), Some("rm -rf build"))
    );
    assert_eq!(request.details, json!({"command": "rm -rf build", "cwd": "/w", "reason": null}));
    let first = answers(&ran.received).first().map(|answer| (*answer).clone()).expect("an answer");
    (first, ran)
}

#[tokio::test]
async fn an_approved_command_is_accepted_under_the_request_id() {
    let (first, Ran { outcome, lines, items, received, .. }) = command_answered(Decision::Approve).await;
    assert_eq!(first, json!({"id": "srv_0", "result": {"decision": "accept"}}));
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Removed build/."}));
    assert_eq!(last(&items, "cmd_2")["status"], "completed");
    for line in ["codex asks to run `rm -rf build`", "approved by alice"] {
        assert!(has_line(&lines, LogStream::System, line), "{line}: {lines:?}");
    }
    // A request that asks no decision is refused as not supported.
    assert_eq!(
        answers(&received)[1],
        &json!({"id": "srv_1", "error": {"code": -32601, "message": "not supported"}})
    );
}

#[tokio::test]
async fn an_approval_for_the_session_is_accept_for_session() {
    let (first, Ran { lines, .. }) = command_answered(Decision::ApproveForSession).await;
    assert_eq!(first, json!({"id": "srv_0", "result": {"decision": "acceptForSession"}}));
    assert!(has_line(&lines, LogStream::System, "approved for the session by alice"), "{lines:?}");
}

#[tokio::test]
async fn a_declined_command_is_declined_never_cancelled() {
    let (first, Ran { outcome, lines, items, .. }) = command_answered(Decision::Decline).await;
    assert_eq!(first, json!({"id": "srv_0", "result": {"decision": "decline"}}));
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "I was not allowed to remove build/."}));
    assert_eq!(last(&items, "cmd_2")["status"], "declined");
    assert!(has_line(&lines, LogStream::System, "declined by alice"), "{lines:?}");
}

#[tokio::test]
async fn each_kind_of_request_reaches_the_gate_and_is_answered_in_its_shape() {
    let mut answered = answer(Decision::Approve, "bob");
    answered.answers = Some(json!({"color": ["blue"]}));
    let gate = TestGate::answering([
        answer(Decision::ApproveForSession, "alice"),
        answer(Decision::Approve, "alice"),
        answered,
        answer(Decision::Approve, "policy"),
        {
            let mut declined = answer(Decision::Decline, "carol");
            declined.note = Some("not that file".into());
            declined
        },
    ]);
    let Ran { outcome, lines, received, .. } = run_asking("every-kind please", gate.clone()).await;
    assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");

    let asked: Vec<Value> = gate
        .asked()
        .iter()
        .map(|request| {
            json!({"kind": request.kind, "summary": request.summary, "details": request.details,
                   "item_id": request.item_id, "grant_key": request.grant_key})
        })
        .collect();
    assert_eq!(
        asked,
        [
            json!({"kind": "file_change", "summary": "/w/notes.txt",
                   "details": {"changes": [{"path": "/w/notes.txt", "kind": "add", "diff": "hello\n"}],
                               "reason": "write the notes"},
                   "item_id": "fc_2", "grant_key": null}),
            json!({"kind": "permission", "summary": "network access",
                   "details": {"permissions": {"network": {"enabled": true}, "fileSystem": null}, "cwd": "/w",
                               "reason": "fetch dependencies"},
                   "item_id": "perm_1", "grant_key": null}),
            json!({"kind": "question", "summary": "Which color?",
                   "details": {"questions": [{"id": "color", "header": "Color", "question": "Which color?",
                                              "options": [{"label": "red", "description": "warm"},
                                                          {"label": "blue", "description": "cool"}]}]},
                   "item_id": "q_1", "grant_key": null}),
            json!({"kind": "command", "summary": "git push",
                   "details": {"command": "git push", "cwd": "/w", "reason": null},
                   "item_id": "call_7", "grant_key": "git push"}),
            json!({"kind": "file_change", "summary": "a.txt",
                   "details": {"changes": [{"path": "a.txt", "kind": "add", "diff": "hi\n"}], "reason": null},
                   "item_id": "call_8", "grant_key": null}),
        ]
    );
    assert_eq!(
        answers(&received),
        [
            &json!({"id": "srv_fc", "result": {"decision": "acceptForSession"}}),
            &json!({"id": "srv_perm", "result": {"permissions": {"network": {"enabled": true}, "fileSystem": null},
                                                 "scope": "turn"}}),
            &json!({"id": "srv_q", "result": {"answers": {"color": {"answers": ["blue"]}}}}),
            &json!({"id": 7, "result": {"decision": "approved"}}),
            &json!({"id": 8, "result": {"decision": {"denied": {"rejection": "not that file"}}}}),
        ]
    );
    for line in [
        "codex asks to change /w/notes.txt",
        "approved for the session by alice",
        "codex asks for network access",
        "codex asks: Which color?",
        "answered by bob",
        "codex asks to run `git push`",
        "approved by policy",
        "codex asks to change a.txt",
        "declined by carol: not that file",
    ] {
        assert!(has_line(&lines, LogStream::System, line), "{line}: {lines:?}");
    }
}

/// Reads the run's entries as they come until a line with `text`, keeping them all.
async fn read_until(receiver: &mut mpsc::Receiver<RunEntry>, text: &str, seen: &mut Vec<NewLogLine>) {
    let wait = async {
        while let Some(entry) = receiver.recv().await {
            if let Some(line) = entry.into_line() {
                let is_it = line.message == text;
                seen.push(line);
                if is_it {
                    return;
                }
            }
        }
        panic!("the run ended before {text:?}: {seen:?}");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {text:?} within 10 s: {seen:?}"));
}

#[tokio::test]
async fn notifications_are_read_while_an_approval_is_pending() {
    let (gate, answers_to_give) = TestGate::new();
    let mut started = start("while-pending please", None, gate.clone());
    let mut seen = Vec::new();
    // The warning Codex sends after its request is logged while the gate still waits.
    read_until(&mut started.receiver, "warning: still here while you decide", &mut seen).await;
    assert_eq!(gate.asked().len(), 1, "asked once, not answered yet");
    assert!(seen.iter().all(|line| !line.message.starts_with("approved")), "{seen:?}");
    answers_to_give.send(answer(Decision::Approve, "alice")).expect("the gate listens");
    let Ran { outcome, lines, received, .. } = finish(started).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Removed build/."}));
    assert!(has_line(&lines, LogStream::System, "approved by alice"), "{lines:?}");
    assert_eq!(answers(&received), [&json!({"id": "srv_0", "result": {"decision": "accept"}})]);
}

#[tokio::test]
async fn a_request_codex_withdraws_is_no_longer_asked_or_answered() {
    let (gate, _answers_never_given) = TestGate::new();
    let Ran { outcome, lines, received, .. } = run_asking("withdrawn please", gate.clone()).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Never mind."}));
    // Withdrawn at once, the ask may be dropped before the gate even saw it.
    assert!(gate.asked().len() <= 1);
    assert!(
        has_line(&lines, LogStream::System, "codex withdrew its request before it was answered"),
        "{lines:?}"
    );
    assert_eq!(answers(&received), Vec::<&Value>::new());
}

#[tokio::test]
async fn a_cancel_while_an_approval_is_pending_interrupts_the_turn_and_returns_promptly() {
    let (gate, _answers_never_given) = TestGate::new();
    let mut started = start("stop-while-asking please", None, gate.clone());
    let mut seen = Vec::new();
    read_until(&mut started.receiver, "codex asks to run `rm -rf build`", &mut seen).await;
    let cancelled_at = std::time::Instant::now();
    started.cancel.cancel();
    let Ran { outcome, received, .. } = finish(started).await;
    assert!(matches!(outcome, Err(BackendError::Cancelled)), "{outcome:?}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(5), "{:?}", cancelled_at.elapsed());
    let interrupt = method(&received, "turn/interrupt");
    assert_eq!(interrupt["params"], json!({"threadId": "thr_1", "turnId": "turn_1"}));
    assert_eq!(answers(&received), Vec::<&Value>::new(), "the pending ask was dropped, never answered");
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

#[test]
fn a_codex_that_never_asks_refuses_the_ask_and_deny_policies() {
    let backend =
        |mode, approval| CodexBackend::new(CodexConfig { mode, approval, ..CodexConfig::default() });
    let never = backend(CodexMode::AppServer, Some(CodexApproval::Never));
    assert_eq!(
        never.refuses_approval_policy(ApprovalPolicy::Ask).as_deref(),
        Some(
            "backend codex has approval = \"never\": Codex never asks, so approval_policy \"ask\" would never apply"
        )
    );
    let deny = never.refuses_approval_policy(ApprovalPolicy::Deny).unwrap_or_default();
    assert!(deny.contains("approval = \"never\"") && deny.contains("approval_policy \"deny\""), "{deny}");
    assert_eq!(never.refuses_approval_policy(ApprovalPolicy::Auto), None);

    for approval in [None, Some(CodexApproval::OnRequest), Some(CodexApproval::Untrusted)] {
        let asks = backend(CodexMode::AppServer, approval);
        for policy in [ApprovalPolicy::Auto, ApprovalPolicy::Ask, ApprovalPolicy::Deny] {
            assert_eq!(asks.refuses_approval_policy(policy), None, "{approval:?} {policy}");
        }
    }

    let exec = backend(CodexMode::Exec, None);
    let refusal = exec.refuses_approval_policy(ApprovalPolicy::Ask).unwrap_or_default();
    assert!(refusal.contains("codex exec") && refusal.contains("approval_policy \"ask\""), "{refusal}");
    assert!(exec.refuses_approval_policy(ApprovalPolicy::Deny).is_some());
    assert_eq!(exec.refuses_approval_policy(ApprovalPolicy::Auto), None);
}
