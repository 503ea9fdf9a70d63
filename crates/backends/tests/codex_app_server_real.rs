//! The `codex` backend's `app-server` mode against the real Codex CLI (0.169, from npm), pointed at a local fake
//! Responses API that this test starts, scripted to answer each model request in turn (a message, a call of the shell
//! tool `exec_command`, an `apply_patch`) and keeping every request it is sent: nothing leaves 127.0.0.1. A first
//! turn and a follow-up on its thread; a command and a patch becoming transcript items; and with Codex's own
//! approval policy `untrusted` in a read-only sandbox, a command that needs approval going through a test gate that
//! approves, declines, or never answers before a cancel. Without `codex` on `PATH` the tests skip, saying why —
//! unless `CI` and `DASHBOARD_REQUIRE_CODEX=1` are set, where they fail.

#[path = "support/fake_model.rs"]
mod fake_model;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashboard_backend_api::{
    ApprovalAnswer, ApprovalGate, ApprovalRequest, ApproveAll, Backend, BackendError, RunContext, RunEntry,
    RunOutcome, log_channel,
};
use dashboard_backends::{CodexApproval, CodexBackend, CodexConfig, CodexMode, CodexSandbox};
use dashboard_core::{ApprovalKind, Decision, ExecutionId, LogStream, NewLogLine};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::fake_model::{CodexFolder, FakeModel, Step, codex_is_installed};

/// A gate that records every request and answers each with the next answer the test sends it, waiting as long as
/// it takes (a test that keeps its sender and sends nothing gets a gate that never answers).
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
    fn new() -> (Arc<Self>, mpsc::UnboundedSender<ApprovalAnswer>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let gate = Self { asked: Mutex::new(Vec::new()), answers: tokio::sync::Mutex::new(receiver) };
        (Arc::new(gate), sender)
    }

    fn asked(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().expect("an unpoisoned lock").clone()
    }
}

/// The real Codex, pointed at a fake model server that plays a script.
struct Setup {
    /// Kept for its `Drop`, which removes the folder.
    _folder: CodexFolder,
    work: std::path::PathBuf,
    config: CodexConfig,
    model: FakeModel,
}

/// What one turn reported.
struct Turn {
    outcome: Result<RunOutcome, BackendError>,
    sessions: Vec<String>,
    lines: Vec<NewLogLine>,
    items: Vec<Value>,
    diffs: Vec<String>,
}

/// The real Codex, pointed at a fake model that answers every request with one message.
async fn set_up(answer: &str) -> Setup {
    set_up_scripted(Vec::new(), answer).await
}

/// The real Codex, pointed at a fake model that answers with `steps`, then with the message `closing`. Codex runs
/// with approval `never` in a read-only sandbox unless the test changes `config`.
async fn set_up_scripted(steps: Vec<Step>, closing: &str) -> Setup {
    let model = FakeModel::start(steps, closing).await;
    let folder = CodexFolder::new(&model.base_url);
    let config = CodexConfig {
        mode: CodexMode::AppServer,
        command: folder.wrapper.display().to_string(),
        workdir: Some(folder.work.clone()),
        env_passthrough: Vec::new(),
        sandbox: Some(CodexSandbox::ReadOnly),
        approval: Some(CodexApproval::Never),
        kill_grace_secs: 2,
        ..CodexConfig::default()
    };
    Setup { work: folder.work.clone(), _folder: folder, config, model }
}

impl Setup {
    /// Runs one turn of `prompt`, as a follow-up of the thread `resume` when given: its outcome and the sessions
    /// (threads) it reported.
    async fn turn(
        &self,
        prompt: &str,
        resume: Option<&str>,
    ) -> (Result<RunOutcome, BackendError>, Vec<String>) {
        let turn = self.turn_with(prompt, resume, Arc::new(ApproveAll), CancellationToken::new()).await;
        (turn.outcome, turn.sessions)
    }

    /// Runs one turn of `prompt` whose approval requests go to `gate`, stopped when `cancel` fires.
    async fn turn_with(
        &self,
        prompt: &str,
        resume: Option<&str>,
        gate: Arc<dyn ApprovalGate>,
        cancel: CancellationToken,
    ) -> Turn {
        let (sink, mut receiver) = log_channel(65_536);
        let mut context = RunContext::new(ExecutionId::generate(), "check", json!({}), sink);
        context.prompt = Some(prompt.into());
        context.resume = resume.map(str::to_owned);
        context.approvals = gate;
        context.cancel = cancel;
        let outcome = CodexBackend::new(self.config.clone()).trigger(context).await;
        let mut turn =
            Turn { outcome, sessions: Vec::new(), lines: Vec::new(), items: Vec::new(), diffs: Vec::new() };
        while let Ok(entry) = receiver.try_recv() {
            match entry {
                RunEntry::Session(session) => turn.sessions.push(session),
                RunEntry::Line(line) => turn.lines.push(line),
                RunEntry::Item(item) => turn.items.push(serde_json::to_value(item).expect("an item is JSON")),
                RunEntry::Diff(diff) => turn.diffs.push(diff),
            }
        }
        turn
    }

