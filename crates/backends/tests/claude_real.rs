//! The `claude` backend against the real Claude Code CLI (2.1.332, from npm), pointed at a local fake Anthropic
//! Messages API that this test starts, scripted to answer each model request in turn (a message, a call of the Bash
//! tool, a Write, an Edit) and keeping every request it is sent; the fake is also the CLI's proxy for any other host,
//! so nothing leaves 127.0.0.1 and what tried to would be seen. A turn that answers, one that runs commands, one that
//! writes and edits a file, a follow-up that resumes the session, the turn limit, and a cancel while a command runs.
//! Without `claude` on `PATH` the tests skip, saying why — unless `CI` and `DASHBOARD_REQUIRE_CLAUDE=1` are set,
//! where they fail.

#[path = "support/fake_anthropic.rs"]
mod fake_anthropic;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_backend_api::{
    Backend, BackendError, RunContext, RunEntry, RunOutcome, UsageMeter, log_channel,
};
use dashboard_backends::{ClaudeBackend, ClaudeConfig};
use dashboard_core::{ExecutionId, LogStream, NewLogLine};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::fake_anthropic::{ClaudeFolder, FakeAnthropic, Step, claude_is_installed};

/// The real Claude Code, pointed at a fake model that plays a script.
struct Setup {
    folder: ClaudeFolder,
    config: ClaudeConfig,
    model: FakeAnthropic,
}

/// What one run reported.
struct Turn {
    outcome: Result<RunOutcome, BackendError>,
    sessions: Vec<String>,
    lines: Vec<NewLogLine>,
    items: Vec<Value>,
    /// The usage reports to the run's meter, in order.
    reports: Vec<Value>,
}

/// A meter that keeps every usage reported.
#[derive(Debug, Default)]
struct Meter(Mutex<Vec<Value>>);

impl UsageMeter for Meter {
    fn report(&self, usage: &Value) {
        self.0.lock().expect("an unpoisoned lock").push(usage.clone());
    }
}

/// The real Claude Code, pointed at a fake model that answers with calls of the steps `steps` gives for the work dir,
/// then with the message `closing`; it may use `tools` without asking.
async fn set_up(steps: impl FnOnce(&Path) -> Vec<Step>, closing: &str, tools: &[&str]) -> Setup {
    let model = FakeAnthropic::start(Vec::new(), closing).await;
    let folder = ClaudeFolder::new(&model.base_url);
    model.set_steps(steps(&folder.work));
    let config = ClaudeConfig {
        command: folder.wrapper.display().to_string(),
        workdir: Some(folder.work.clone()),
        allowed_tools: tools.iter().map(|tool| (*tool).to_owned()).collect(),
        // The wrapper sets the key and the base URL.
        api_key_env: String::new(),
        env_passthrough: Vec::new(),
        kill_grace_secs: 2,
        ..ClaudeConfig::default()
    };
    Setup { folder, config, model }
}

impl Setup {
    async fn turn(&self, prompt: &str, resume: Option<&str>) -> Turn {
        self.turn_with(prompt, resume, CancellationToken::new()).await
    }

    async fn turn_with(&self, prompt: &str, resume: Option<&str>, cancel: CancellationToken) -> Turn {
        let (sink, mut receiver) = log_channel(65_536);
        let mut context = RunContext::new(ExecutionId::generate(), "check", json!({}), sink);
        context.prompt = Some(prompt.into());
        context.resume = resume.map(str::to_owned);
        context.cancel = cancel;
        let meter = Arc::new(Meter::default());
        context.meter = meter.clone();
        let outcome = ClaudeBackend::new(self.config.clone()).trigger(context).await;
        let reports = meter.0.lock().expect("an unpoisoned lock").clone();
        let mut turn = Turn { outcome, sessions: Vec::new(), lines: Vec::new(), items: Vec::new(), reports };
        while let Ok(entry) = receiver.try_recv() {
            match entry {
                RunEntry::Session(session) => turn.sessions.push(session),
                RunEntry::Line(line) => turn.lines.push(line),
                RunEntry::Item(item) => turn.items.push(serde_json::to_value(item).expect("an item is JSON")),
                RunEntry::Diff(_) => {}
            }
        }
        assert_eq!(
            self.model.other_requests(),
            Vec::<String>::new(),
            "requests that would have left 127.0.0.1"
        );
        turn
    }
}

fn has_line(lines: &[NewLogLine], stream: LogStream, text: &str) -> bool {
    lines.iter().any(|line| line.stream == stream && line.message == text)
}

/// The last state reported of the item `id`.
fn last<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items.iter().rev().find(|item| item["id"] == id).unwrap_or_else(|| panic!("no item {id} in {items:?}"))
}

