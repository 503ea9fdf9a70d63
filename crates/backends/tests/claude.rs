//! The `claude` backend against a fake `claude` program that replays recorded `claude -p --output-format stream-json
//! --verbose` output of Claude Code 2.1.332, and records the argv, stdin and environment it was given.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_backend_api::{
    Backend, BackendError, Callback, RunContext, RunEntry, RunOutcome, UsageMeter, log_channel,
};
use dashboard_backends::{ClaudeBackend, ClaudeConfig};
use dashboard_core::{ApprovalPolicy, ExecutionId, LogStream, NewLogLine};
use serde_json::{Value, json};

/// A fresh working directory, where the fake writes what it was given.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fake-claude-{}", ExecutionId::generate()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

fn config(workdir: &Path) -> ClaudeConfig {
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-claude");
    ClaudeConfig {
        command: fake.display().to_string(),
        workdir: Some(workdir.to_owned()),
        // A variable cargo sets for every test: its value stands in for a key.
        api_key_env: "CARGO_PKG_NAME".into(),
        env_passthrough: Vec::new(),
        kill_grace_secs: 1,
        ..ClaudeConfig::default()
    }
}

/// A meter that keeps every usage reported.
#[derive(Debug, Default)]
struct Meter(Mutex<Vec<Value>>);

impl UsageMeter for Meter {
    fn report(&self, usage: &Value) {
        self.0.lock().expect("an unpoisoned lock").push(usage.clone());
    }
}

/// How a run of the fake went, and what it was given.
struct Ran {
    outcome: Result<RunOutcome, BackendError>,
    lines: Vec<NewLogLine>,
    items: Vec<Value>,
    sessions: Vec<String>,
    /// The usage reports to the run's meter, in order.
    reports: Vec<Value>,
    argv: Vec<String>,
    stdin: String,
    env: Vec<String>,
    signals: String,
}