    /// The bodies of the model requests so far.
    fn model_requests(&self) -> Vec<String> {
        self.model.model_requests()
    }

    /// The outputs of tool calls that the model requests carried, each once, in order.
    fn tool_outputs(&self) -> Vec<String> {
        self.model.tool_outputs()
    }
}

fn input_tokens(usage: Option<&Value>) -> Option<u64> {
    usage.and_then(|usage| usage["input_tokens"].as_u64())
}

#[tokio::test]
async fn a_turn_of_the_real_codex_whose_answer_is_a_message_succeeds_with_it() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up("Nothing to change: the tests already pass.").await;
    let (outcome, _) = setup.turn("Do the tests pass?", None).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else {
        panic!("{outcome:?}; requests: {:?}", setup.model_requests())
    };
    assert_eq!(output, json!({"message": "Nothing to change: the tests already pass."}));
    assert_eq!(input_tokens(usage.as_ref()), Some(120), "{usage:?}");
}

#[tokio::test]
async fn a_follow_up_continues_the_thread_with_its_messages_and_counts_only_its_turn() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up("Nothing to change: the tests already pass.").await;
    let (first, sessions) = setup.turn("Do the tests pass?", None).await;
    assert!(matches!(first, Ok(RunOutcome::Succeeded { .. })), "{first:?}");
    let [thread] = sessions.as_slice() else { panic!("one thread: {sessions:?}") };
    let n_first_requests = setup.model_requests().len();

    let (next, sessions) = setup.turn("And the lints, are they clean?", Some(thread)).await;
    let Ok(RunOutcome::Succeeded { usage, .. }) = next else {
        panic!("{next:?}; requests: {:?}", setup.model_requests())
    };
    assert_eq!(sessions, [thread.as_str()], "the follow-up runs on the same thread");
    // The model sees the first turn's messages in the follow-up's request.
    let requests = setup.model_requests();
    let follow_up = requests.get(n_first_requests).expect("the follow-up asked the model");
    for said in ["Do the tests pass?", "Nothing to change: the tests already pass.", "And the lints"] {
        assert!(follow_up.contains(said), "{said:?} not in the follow-up's request: {follow_up}");
    }
    // The thread's total is now 240 input tokens; the follow-up spent 120 of them.
    assert_eq!(input_tokens(usage.as_ref()), Some(120), "{usage:?}");
}

/// The last state reported of the item `id`.
fn last<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items.iter().rev().find(|item| item["id"] == id).unwrap_or_else(|| panic!("no item {id} in {items:?}"))
}

fn has_line(lines: &[NewLogLine], stream: LogStream, text: &str) -> bool {
    lines.iter().any(|line| line.stream == stream && line.message == text)
}

#[tokio::test]
async fn a_command_the_model_runs_becomes_a_command_item_with_its_exit_code_and_output() {
    if !codex_is_installed() {
        return;
    }
    let setup =
        set_up_scripted(vec![Step::Command("echo hello-from-codex")], "It printed the greeting.").await;
    let turn = setup.turn_with("Say hello.", None, Arc::new(ApproveAll), CancellationToken::new()).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "It printed the greeting."}));
    // Codex's item id is the model's call id.
    let command = last(&turn.items, "call_0");
    assert_eq!(
        (&command["kind"], &command["status"], &command["exit_code"]),
        (&json!("command"), &json!("completed"), &json!(0))
    );
    assert!(
        command["command"].as_str().is_some_and(|text| text.contains("echo hello-from-codex")),
        "{command}"
    );
    assert_eq!(command["output"].as_str().map(str::trim), Some("hello-from-codex"), "{command}");
    assert!(has_line(&turn.lines, LogStream::Stdout, "hello-from-codex"), "{:?}", turn.lines);
    let outputs = setup.tool_outputs();
    assert!(outputs.iter().any(|output| output.contains("hello-from-codex")), "{outputs:?}");
}

#[tokio::test]
async fn a_patch_the_model_applies_becomes_a_file_change_item_and_the_diff() {
    if !codex_is_installed() {
        return;
    }
    let patch = "*** Begin Patch\n*** Update File: greeting.txt\n@@\n-hello\n+hello, world\n*** Add File: notes.txt\n+remember the milk\n*** End Patch\n";
    let mut setup = set_up_scripted(vec![Step::Patch(patch)], "Edited the greeting.").await;
    setup.config.sandbox = Some(CodexSandbox::WorkspaceWrite);
    std::fs::write(setup.work.join("greeting.txt"), "hello\n").expect("write the greeting");
    let turn =
        setup.turn_with("Greet the world.", None, Arc::new(ApproveAll), CancellationToken::new()).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "Edited the greeting."}));
    let change = last(&turn.items, "call_0");
    assert_eq!(
        (&change["kind"], &change["status"]),
        (&json!("file_change"), &json!("completed")),
        "{change}"
    );
    let changes = change["changes"].as_array().cloned().unwrap_or_default();
    let of = |name: &str| {
        changes
            .iter()
            .find(|change| change["path"].as_str().is_some_and(|path| path.ends_with(name)))
            .unwrap_or_else(|| panic!("no change of {name}: {changes:?}"))
            .clone()
    };
    let (updated, added) = (of("greeting.txt"), of("notes.txt"));
    assert_eq!(updated["kind"], "update");
    assert!(
        updated["diff"]
            .as_str()
            .is_some_and(|diff| diff.contains("-hello") && diff.contains("+hello, world")),
        "{updated}"
    );
    assert_eq!((&added["kind"], &added["diff"]), (&json!("add"), &json!("remember the milk\n")));
    let diff = turn.diffs.last().expect("the turn's diff");
    for part in ["a/greeting.txt", "+hello, world", "b/notes.txt", "+remember the milk"] {
        assert!(diff.contains(part), "{part:?} not in {diff}");
    }
    assert_eq!(
        std::fs::read_to_string(setup.work.join("greeting.txt")).ok().as_deref(),
        Some("hello, world\n")
    );
}