/// The lines other than the system's, in order.
fn said(lines: &[NewLogLine]) -> Vec<&str> {
    lines.iter().filter(|line| line.stream != LogStream::System).map(|line| line.message.as_str()).collect()
}

#[tokio::test]
async fn a_turn_whose_answer_is_a_message_succeeds_with_it_its_usage_and_its_session() {
    if !claude_is_installed() {
        return;
    }
    let setup = set_up(|_| Vec::new(), "Nothing to change: the tests already pass.", &[]).await;
    let turn = setup.turn("Do the tests pass?", None).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "Nothing to change: the tests already pass."}));
    let usage = usage.as_ref().expect("a usage");
    let fields =
        ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "total_tokens"];
    let counts: Vec<&Value> = fields.iter().map(|field| &usage[*field]).collect();
    assert_eq!(counts, [&json!(150), &json!(30), &json!(20), &json!(12), &json!(162)], "{usage}");
    assert!(usage["cost_usd"].as_f64().is_some_and(|cost| cost > 0.0), "Claude Code's own cost: {usage}");
    assert!(usage["model"].is_string(), "{usage}");
    let [session] = turn.sessions.as_slice() else { panic!("one session: {:?}", turn.sessions) };
    let started = format!("claude session {session} started");
    assert!(turn.lines.iter().any(|line| line.message.starts_with(&started)), "{:?}", turn.lines);
    assert!(has_line(&turn.lines, LogStream::Agent, "Nothing to change: the tests already pass."));
    let requests = setup.model.model_requests();
    assert_eq!(requests.len(), 1, "one model request");
    assert!(requests[0].contains("Do the tests pass?"), "the prompt reached the model");
}

#[tokio::test]
async fn commands_the_model_runs_become_command_items_with_their_output_and_exit_code() {
    if !claude_is_installed() {
        return;
    }
    let steps = |_: &Path| {
        vec![Step::Bash("echo hello-from-claude".into()), Step::Bash("echo oops >&2; exit 3".into())]
    };
    let setup = set_up(steps, "It printed the greeting.", &["Bash"]).await;
    let turn = setup.turn("Say hello.", None).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "It printed the greeting."}));
    let hello = last(&turn.items, "toolu_0");
    assert_eq!(
        (&hello["kind"], &hello["status"], &hello["command"], &hello["output"], &hello["exit_code"]),
        (
            &json!("command"),
            &json!("completed"),
            &json!("echo hello-from-claude"),
            &json!("hello-from-claude"),
            &json!(0)
        )
    );
    let oops = last(&turn.items, "toolu_1");
    assert_eq!(
        (&oops["status"], &oops["output"], &oops["exit_code"]),
        (&json!("failed"), &json!("oops"), &json!(3))
    );
    assert_eq!(
        said(&turn.lines),
        [
            "$ echo hello-from-claude",
            "hello-from-claude",
            "$ echo hello-from-claude → exit code 0",
            "$ echo oops >&2; exit 3",
            "oops",
            "$ echo oops >&2; exit 3 → exit code 3",
            "It printed the greeting.",
        ]
    );
    let results = setup.model.tool_results();
    assert!(results.iter().any(|result| result.contains("hello-from-claude")), "{results:?}");
}

#[tokio::test]
async fn a_file_the_model_writes_then_edits_becomes_file_change_items_with_diffs() {
    if !claude_is_installed() {
        return;
    }
    let steps = |work: &Path| {
        let notes = work.join("notes.txt").display().to_string();
        vec![
            Step::Write { path: notes.clone(), content: "remember the milk\n" },
            Step::Edit { path: notes, old: "milk", new: "bread" },
        ]
    };
    let setup = set_up(steps, "Wrote the notes.", &["Write", "Edit"]).await;
    let turn = setup.turn("Write the notes.", None).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert_eq!(output, &json!({"message": "Wrote the notes."}));
    let notes = setup.folder.work.join("notes.txt");
    assert_eq!(std::fs::read_to_string(&notes).ok().as_deref(), Some("remember the bread\n"));
    let path = notes.display().to_string();
    let (written, edited) = (last(&turn.items, "toolu_0"), last(&turn.items, "toolu_1"));
    assert_eq!((&written["kind"], &written["status"]), (&json!("file_change"), &json!("completed")));
    assert_eq!(written["changes"], json!([{"path": path, "kind": "add", "diff": "remember the milk\n"}]));
    assert_eq!(
        edited["changes"],
        json!([{"path": path, "kind": "update",
                "diff": "@@ -1,1 +1,1 @@\n-remember the milk\n+remember the bread\n"}])
    );
    let (add, update) = (format!("file add: {path}"), format!("file update: {path}"));
    assert!(has_line(&turn.lines, LogStream::Agent, &add), "{:?}", turn.lines);
    assert!(has_line(&turn.lines, LogStream::Agent, &update), "{:?}", turn.lines);
}

