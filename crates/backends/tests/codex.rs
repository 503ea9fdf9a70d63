//! The `codex` backend against a fake `codex` program that replays recorded `codex exec --json` output.

use std::path::PathBuf;
use std::time::Duration;

use dashboard_backend_api::{Backend, BackendError, RunContext, RunEntry, RunOutcome, log_channel};
use dashboard_backends::{CodexBackend, CodexConfig};
use dashboard_core::{ExecutionId, LogStream, NewItem, NewLogLine};
use serde_json::{Value, json};

/// A fresh working directory, where the fake writes the argv it received.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fake-codex-{}", ExecutionId::generate()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

fn backend(workdir: &std::path::Path) -> CodexBackend {
    CodexBackend::new(config(workdir))
}

fn config(workdir: &std::path::Path) -> CodexConfig {
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-codex");
    CodexConfig {
        command: fake.display().to_string(),
        args: vec!["--sandbox".into(), "workspace-write".into()],
        workdir: Some(workdir.to_owned()),
        kill_grace_secs: 1,
        ..CodexConfig::default()
    }
}

/// How a run of the fake went: its outcome, log lines, transcript items, the sessions it reported and the argv the
/// fake received.
struct Ran {
    outcome: Result<RunOutcome, BackendError>,
    lines: Vec<NewLogLine>,
    items: Vec<NewItem>,
    sessions: Vec<String>,
    argv: Vec<String>,
}

async fn run(prompt: &str) -> (Result<RunOutcome, BackendError>, Vec<NewLogLine>, Vec<String>) {
    let ran = run_with(prompt, |_| {}).await;
    (ran.outcome, ran.lines, ran.argv)
}

/// Runs the fake with the test's config, changed by `adjust`.
async fn run_with(prompt: &str, adjust: impl FnOnce(&mut CodexConfig)) -> Ran {
    run_turn(prompt, None, adjust).await
}