/// Runs the fake with `prompt`, the test's config changed by `adjust` and the context by `prepare`.
async fn run_with(
    prompt: &str,
    adjust: impl FnOnce(&mut ClaudeConfig),
    prepare: impl FnOnce(&mut RunContext),
) -> Ran {
    let dir = workdir();
    let mut config = config(&dir);
    adjust(&mut config);
    let (sink, mut receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "fix-bug", json!({}), sink);
    context.prompt = Some(prompt.to_owned());
    let meter = Arc::new(Meter::default());
    context.meter = meter.clone();
    prepare(&mut context);
    let outcome = ClaudeBackend::new(config).trigger(context).await;
    let (mut lines, mut items, mut sessions) = (Vec::new(), Vec::new(), Vec::new());
    while let Ok(entry) = receiver.try_recv() {
        match entry {
            RunEntry::Line(line) => lines.push(line),
            RunEntry::Item(item) => items.push(serde_json::to_value(item).expect("an item is JSON")),
            RunEntry::Session(session_id) => sessions.push(session_id),
            RunEntry::Diff(_) => {}
        }
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let ran = Ran {
        outcome,
        lines,
        items,
        sessions,
        reports: meter.0.lock().expect("an unpoisoned lock").clone(),
        argv: read("argv.txt").lines().map(str::to_owned).collect(),
        stdin: read("stdin.txt"),
        env: read("env.txt").lines().map(str::to_owned).collect(),
        signals: read("signals.txt"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    ran
}

async fn run(prompt: &str) -> Ran {
    run_with(prompt, |_| {}, |_| {}).await
}

fn has_line(lines: &[NewLogLine], stream: LogStream, text: &str) -> bool {
    lines.iter().any(|line| line.stream == stream && line.message == text)
}

/// The log as `[stream] message` lines, to compare in order.
fn log_of(lines: &[NewLogLine]) -> Vec<String> {
    lines.iter().map(|line| format!("[{}] {}", line.stream, line.message)).collect()
}

#[tokio::test]
async fn a_successful_run_gives_lines_items_the_session_the_output_and_the_usage() {
    let Ran { outcome, lines, items, sessions, reports, .. } =
        run("please succeed at fixing the notes").await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else { panic!("{outcome:?}") };
    // The usage so far after each of the five model requests — their output counted as the messages began — then
    // the whole run's, the same as the outcome's.
    let inputs: Vec<&Value> = reports.iter().map(|report| &report["input_tokens"]).collect();
    assert_eq!(inputs, [&json!(100), &json!(200), &json!(300), &json!(400), &json!(500), &json!(750)]);
    assert_eq!(reports[4]["output_tokens"], 5);
    assert_eq!(reports.last(), usage.as_ref(), "the last report is the run's usage");
    assert_eq!(output, json!({"message": "Fixed the notes; the tests pass."}));
    let usage = usage.expect("a usage");
    // Five model requests of 100 input, 30 cache-read, 20 cache-write and 12 output tokens each.
    let fields =
        ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "total_tokens"];
    let counts: Vec<&Value> = fields.iter().map(|field| &usage[*field]).collect();
    assert_eq!(counts, [&json!(750), &json!(150), &json!(100), &json!(60), &json!(810)]);
    let cost = usage["cost_usd"].as_f64().unwrap_or_default();
    assert!((cost - 0.00373).abs() < 1e-9, "{usage}");
    assert_eq!(usage["model"], "claude-opus-5-5");
    assert_eq!(usage["raw"]["cache_read_input_tokens"], 150, "raw is the result's usage");
    assert_eq!(sessions.len(), 1, "{sessions:?}");

    let log: Vec<String> = log_of(&lines).into_iter().filter(|line| !line.starts_with("[system]")).collect();
    assert_eq!(
        log,
        [
            "[agent] thinking: The tests first.",
            "[agent] Running the tests.",
            "[agent] $ echo test parse ... ok",
            "[stdout] test parse ... ok",
            "[agent] $ echo test parse ... ok → exit code 0",
            "[agent] $ echo oops >&2; exit 3",
            "[stdout] oops",
            "[agent] $ echo oops >&2; exit 3 → exit code 3",
            "[agent] writing /srv/repo/notes.txt",
            "[agent] file add: /srv/repo/notes.txt",
            "[agent] editing /srv/repo/notes.txt",
            "[agent] file update: /srv/repo/notes.txt",
            "[agent] Fixed the notes; the tests pass.",
        ]
    );
    let session_line = format!("claude session {} started (model claude-opus-5-5)", sessions[0]);
    assert!(has_line(&lines, LogStream::System, &session_line), "{lines:?}");
    let spent = "claude used 750 input tokens (150 cached), 60 output tokens, $0.0037";
    assert!(has_line(&lines, LogStream::System, spent), "{lines:?}");

    let summary: Vec<String> =
        items.iter().map(|item| format!("{} {}", item["kind"], item["status"]).replace('"', "")).collect();
    assert_eq!(
        summary,
        [
            "message completed",
            "reasoning completed",
            "message completed",
            "command in_progress",
            "command completed",
            "command in_progress",
            "command failed",
            "file_change in_progress",
            "file_change completed",
            "file_change in_progress",
            "file_change completed",
            "message completed",
        ]
    );
    assert_eq!((&items[0]["id"], &items[0]["role"]), (&json!("prompt"), &json!("user")));
    assert_eq!((&items[6]["exit_code"], &items[6]["output"]), (&json!(3), &json!("oops")));
    assert_eq!(
        items[8]["changes"],
        json!([{"path": "/srv/repo/notes.txt", "kind": "add", "diff": "remember the milk\n"}])
    );
    assert_eq!(
        items[10]["changes"],
        json!([{"path": "/srv/repo/notes.txt", "kind": "update",
                "diff": "@@ -1,1 +1,1 @@\n-remember the milk\n+remember the bread\n"}])
    );
}

#[tokio::test]
async fn the_prompt_reaches_claude_intact_on_stdin_and_the_settings_as_flags() {
    let prompt = "-please succeed with \"quotes\", 'single ones', $HOME and `ticks`\nand a second line\n";
    let Ran { outcome, argv, stdin, .. } = run_with(
        prompt,
        |config| {
            config.model = Some("claude-opus-5-5".into());
            config.max_turns = Some(12);
            config.permission_mode = Some("acceptEdits".into());
            config.allowed_tools = vec!["Bash(cargo test *)".into(), "Edit".into()];
            config.args = vec!["--add-dir".into(), "/srv/shared".into()];
        },
        |run| run.config = json!({"model": "claude-sonnet-5"}).as_object().cloned().unwrap_or_default(),
    )
    .await;
    assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");
    assert_eq!(stdin, prompt, "the prompt is the whole stdin, as it was");
    assert_eq!(
        argv,
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model=claude-sonnet-5",
            "--max-turns=12",
            "--permission-mode=acceptEdits",
            "--allowedTools=Bash(cargo test *),Edit",
            "--add-dir",
            "/srv/shared",
        ]
    );
}

#[tokio::test]
async fn the_environment_holds_the_key_and_what_keeps_claude_offline_and_nothing_else() {
    let Ran { env, .. } = run("please succeed").await;
    for expected in [
        "ANTHROPIC_API_KEY=dashboard-backends",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "DISABLE_AUTOUPDATER=1",
        "DISABLE_TELEMETRY=1",
        "DISABLE_ERROR_REPORTING=1",
        "DISABLE_BUG_COMMAND=1",
    ] {
        assert!(env.iter().any(|line| line == expected), "{expected} not in {env:?}");
    }
    assert!(
        !env.iter().any(|line| line.starts_with("HOME=") || line.starts_with("CARGO_PKG_NAME=")),
        "{env:?}"
    );
}

#[tokio::test]
async fn with_approval_policy_ask_claude_asks_the_dashboards_mcp_tool_with_the_token_in_its_environment() {
    let Ran { argv, env, .. } = run_with(
        "please succeed",
        |_| {},
        |run| {
            run.approval_policy = ApprovalPolicy::Ask;
            run.callback = Some(Callback {
                url: "http://127.0.0.1:8000/api/executions/0199".into(),
                token: "tok-123".into(),
            });
        },
    )
    .await;
    let config = argv
        .iter()
        .find_map(|arg| arg.strip_prefix("--mcp-config="))
        .unwrap_or_else(|| panic!("no --mcp-config in {argv:?}"));
    let config: Value = serde_json::from_str(config).expect("the config is JSON");
    let server = &config["mcpServers"]["dashboard"];
    assert_eq!(
        (&server["type"], &server["url"], &server["headers"]["Authorization"]),
        (
            &json!("http"),
            &json!("http://127.0.0.1:8000/api/executions/0199/mcp"),
            &json!("Bearer ${DASHBOARD_CALLBACK_TOKEN}")
        )
    );
    assert!(argv.contains(&"--permission-prompt-tool=mcp__dashboard__approve".to_owned()), "{argv:?}");
    assert!(argv.iter().all(|arg| !arg.contains("tok-123")), "the token is not in the argv: {argv:?}");
    assert!(env.contains(&"DASHBOARD_CALLBACK_TOKEN=tok-123".to_owned()), "{env:?}");
}

#[tokio::test]
async fn a_follow_up_resumes_the_session_with_the_new_prompt() {
    let first = run("please succeed").await;
    let [session] = first.sessions.as_slice() else { panic!("one session: {:?}", first.sessions) };
    assert!(!first.argv.iter().any(|arg| arg.starts_with("--resume")), "{:?}", first.argv);

    let next =
        run_with("please succeed with the lints too", |_| {}, |run| run.resume = Some(session.clone())).await;
    assert!(matches!(next.outcome, Ok(RunOutcome::Succeeded { .. })), "{:?}", next.outcome);
    assert_eq!(next.argv.last(), Some(&format!("--resume={session}")));
    assert_eq!(next.stdin, "please succeed with the lints too");

    let dir = workdir();
    assert!(ClaudeBackend::new(config(&dir)).can_continue());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_json_schema_of_the_function_makes_the_structured_output_the_output() {
    let schema =
        json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]});
    let Ran { outcome, argv, .. } = run_with(
        "structured please",
        |_| {},
        |run| run.config = json!({"json_schema": schema}).as_object().cloned().unwrap_or_default(),
    )
    .await;
    let Ok(RunOutcome::Succeeded { output, .. }) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output, json!({"answer": 42}));
    assert!(argv.contains(&format!("--json-schema={schema}")), "{argv:?}");
}