#[tokio::test]
async fn a_follow_up_resumes_the_session_and_the_model_sees_the_first_turn() {
    if !claude_is_installed() {
        return;
    }
    let setup = set_up(|_| Vec::new(), "The tests pass.", &[]).await;
    let first = setup.turn("Do the tests pass?", None).await;
    assert!(matches!(first.outcome, Ok(RunOutcome::Succeeded { .. })), "{:?}", first.outcome);
    let [session] = first.sessions.as_slice() else { panic!("one session: {:?}", first.sessions) };

    let next = setup.turn("And the lints, are they clean?", Some(session)).await;
    let Ok(RunOutcome::Succeeded { usage, .. }) = &next.outcome else {
        panic!("{:?}; lines: {:?}", next.outcome, next.lines)
    };
    assert_eq!(next.sessions, [session.as_str()], "the follow-up runs in the same session");
    let requests = setup.model.model_requests();
    let follow_up = requests.last().expect("the follow-up asked the model");
    for earlier in ["Do the tests pass?", "The tests pass.", "And the lints, are they clean?"] {
        assert!(follow_up.contains(earlier), "{earlier:?} not in the follow-up's request");
    }
    // The follow-up counts its own model request only, its cost too (the session's total counts both turns).
    let usage = usage.as_ref().expect("a usage");
    assert_eq!(usage["input_tokens"], 150, "{usage}");
    let first_cost = match &first.outcome {
        Ok(RunOutcome::Succeeded { usage: Some(usage), .. }) => usage["cost_usd"].as_f64(),
        _ => None,
    };
    assert_eq!(usage["cost_usd"].as_f64(), first_cost, "the same request costs the same");
}

#[tokio::test]
async fn the_turn_limit_ends_the_run_as_a_failure_that_says_so() {
    if !claude_is_installed() {
        return;
    }
    let mut setup = set_up(|_| vec![Step::Bash("echo one".into())], "unreachable", &["Bash"]).await;
    setup.config.max_turns = Some(1);
    let turn = setup.turn("Run it.", None).await;
    let Ok(RunOutcome::Failed { error }) = &turn.outcome else {
        panic!("{:?}; lines: {:?}", turn.outcome, turn.lines)
    };
    assert!(error.starts_with("claude stopped at its turn limit (max_turns): "), "{error}");
}

/// Whether a process whose command line holds `marker` is running (a zombie is not).
fn is_running_with(marker: &str) -> bool {
    let Ok(processes) = std::fs::read_dir("/proc") else { return false };
    processes.flatten().any(|process| {
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(process.path().join("stat")).unwrap_or_default();
        let is_zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
        !is_zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(marker)
    })
}

#[tokio::test]
async fn a_cancel_while_a_command_runs_ends_the_turn_and_leaves_no_process_behind() {
    if !claude_is_installed() {
        return;
    }
    // A command that never ends by itself, with a mark of its own to find it by: `tail` waits 0.<pid>1 s between
    // reads.
    let interval = format!("0.{}1", std::process::id());
    let command = format!("tail -f -s {interval} /dev/null");
    let setup = set_up(|_| vec![Step::Bash(command.clone())], "unreachable", &["Bash"]).await;
    let cancel = CancellationToken::new();
    let mark = format!("-s {interval}");
    let stop = async {
        let running = async {
            while !is_running_with(&mark) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), running).await.expect("the command runs within 60 s");
        cancel.cancel();
        Instant::now()
    };
    let (turn, cancelled_at) = tokio::join!(setup.turn_with("Wait.", None, cancel.clone()), stop);
    assert!(matches!(turn.outcome, Err(BackendError::Cancelled)), "{:?}", turn.outcome);
    let took = cancelled_at.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    let gone = async {
        while is_running_with(&mark) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(5), gone).await.is_ok(), "the command outlived the run");
    // Claude Code ended the turn itself on SIGINT, and said what it had spent.
    let stuck = "claude did not exit within 3 s of SIGINT; stopping its process group";
    assert!(!has_line(&turn.lines, LogStream::System, stuck), "{:?}", turn.lines);
    assert!(
        turn.lines.iter().any(|line| line.message.starts_with("claude used 150 input tokens")),
        "{:?}",
        turn.lines
    );
    // The usage so far went to the meter while the command ran, and the interrupted run's cost at its end.
    assert_eq!(
        turn.reports.first().map(|report| &report["input_tokens"]),
        Some(&json!(100)),
        "{:?}",
        turn.reports
    );
    let spent = turn.reports.last().expect("a usage report");
    assert!(spent["cost_usd"].as_f64().is_some_and(|cost| cost > 0.0), "{spent}");
}