/// Runs the fake as a first turn, or as a follow-up turn of the thread `resume`.
async fn run_turn(prompt: &str, resume: Option<&str>, adjust: impl FnOnce(&mut CodexConfig)) -> Ran {
    let dir = workdir();
    let mut config = config(&dir);
    adjust(&mut config);
    let (sink, mut receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "fix-bug", json!({}), sink);
    context.prompt = Some(prompt.to_owned());
    context.resume = resume.map(str::to_owned);
    let outcome = CodexBackend::new(config).trigger(context).await;
    let (mut lines, mut items, mut sessions) = (Vec::new(), Vec::new(), Vec::new());
    while let Ok(entry) = receiver.try_recv() {
        match entry {
            RunEntry::Line(line) => lines.push(line),
            RunEntry::Item(item) => items.push(item),
            RunEntry::Session(session_id) => sessions.push(session_id),
            RunEntry::Diff(_) => {}
        }
    }
    let argv = std::fs::read_to_string(dir.join("argv.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ran { outcome, lines, items, sessions, argv }
}

fn has_line(lines: &[NewLogLine], stream: LogStream, text: &str) -> bool {
    lines.iter().any(|line| line.stream == stream && line.message == text)
}

#[tokio::test]
async fn a_successful_session_gives_logs_usage_and_the_last_message() {
    let (outcome, lines, argv) = run("please succeed at fixing parse").await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Fixed the off-by-one in parse; all tests pass."}));
    assert_eq!(
        usage,
        Some(json!({"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122}))
    );
    assert!(has_line(&lines, LogStream::Agent, "$ bash -lc 'cargo test -q' → exit code 101"), "{lines:?}");
    assert!(has_line(&lines, LogStream::Stdout, "test parse ... FAILED"));
    assert!(has_line(&lines, LogStream::Agent, "file update: src/parse.rs"));
    assert!(has_line(&lines, LogStream::Agent, "  [x] Find the bug"));
    assert!(has_line(&lines, LogStream::Agent, "Fixed the off-by-one in parse; all tests pass."));

    assert_eq!(&argv[..3], ["exec", "--json", "--skip-git-repo-check"]);
    assert!(argv.windows(2).any(|pair| pair == ["--sandbox", "workspace-write"]), "{argv:?}");
    assert_eq!(argv[argv.len() - 2..], ["--".to_owned(), "please succeed at fixing parse".to_owned()]);
    assert!(argv.contains(&"-C".to_owned()));
}

#[tokio::test]
async fn a_follow_up_turn_resumes_the_thread_with_codex_exec_resume() {
    let thread = "0199a213-81c0-7800-8aa1-bbab2a035a53";
    let first = run_turn("please succeed", None, |_| {}).await;
    assert_eq!(first.sessions, [thread], "thread.started names the session");
    assert!(!first.argv.contains(&"resume".to_owned()), "{:?}", first.argv);

    let next = run_turn("please succeed with the tests too", Some(thread), |_| {}).await;
    assert!(matches!(next.outcome, Ok(RunOutcome::Succeeded { .. })), "{:?}", next.outcome);
    let at = next.argv.iter().position(|arg| arg == "resume").expect("codex exec resume");
    assert_eq!(next.argv[at..], ["resume", thread, "--", "please succeed with the tests too"]);
    assert_eq!(&next.argv[..3], ["exec", "--json", "--skip-git-repo-check"], "exec's options before resume");
    assert!(
        next.argv[..at].windows(2).any(|pair| pair == ["--sandbox", "workspace-write"]),
        "{:?}",
        next.argv
    );

    let dir = workdir();
    assert!(backend(&dir).can_continue(), "the exec mode continues threads");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_event_longer_than_a_log_line_is_read_whole() {
    let (outcome, _, _) = run("a long-message please").await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "x".repeat(20_000)}));
}

#[tokio::test]
async fn an_event_over_max_event_bytes_is_skipped_with_a_line_naming_the_limit() {
    let Ran { outcome, lines, .. } =
        run_with("a long-message please", |config| config.max_event_bytes = 16 * 1024).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": null}));
    let skipped = "an event of codex is over the limit of 16 KiB (max_event_bytes); it is skipped";
    assert!(has_line(&lines, LogStream::Stderr, skipped), "{lines:?}");
    // Nothing of the skipped event reaches the log.
    assert!(lines.iter().all(|line| !line.message.contains("xxxx")), "{lines:?}");
}

/// Every item event of a Codex 0.169 run becomes a transcript item, in order, after the prompt.
#[tokio::test]
async fn every_item_type_becomes_a_transcript_item_in_order() {
    let Ran { outcome, items, .. } = run_with("show every-item please", |_| {}).await;
    assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");
    let reported: Vec<Value> = items.iter().map(|item| serde_json::to_value(item).expect("JSON")).collect();
    let summary: Vec<String> = reported
        .iter()
        .map(|item| format!("{} {} {}", item["id"], item["kind"], item["status"]).replace('"', ""))
        .collect();
    assert_eq!(
        summary,
        [
            "prompt message completed",
            "item_0 reasoning completed",
            "item_1 plan in_progress",
            "item_2 command in_progress",
            "item_2 command failed",
            "item_1 plan in_progress",
            "item_3 file_change completed",
            "item_4 tool_call in_progress",
            "item_4 tool_call completed",
            "item_5 web_search completed",
            "item_6 error completed",
            "item_1 plan completed",
            "item_7 message completed",
        ]
    );
    let fields = |index: usize, names: &[&str]| -> Value {
        names.iter().map(|name| ((*name).to_owned(), reported[index][*name].clone())).collect()
    };
    assert_eq!(fields(0, &["role", "text"]), json!({"role": "user", "text": "show every-item please"}));
    assert_eq!(fields(1, &["text"]), json!({"text": "**Planning the fix**"}));
    assert_eq!(
        fields(4, &["command", "output", "exit_code"]),
        json!({"command": "bash -lc 'cargo test -q'", "output": "test parse ... FAILED\n", "exit_code": 101})
    );
    assert_eq!(
        fields(6, &["changes"]),
        json!({"changes": [{"path": "src/parse.rs", "kind": "update", "diff": null},
                           {"path": "tests/parse.rs", "kind": "add", "diff": null}]})
    );
    assert_eq!(
        fields(8, &["server", "tool", "arguments", "result", "error"]),
        json!({"server": "github", "tool": "search_issues", "arguments": {"query": "parse off-by-one"},
               "result": {"content": [{"type": "text", "text": "#12"}], "structured_content": null},
               "error": null})
    );
    assert_eq!(fields(9, &["query"]), json!({"query": "rust str::split_at panics"}));
    assert_eq!(fields(10, &["message"]), json!({"message": "model gpt-5.5 is overloaded; falling back"}));
    assert_eq!(
        fields(11, &["entries"]),
        json!({"entries": [{"text": "Run the tests", "done": true}, {"text": "Fix parse", "done": true}]})
    );
    assert_eq!(
        fields(12, &["role", "text"]),
        json!({"role": "agent", "text": "Fixed parse and added a test."})
    );
}

/// Codex 0.169's usage, as it reports it: its new fields are kept with the others.
#[tokio::test]
async fn the_usage_of_0_169_keeps_reasoning_and_cache_write_tokens() {
    let Ran { outcome, lines, .. } = run_with("show every-item please", |_| {}).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "Fixed parse and added a test."}));
    assert_eq!(
        usage,
        Some(json!({"input_tokens": 31250, "cached_input_tokens": 28160, "cache_write_input_tokens": 2048,
                    "output_tokens": 406, "reasoning_output_tokens": 192}))
    );
    // An error item is a warning: logged, and the run still succeeds.
    assert!(
        has_line(&lines, LogStream::Stderr, "error: model gpt-5.5 is overloaded; falling back"),
        "{lines:?}"
    );
}