#[tokio::test]
async fn a_function_config_claude_does_not_take_is_refused_naming_the_keys() {
    let Ran { outcome, .. } = run_with(
        "please succeed",
        |_| {},
        |run| run.config = json!({"allowed_tools": ["Bash"]}).as_object().cloned().unwrap_or_default(),
    )
    .await;
    let Err(BackendError::InvalidInput(message)) = outcome else { panic!("{outcome:?}") };
    assert!(
        message.contains("keys: model, max_turns, json_schema") && message.contains("allowed_tools"),
        "{message}"
    );
}

#[tokio::test]
async fn the_turn_limit_and_a_model_api_error_are_failures_that_say_so() {
    let Ran { outcome, lines, .. } = run("max-turns now").await;
    assert_eq!(
        outcome.ok(),
        Some(RunOutcome::Failed {
            error: "claude stopped at its turn limit (max_turns): Reached maximum number of turns (1)".into()
        })
    );
    assert!(lines.iter().any(|line| line.message.starts_with("claude used 150 input tokens")), "{lines:?}");

    let Ran { outcome, lines, .. } = run("api-error now").await;
    let Ok(RunOutcome::Failed { error }) = outcome else { panic!("{outcome:?}") };
    assert!(
        error.starts_with("claude reported an error (model API status 400): Prompt is too long"),
        "{error}"
    );
    assert!(lines.iter().any(
        |line| line.stream == LogStream::Stderr && line.message.starts_with("error: Prompt is too long")
    ));
}