/// A setup where Codex asks before it runs `touch made.txt`: approval `untrusted`, in a read-only sandbox.
async fn set_up_asking(closing: &str) -> Setup {
    let mut setup = set_up_scripted(vec![Step::Command("touch made.txt && echo made")], closing).await;
    setup.config.approval = Some(CodexApproval::Untrusted);
    setup.config.sandbox = Some(CodexSandbox::ReadOnly);
    setup
}

/// The one request the gate was asked: a command to touch made.txt, about the command's item.
fn the_command_asked(gate: &TestGate) -> ApprovalRequest {
    let asked = gate.asked();
    let [request] = asked.as_slice() else { panic!("one request: {asked:?}") };
    assert_eq!(request.kind, ApprovalKind::Command);
    assert!(request.summary.contains("touch made.txt && echo made"), "{request:?}");
    assert_eq!(request.grant_key.as_deref(), Some(request.summary.as_str()));
    assert_eq!(request.item_id.as_deref(), Some("call_0"));
    request.clone()
}

#[tokio::test]
async fn a_command_the_gate_approves_runs_and_the_turn_ends_with_the_message() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up_asking("Made it.").await;
    let (gate, answers) = TestGate::new();
    answers.send(ApprovalAnswer::new(Decision::Approve, "alice")).expect("the gate listens");
    let turn = setup.turn_with("Make the file.", None, gate.clone(), CancellationToken::new()).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "Made it."}));
    let request = the_command_asked(&gate);
    assert_eq!(request.details["cwd"].as_str(), setup.work.to_str(), "{request:?}");
    assert!(setup.work.join("made.txt").exists(), "the approved command ran");
    assert_eq!(last(&turn.items, "call_0")["exit_code"], 0);
    assert!(has_line(&turn.lines, LogStream::System, "approved by alice"), "{:?}", turn.lines);
    let outputs = setup.tool_outputs();
    assert!(outputs.iter().any(|output| output.contains("exited with code 0")), "{outputs:?}");
}

#[tokio::test]
async fn a_command_the_gate_declines_is_reported_to_the_model_as_rejected() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up_asking("I was not allowed to make the file.").await;
    let (gate, answers) = TestGate::new();
    answers.send(ApprovalAnswer::new(Decision::Decline, "alice")).expect("the gate listens");
    let turn = setup.turn_with("Make the file.", None, gate.clone(), CancellationToken::new()).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "I was not allowed to make the file."}));
    the_command_asked(&gate);
    assert!(!setup.work.join("made.txt").exists(), "the declined command never ran");
    assert_eq!(last(&turn.items, "call_0")["status"], "declined");
    assert!(has_line(&turn.lines, LogStream::System, "declined by alice"), "{:?}", turn.lines);
    // The model's next request tells it the command was rejected.
    let outputs = setup.tool_outputs();
    assert!(outputs.iter().any(|output| output.contains("rejected by user")), "{outputs:?}");
}

#[tokio::test]
async fn a_cancel_while_the_gate_waits_interrupts_the_turn_and_the_run_returns() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up_asking("unreachable").await;
    let (gate, _answers_never_given) = TestGate::new();
    let cancel = CancellationToken::new();
    let stop = async {
        let asked = async {
            while gate.asked().is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), asked).await.expect("codex asks within 30 s");
        cancel.cancel();
        Instant::now()
    };
    let (turn, cancelled_at) =
        tokio::join!(setup.turn_with("Make the file.", None, gate.clone(), cancel.clone()), stop);
    assert!(matches!(turn.outcome, Err(BackendError::Cancelled)), "{:?}", turn.outcome);
    the_command_asked(&gate);
    assert!(cancelled_at.elapsed() < Duration::from_secs(10), "{:?}", cancelled_at.elapsed());
    // Codex ended the turn when it was asked to: the process group was not stopped for want of an answer.
    let stuck = "codex did not end the turn after turn/interrupt; stopping it";
    assert!(!has_line(&turn.lines, LogStream::System, stuck), "{:?}", turn.lines);
    assert!(!setup.work.join("made.txt").exists());
    assert_eq!(setup.model_requests().len(), 1, "no answer reached the model");
}