/// The notice Codex prints when its stdin is not a terminal is a plain stderr line, never part of an error.
#[tokio::test]
async fn the_stdin_notice_is_no_error() {
    let Ran { outcome, lines, .. } = run_with("show every-item please", |_| {}).await;
    assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");
    assert!(has_line(&lines, LogStream::Stderr, "Reading additional input from stdin..."), "{lines:?}");

    let Ran { outcome, .. } = run_with("stdin-crash now", |_| {}).await;
    assert_eq!(
        outcome.ok(),
        Some(RunOutcome::Failed {
            error: "codex exited with code 1: Error: model_provider \"fake\" not found".into()
        })
    );
}

#[test]
fn max_event_bytes_defaults_to_1_mib() {
    assert_eq!(CodexConfig::default().max_event_bytes, 1024 * 1024);
}

#[tokio::test]
async fn a_failed_turn_fails_with_its_message() {
    let (outcome, lines, _) = run("turn-fail please").await;
    assert_eq!(
        outcome.ok(),
        Some(RunOutcome::Failed {
            error: "stream disconnected before completion: rate limit reached".into()
        })
    );
    assert!(has_line(&lines, LogStream::Stderr, "error: Reconnecting... 1/5"), "{lines:?}");
}

#[tokio::test]
async fn a_crash_with_no_events_fails_with_the_stderr_tail() {
    let (outcome, lines, _) = run("crash now").await;
    assert_eq!(
        outcome.ok(),
        Some(RunOutcome::Failed {
            error: "codex exited with code 101: Error: failed to load config: missing field model_provider"
                .into()
        })
    );
    assert!(lines.iter().all(|line| line.stream == LogStream::Stderr));
}

#[tokio::test]
async fn a_missing_binary_says_how_to_install_it() {
    let (sink, _receiver) = log_channel(16);
    let missing =
        CodexBackend::new(CodexConfig { command: "no-such-codex-here".into(), ..CodexConfig::default() });
    let outcome = missing.trigger(RunContext::new(ExecutionId::generate(), "f", json!({}), sink)).await;
    let Ok(RunOutcome::Failed { error }) = outcome else { panic!("{outcome:?}") };
    assert!(
        error.starts_with("codex CLI not found: install it (npm i -g @openai/codex) or set `command`"),
        "{error}"
    );
    assert!(!missing.check().await.ready);
}

#[tokio::test]
async fn readiness_shows_the_version() {
    let dir = workdir();
    let readiness = backend(&dir).check().await;
    assert!(readiness.ready && readiness.detail.starts_with("codex-cli 0.0.0-fake"), "{readiness:?}");
}

#[tokio::test]
async fn a_cancelled_session_is_stopped() {
    let dir = workdir();
    let (sink, _receiver) = log_channel(64);
    let mut context = RunContext::new(ExecutionId::generate(), "f", json!({}), sink);
    context.prompt = Some("hang forever".into());
    let cancel = context.cancel.clone();
    let codex = backend(&dir);
    let task = tokio::spawn(async move { codex.trigger(context).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped in time")
        .expect("no panic");
    assert!(matches!(outcome, Err(BackendError::Cancelled)), "{outcome:?}");
}