#[tokio::test]
async fn a_crash_without_a_result_fails_with_the_stderr_tail() {
    let Ran { outcome, .. } = run("crash now").await;
    assert_eq!(
        outcome.ok(),
        Some(RunOutcome::Failed {
            error: "claude exited with code 1: Error: MCP tool mcp__dashboard__approve (passed via \
                    --permission-prompt-tool) not found."
                .into()
        })
    );
}

#[tokio::test]
async fn a_message_over_max_event_bytes_is_skipped_with_a_line_naming_the_limit() {
    let Ran { outcome, lines, .. } =
        run_with("long-line please", |config| config.max_event_bytes = 16 * 1024, |_| {}).await;
    assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");
    let skipped = "a message of claude is over the limit of 16 KiB (max_event_bytes); it is skipped";
    assert!(has_line(&lines, LogStream::Stderr, skipped), "{lines:?}");
    assert!(lines.iter().all(|line| !line.message.contains("xxxx")), "nothing of it is logged");

    // Within the default limit the same message is read whole.
    let Ran { lines, .. } = run("long-line please").await;
    assert!(lines.iter().any(|line| line.message.len() == 20_000), "one agent line of 20,000 bytes");
}

/// Starts a run of `prompt`, cancels it once the fake has started, and returns how it went and how long the stop
/// took.
async fn cancelled(prompt: &str) -> (Ran, Duration) {
    let cancel = tokio_util::sync::CancellationToken::new();
    let stopper = cancel.clone();
    let stop = async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stopper.cancel();
        Instant::now()
    };
    let (ran, cancelled_at) = tokio::join!(run_with(prompt, |_| {}, |run| run.cancel = cancel), stop);
    (ran, cancelled_at.elapsed())
}

