//! The `command` backend with real processes: output streams while the program runs, exit codes become statuses,
//! and a cancelled run leaves no process of its tree alive.

use std::time::Duration;

use dashboard_backend_api::{Backend, RunContext, RunEntry, RunOutcome, log_channel};
use dashboard_backends::{CommandBackend, CommandConfig};
use dashboard_core::{ExecutionId, LogStream, NewLogLine};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn shell(script: &str) -> CommandBackend {
    let mut config = CommandConfig::new(script, Vec::new());
    config.shell = true;
    config.kill_grace_secs = 2;
    CommandBackend::new(config)
}

fn context(input: Value) -> (RunContext, mpsc::Receiver<RunEntry>) {
    let (sink, receiver) = log_channel(1024);
    (RunContext::new(ExecutionId::generate(), "test-fn", input, sink), receiver)
}

fn drain(receiver: &mut mpsc::Receiver<RunEntry>) -> Vec<NewLogLine> {
    let mut lines = Vec::new();
    while let Ok(entry) = receiver.try_recv() {
        lines.extend(entry.into_line());
    }
    lines
}

/// Whether a process is still alive (a zombie waiting to be reaped counts as dead).
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn lines_arrive_while_the_program_still_runs() {
    let backend = shell("for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done");
    let (run, mut receiver) = context(json!({}));
    let task = tokio::spawn(async move { backend.trigger(run).await });
    let first = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a line came")
        .and_then(RunEntry::into_line)
        .expect("a line, the channel open");
    assert_eq!(first.message, "tick 1");
    assert!(!task.is_finished(), "the first line must arrive before the program ends");
    let outcome = task.await.expect("no panic").expect("the run ends");
    assert!(matches!(outcome, RunOutcome::Succeeded { .. }), "{outcome:?}");
    let rest: Vec<String> = drain(&mut receiver).into_iter().map(|line| line.message).collect();
    assert_eq!(rest, ["tick 2", "tick 3", "tick 4", "tick 5", "tick 6"]);
}

#[tokio::test]
async fn argv_is_rendered_from_the_input_without_a_shell() {
    let config = CommandConfig::new("/bin/echo", vec!["{{ input.word }}".into(), "$HOME;".into()]);
    let (run, mut receiver) = context(json!({"word": "a b; rm -rf /"}));
    let outcome = CommandBackend::new(config).trigger(run).await.expect("runs");
    let lines: Vec<String> = drain(&mut receiver).into_iter().map(|line| line.message).collect();
    assert_eq!(lines, ["a b; rm -rf / $HOME;"], "the input reached argv verbatim, uninterpreted");
    assert_eq!(outcome, RunOutcome::Succeeded { output: json!("a b; rm -rf / $HOME;"), usage: None });
}

