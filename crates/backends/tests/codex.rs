//! The `codex` backend against a fake `codex` program that replays recorded `codex exec --json` output.

use std::path::PathBuf;
use std::time::Duration;

use dashboard_backend_api::{Backend, BackendError, RunContext, RunOutcome, log_channel};
use dashboard_backends::{CodexBackend, CodexConfig};
use dashboard_core::{ExecutionId, LogStream, NewLogLine};
use serde_json::json;

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

async fn run(prompt: &str) -> (Result<RunOutcome, BackendError>, Vec<NewLogLine>, Vec<String>) {
    run_with(prompt, |_| {}).await
}

/// Runs the fake with the test's config, changed by `adjust`.
async fn run_with(
    prompt: &str,
    adjust: impl FnOnce(&mut CodexConfig),
) -> (Result<RunOutcome, BackendError>, Vec<NewLogLine>, Vec<String>) {
    let dir = workdir();
    let mut config = config(&dir);
    adjust(&mut config);
    let (sink, mut receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "fix-bug", json!({}), sink);
    context.prompt = Some(prompt.to_owned());
    let outcome = CodexBackend::new(config).trigger(context).await;
    let mut lines = Vec::new();
    while let Ok(line) = receiver.try_recv() {
        lines.push(line);
    }
    let argv = std::fs::read_to_string(dir.join("argv.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (outcome, lines, argv)
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
async fn an_event_longer_than_a_log_line_is_read_whole() {
    let (outcome, _, _) = run("a long-message please").await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": "x".repeat(20_000)}));
}

#[tokio::test]
async fn an_event_over_max_event_bytes_is_skipped_with_a_line_naming_the_limit() {
    let (outcome, lines, _) =
        run_with("a long-message please", |config| config.max_event_bytes = 16 * 1024).await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"message": null}));
    let skipped = "an event of codex is over the limit of 16 KiB (max_event_bytes); it is skipped";
    assert!(has_line(&lines, LogStream::Stderr, skipped), "{lines:?}");
    // Nothing of the skipped event reaches the log.
    assert!(lines.iter().all(|line| !line.message.contains("xxxx")), "{lines:?}");
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