#[tokio::test]
async fn a_cancel_interrupts_claude_first_and_logs_the_cost_so_far() {
    let (ran, took) = cancelled("interrupt please").await;
    assert!(matches!(ran.outcome, Err(BackendError::Cancelled)), "{:?}", ran.outcome);
    // What the interrupted run spent, Claude Code's cost included, went to the meter: the engine keeps it.
    let spent = ran.reports.last().expect("a usage report");
    assert_eq!((&spent["input_tokens"], &spent["output_tokens"]), (&json!(150), &json!(12)), "{spent}");
    assert!(spent["cost_usd"].as_f64().is_some_and(|cost| cost > 0.0), "{spent}");
    assert_eq!(ran.signals, "INT\n", "SIGINT alone: claude ended by itself");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        ran.lines.iter().any(|line| line.message.starts_with("claude used 150 input tokens")),
        "{:?}",
        ran.lines
    );
    // The command that was running ends as Claude Code reports it: rejected, since the turn was interrupted.
    let command = ran.items.iter().rev().find(|item| item["kind"] == "command").expect("the command item");
    assert_eq!(command["status"], "declined", "{command}");
}

#[tokio::test]
async fn a_claude_that_ignores_sigint_is_stopped_with_its_group() {
    let dir = workdir();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (sink, _receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "f", json!({}), sink);
    context.prompt = Some("stubborn please".into());
    context.cancel = cancel.clone();
    let claude = ClaudeBackend::new(config(&dir));
    let task = tokio::spawn(async move { claude.trigger(context).await });
    let child_pid = dir.join("child.pid");
    let started = async {
        while !child_pid.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), started).await.expect("the fake starts its child");
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped in time")
        .expect("no panic");
    assert!(matches!(outcome, Err(BackendError::Cancelled)), "{outcome:?}");
    assert_eq!(std::fs::read_to_string(dir.join("signals.txt")).unwrap_or_default(), "INT\n");
    let child = std::fs::read_to_string(&child_pid).unwrap_or_default();
    let gone = async {
        while is_running(child.trim(), "sleep") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let is_gone = tokio::time::timeout(Duration::from_secs(3), gone).await.is_ok();
    assert!(is_gone, "the child {child} in claude's group was killed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the process `pid` runs (a zombie, which only waits to be reaped, does not) and is named `name`.
fn is_running(pid: &str, name: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `PID (NAME) STATE …`
    let Some((named, rest)) = stat.split_once(") ") else { return false };
    named.ends_with(&format!("({name}")) && !rest.starts_with('Z')
}

#[tokio::test]
async fn readiness_shows_the_version_and_names_a_missing_key() {
    let dir = workdir();
    let readiness = ClaudeBackend::new(config(&dir)).check().await;
    assert!(readiness.ready && readiness.detail.starts_with("2.1.332 (Claude Code) at "), "{readiness:?}");

    let missing = ClaudeConfig { api_key_env: "DASHBOARD_TEST_NO_SUCH_KEY".into(), ..config(&dir) };
    let readiness = ClaudeBackend::new(missing.clone()).check().await;
    assert_eq!(
        (readiness.ready, readiness.detail.as_str()),
        (false, "api_key_env: the environment variable DASHBOARD_TEST_NO_SUCH_KEY is not set")
    );
    let (sink, _receiver) = log_channel(16);
    let outcome = ClaudeBackend::new(missing)
        .trigger(RunContext::new(ExecutionId::generate(), "f", json!({}), sink))
        .await;
    assert!(
        matches!(outcome, Ok(RunOutcome::Failed { ref error }) if error.contains("DASHBOARD_TEST_NO_SUCH_KEY"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_binary_says_how_to_install_it() {
    let (sink, _receiver) = log_channel(16);
    let missing = ClaudeBackend::new(ClaudeConfig {
        command: "no-such-claude-here".into(),
        api_key_env: String::new(),
        ..ClaudeConfig::default()
    });
    let outcome = missing.trigger(RunContext::new(ExecutionId::generate(), "f", json!({}), sink)).await;
    let Ok(RunOutcome::Failed { error }) = outcome else { panic!("{outcome:?}") };
    assert!(
        error.starts_with(
            "claude CLI not found: install it (npm i -g @anthropic-ai/claude-code) or set `command`"
        ),
        "{error}"
    );
    assert!(!missing.check().await.ready);
}