#[tokio::test]
async fn the_last_stdout_line_is_the_output_when_it_is_json() {
    let (run, _receiver) = context(json!({}));
    let outcome = shell(r#"echo working; echo '{"answer": 42}'"#).trigger(run).await.expect("runs");
    assert_eq!(outcome, RunOutcome::Succeeded { output: json!({"answer": 42}), usage: None });
}

/// A line of 16 KiB and more comes as several log lines of at most 16 KiB each, cut between characters: a character
/// whose bytes straddle the 16 KiB boundary begins the next line instead of being lost in two halves.
#[tokio::test]
async fn a_long_line_is_cut_between_characters() {
    let check = |script: &'static str, expected: Vec<String>| async move {
        let (run, mut receiver) = context(json!({}));
        let outcome = shell(script).trigger(run).await.expect("runs");
        assert!(matches!(outcome, RunOutcome::Succeeded { .. }), "{outcome:?}");
        let lines: Vec<String> = drain(&mut receiver).into_iter().map(|line| line.message).collect();
        assert_eq!(lines, expected, "{script}");
    };
    let a = |n: usize| "a".repeat(n);
    // "é" is two bytes, the 16,384th and 16,385th.
    check(
        "head -c 16383 /dev/zero | tr '\\0' a; printf '\\303\\251tail\\n'",
        vec![a(16383), "\u{e9}tail".into()],
    )
    .await;
    // "€" is three bytes: its first two or its first one would end the first line.
    check(
        "head -c 16382 /dev/zero | tr '\\0' a; printf '\\342\\202\\254z\\n'",
        vec![a(16382), "\u{20ac}z".into()],
    )
    .await;
    check(
        "head -c 16383 /dev/zero | tr '\\0' a; printf '\\342\\202\\254z\\n'",
        vec![a(16383), "\u{20ac}z".into()],
    )
    .await;
    // A character that fits is not moved; an invalid byte is still replaced, not carried.
    check(
        "head -c 16382 /dev/zero | tr '\\0' a; printf '\\303\\251tail\\n'",
        vec![a(16382) + "\u{e9}", "tail".into()],
    )
    .await;
    check(
        "head -c 16383 /dev/zero | tr '\\0' a; printf '\\377tail\\n'",
        vec![a(16383) + "\u{fffd}", "tail".into()],
    )
    .await;
}

#[tokio::test]
async fn a_non_zero_exit_fails_naming_the_code_and_the_stderr_tail() {
    let (run, mut receiver) = context(json!({}));
    let outcome = shell("echo about to fail; echo 'disk full' >&2; exit 3").trigger(run).await.expect("runs");
    assert_eq!(outcome, RunOutcome::Failed { error: "exited with code 3: disk full".into() });
    let streams: Vec<LogStream> = drain(&mut receiver).into_iter().map(|line| line.stream).collect();
    assert!(streams.contains(&LogStream::Stdout) && streams.contains(&LogStream::Stderr), "{streams:?}");
}

#[tokio::test]
async fn a_cancelled_run_leaves_no_process_of_its_tree_alive() {
    // The shell starts a child of its own and says both PIDs.
    let backend = shell("sleep 600 & echo child $!; echo self $$; wait");
    let (run, mut receiver) = context(json!({}));
    let cancel = run.cancel.clone();
    let task = tokio::spawn(async move { backend.trigger(run).await });
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("a line")
            .and_then(RunEntry::into_line)
            .expect("a line, the channel open");
        pids.push(
            line.message.split_whitespace().nth(1).and_then(|pid| pid.parse::<u32>().ok()).expect("a pid"),
        );
    }
    assert!(pids.iter().all(|pid| is_alive(*pid)), "both run before the cancel");

    cancel.cancel();
    let outcome = task.await.expect("no panic");
    assert!(matches!(outcome, Err(dashboard_backend_api::BackendError::Cancelled)), "{outcome:?}");
    // The group got SIGTERM then SIGKILL and the run waited for its leader; the orphaned child is reaped by init.
    for _ in 0..100 {
        if pids.iter().all(|pid| !is_alive(*pid)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("processes {pids:?} survived the cancel");
}

#[tokio::test]
async fn a_missing_program_says_so() {
    let (run, _receiver) = context(json!({}));
    let error = CommandBackend::new(CommandConfig::new("no-such-program-xyz", Vec::new()))
        .trigger(run)
        .await
        .expect_err("ran");
    assert!(error.to_string().contains("not found"), "{error}");
    let readiness = CommandBackend::new(CommandConfig::new("no-such-program-xyz", Vec::new())).check().await;
    assert!(!readiness.ready);
}

#[tokio::test]
async fn a_template_needing_a_missing_field_names_it() {
    let (run, _receiver) = context(json!({}));
    let config = CommandConfig::new("/bin/echo", vec!["{{ input.missing }}".into()]);
    let error = CommandBackend::new(config).trigger(run).await.expect_err("rendered");
    assert!(error.to_string().starts_with("args[0]"), "{error}");
}
