//! The command-line client against a running server: the real binary as the client (`agent-dashboard ls`,
//! `trigger --follow`, `logs -f`, `retry`, `continue`, `approvals`, `approve`/`decline`…) talking to the real binary
//! as the server, with their exit codes — among them a `logs -f` that survives a restart of the server mid-stream,
//! and tokens (`--token`, `DASHBOARD_TOKEN`) against a server with auth on.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{BinaryServer, TestDir, free_port};
use serde_json::{Value, json};

/// How long a client command, or anything a test waits for, may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

/// What a client command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary as a client, with a clean `DASHBOARD_*` environment plus `env`.
fn client_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHBOARD_")) {
        command.env_remove(name);
    }
    command.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    command
}

/// Runs the client against `url` (`--url` after the command, where a script might put it) to its end.
fn cli(url: &str, args: &[&str]) -> Run {
    cli_with(url, args, &[])
}

/// Runs the client against `url` to its end, with `env` (`DASHBOARD_TOKEN`…) in its environment.
fn cli_with(url: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    let output = client_command(&all, env).output().expect("the client runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    /// Standard output as JSON, for a command run with `--json` that must have succeeded.
    fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    /// The words of the one line `cancel`, `retry`, `continue`, `approve` and `decline` print: an id and a status.
    fn id_and_status(&self) -> (String, String) {
        assert_eq!(self.code, Some(0), "{self:?}");
        match self.stdout.split_whitespace().collect::<Vec<_>>()[..] {
            [id, status] => (id.to_owned(), status.to_owned()),
            _ => panic!("not one id and one status: {self:?}"),
        }
    }
}

/// A server with the demo backend and the example function, on a SQLite file of its own.
async fn server(dir: &TestDir) -> BinaryServer {
    let store = format!("sqlite:{}", dir.path().join("dashboard.db").display());
    BinaryServer::start(dir, &[("DASHBOARD_STORE", store)]).await
}

/// The lines of the demo backend's steps in `stdout`.
fn step_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|line| line.starts_with("step ")).collect()
}

/// The step lines the demo backend logs for `steps` steps of the example function.
fn steps(steps: u32) -> Vec<String> {
    (1..=steps).map(|step| format!("step {step} of {steps}: thinking about hello-agent")).collect()
}

#[tokio::test]
async fn functions_trigger_ls_and_cancel_work_against_a_running_server() {
    let dir = TestDir::new("cli-basics");
    let server = server(&dir).await;
    let url = server.url.as_str();

    let functions = cli(url, &["functions"]);
    assert_eq!(functions.code, Some(0), "{functions:?}");
    let mut rows = functions.stdout.lines();
    assert!(rows.next().is_some_and(|header| header.starts_with("NAME")), "{functions:?}");
    assert!(rows.any(|row| row.starts_with("hello-agent ") && row.contains(" demo ")), "{functions:?}");

    // Followed to success: every line of the log, in order, on standard output; exit 0.
    let succeeded = cli(url, &["trigger", "hello-agent", "-i", "steps=2", "-i", "delay_ms=10", "--follow"]);
    assert_eq!(succeeded.code, Some(0), "{succeeded:?}");
    assert_eq!(step_lines(&succeeded.stdout), steps(2), "{succeeded:?}");
    assert!(succeeded.stdout.starts_with("[system] running on backend demo"), "{succeeded:?}");
    assert!(succeeded.stdout.ends_with("[system] finished\n"), "{succeeded:?}");
    assert!(succeeded.stderr.contains("succeeded"), "{succeeded:?}");

    // Followed to failure: exit 1, with the error on standard error.
    let failed = cli(url, &["--follow", "trigger", "hello-agent", "-i", "steps=1", "-i", "fail=true"]);
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(failed.stdout.contains(&steps(1)[0]), "{failed:?}");
    assert!(failed.stderr.contains("failed"), "{failed:?}");

    // `--wait` ends with the execution, and its exit code, without the log.
    let waited = cli(url, &["trigger", "hello-agent", "--input", r#"{"steps": 1, "fail": true}"#, "--wait"]);
    assert_eq!(waited.code, Some(1), "{waited:?}");
    assert!(waited.stdout.contains("status:      failed"), "{waited:?}");

    // `ls --json` is the API's page: the three executions, newest first.
    let listed = cli(url, &["ls", "--json"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    let page: Value = serde_json::from_str(&listed.stdout).expect("ls --json prints JSON");
    let statuses: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|execution| execution["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"], "{page}");
    assert_eq!(page["items"][2]["function"], "hello-agent");
    assert!(page["items"][2]["output"].is_object(), "{page}");
    let filtered = cli(url, &["ls", "--status", "succeeded", "--json"]);
    let filtered: Value = serde_json::from_str(&filtered.stdout).expect("JSON");
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(1), "{filtered}");

    // The human table: a header and one row per execution, ids in full so that `show` takes them.
    let table = cli(url, &["ls", "--limit", "2"]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{table:?}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATUS"), "{table:?}");
    let id = lines[1].split_whitespace().next().expect("an id");
    let shown = cli(url, &["show", id, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&shown.stdout).expect("JSON")["id"], id, "{shown:?}");

    // A hanging execution: triggered (its id on standard output), cancelled, and then cancelled for good.
    let triggered = cli(url, &["trigger", "hello-agent", "-i", "steps=0", "-i", "hang=true"]);
    assert_eq!(triggered.code, Some(0), "{triggered:?}");
    let hanging = triggered.stdout.trim().to_owned();
    server.wait_for(&hanging, "running", LIMIT).await;
    let cancelled = cli(url, &["cancel", &hanging]);
    assert_eq!(cancelled.code, Some(0), "{cancelled:?}");
    assert!(cancelled.stdout.starts_with(&hanging), "{cancelled:?}");
    server.wait_for(&hanging, "cancelled", LIMIT).await;
    let followed = cli(url, &["logs", &hanging, "-f"]);
    assert_eq!(followed.code, Some(1), "a cancelled execution did not succeed: {followed:?}");

    // An API error: exit 2 with the API's message.
    let again = cli(url, &["cancel", &hanging]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.stderr.contains("execution-finished"), "{again:?}");
    let unknown = cli(url, &["trigger", "no-such-function"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("not-found"), "{unknown:?}");
}

#[tokio::test]
async fn a_dashboard_that_cannot_be_reached_and_a_usage_error_exit_2() {
    // Nothing listens on a port that was free a moment ago.
    let url = format!("http://127.0.0.1:{}", free_port());
    let unreachable = cli(&url, &["functions"]);
    assert_eq!(unreachable.code, Some(2), "{unreachable:?}");
    assert!(unreachable.stderr.contains("could not reach the dashboard"), "{unreachable:?}");
    let followed = cli(&url, &["logs", "-f", "0190a0a0-0000-7000-8000-000000000000"]);
    assert_eq!(followed.code, Some(2), "a first connection is not retried: {followed:?}");

    for args in [&["ls", "--frobnicate"][..], &["show"][..], &["trigger", "f", "-i", "novalue"][..]] {
        let usage = cli(&url, args);
        assert_eq!(usage.code, Some(2), "{args:?}: {usage:?}");
        assert!(usage.stderr.contains("Usage: agent-dashboard"), "{args:?}: {usage:?}");
    }
    // The variable is read when the flag is not given.
    let from_env = client_command(&["functions"], &[("DASHBOARD_URL", url.as_str())]).output().expect("runs");
    assert_eq!(from_env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&from_env.stderr).contains(&url), "{from_env:?}");
}

/// Waits for a child process to end; its exit code.
fn wait_for_exit(child: &mut Child) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the client's status") {
            return status.code();
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the client never ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `path` holds `text`.
async fn wait_for_text(path: &Path, text: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(path).unwrap_or_default().contains(text) {
        assert!(started.elapsed() < LIMIT, "{} never held {text:?}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The binary as a server on a port and SQLite file of the test's choosing, so that it can be killed and started
/// again on both (`BinaryServer` picks a port of its own each start); killed when dropped.
struct ServerProcess(Child);

impl ServerProcess {
    async fn start(dir: &TestDir, port: u16, run: u32) -> Self {
        let store = format!("sqlite:{}", dir.path().join("dashboard.db").display());
        let log = File::create(dir.path().join(format!("server-{run}.log"))).expect("a log file");
        let child =
            client_command(&[], &[("DASHBOARD_STORE", &store), ("DASHBOARD_PORT", &port.to_string())])
                .current_dir(dir.path())
                .env("DASHBOARD_HOST", "127.0.0.1")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the server starts");
        let mut server = Self(child);
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        // `functions` answers once the server does.
        while cli(&url, &["functions"]).code != Some(0) {
            if let Some(status) = server.0.try_wait().expect("the server's status") {
                panic!("the server exited with {status}");
            }
            assert!(started.elapsed() < LIMIT, "the server never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn logs_follow_survives_a_restart_of_the_server_mid_stream() {
    let dir = TestDir::new("cli-restart");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = ServerProcess::start(&dir, port, 1).await;
    let triggered =
        cli(&url, &["trigger", "hello-agent", "-i", "steps=3", "-i", "delay_ms=10", "-i", "hang=true"]);
    assert_eq!(triggered.code, Some(0), "{triggered:?}");
    let id = triggered.stdout.trim().to_owned();

    let stdout_path = dir.path().join("follow.stdout");
    let stderr_path = dir.path().join("follow.stderr");
    let mut follow = client_command(&["logs", "-f", &id, "--url", &url], &[])
        .stdout(File::create(&stdout_path).expect("a file"))
        .stderr(File::create(&stderr_path).expect("a file"))
        .spawn()
        .expect("the client starts");
    wait_for_text(&stdout_path, "hanging until cancelled").await;
    let before = std::fs::read_to_string(&stdout_path).expect("the client's output");

    // The server dies mid-stream and comes back on the same port and file; its recovery fails the run as interrupted.
    server.kill();
    let _server = ServerProcess::start(&dir, port, 2).await;

    let code = wait_for_exit(&mut follow);
    let stdout = std::fs::read_to_string(&stdout_path).expect("the client's output");
    let stderr = std::fs::read_to_string(&stderr_path).expect("the client's errors");
    assert_eq!(code, Some(1), "an interrupted execution did not succeed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with(&before), "{stdout}");
    assert_eq!(step_lines(&stdout), steps(3), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        assert!(!lines[..index].contains(line), "{line:?} printed twice:\n{stdout}");
    }
    assert!(stdout.contains("[system] hanging until cancelled or timed out"), "{stdout}");
    assert!(stderr.contains("failed") && stderr.contains("interrupted"), "{stderr}");
}

#[tokio::test]
async fn retry_starts_a_new_attempt_of_a_failed_execution() {
    let dir = TestDir::new("cli-retry");
    let server = server(&dir).await;
    let url = server.url.as_str();

    let failed =
        cli(url, &["trigger", "hello-agent", "-i", "steps=1", "-i", "fail=true", "--wait", "--json"]);
    assert_eq!(failed.code, Some(1), "{failed:?}");
    let failed: Value = serde_json::from_str(&failed.stdout).expect("trigger --wait --json prints JSON");
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().expect("an id");

    // The answer is the new execution: a second attempt of the same input, which fails the same way.
    let (retry_id, _) = cli(url, &["retry", failed_id]).id_and_status();
    assert_ne!(retry_id, failed_id);
    let followed = cli(url, &["logs", "-f", &retry_id]);
    assert_eq!(followed.code, Some(1), "the retry fails as asked: {followed:?}");
    assert_eq!(step_lines(&followed.stdout), steps(1), "{followed:?}");
    let retried = cli(url, &["show", &retry_id, "--json"]).json();
    assert_eq!(
        (&retried["retry_of"], &retried["attempt"], &retried["status"], &retried["input"]),
        (&failed["id"], &json!(2), &json!("failed"), &failed["input"]),
        "{retried}"
    );
    let listed = cli(url, &["ls", "--json"]).json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2), "{listed}");

    // A running execution cannot be retried yet: the API's 409, exit 2.
    let hanging = cli(url, &["trigger", "hello-agent", "-i", "steps=0", "-i", "hang=true"]);
    assert_eq!(hanging.code, Some(0), "{hanging:?}");
    let hanging = hanging.stdout.trim().to_owned();
    server.wait_for(&hanging, "running", LIMIT).await;
    let early = cli(url, &["retry", &hanging]);
    assert_eq!(early.code, Some(2), "{early:?}");
    assert!(early.stderr.contains("(409 execution-not-finished)"), "{early:?}");
    assert!(early.stdout.is_empty(), "{early:?}");
    cli(url, &["cancel", &hanging]).id_and_status();
    server.wait_for(&hanging, "cancelled", LIMIT).await;
}

#[tokio::test]
async fn continue_runs_the_next_turn_of_a_finished_session() {
    let dir = TestDir::new("cli-continue");
    let server = server(&dir).await;
    let url = server.url.as_str();

    let first =
        cli(url, &["trigger", "hello-agent", "-i", "steps=1", "-i", "delay_ms=10", "--wait", "--json"]);
    assert_eq!(first.code, Some(0), "{first:?}");
    let first: Value = serde_json::from_str(&first.stdout).expect("JSON");
    let first_id = first["id"].as_str().expect("an id");
    let session = format!("demo-{first_id}");
    assert_eq!(first["session_id"], session.as_str(), "{first}");

    // The demo backend continues its invented session, and gets the prompt as the turn's prompt.
    let (next_id, _) = cli(url, &["continue", first_id, "and now, the weather?"]).id_and_status();
    assert_ne!(next_id, first_id);
    let followed = cli(url, &["logs", &next_id, "-f"]);
    assert_eq!(followed.code, Some(0), "{followed:?}");
    assert!(followed.stdout.contains(&format!("continuing session {session}\n")), "{followed:?}");
    assert!(followed.stdout.contains("prompt: and now, the weather?\n"), "{followed:?}");
    let next = cli(url, &["show", &next_id, "--json"]).json();
    assert_eq!(
        (&next["continues"], &next["session_id"], &next["prompt"], &next["status"]),
        (&first["id"], &first["session_id"], &json!("and now, the weather?"), &json!("succeeded")),
        "{next}"
    );

    // With `--json`, the answer is the new turn itself; any turn may be continued, the new one too.
    let third = cli(url, &["--json", "continue", &next_id, "one more"]).json();
    assert_eq!((&third["continues"], &third["session_id"]), (&next["id"], &next["session_id"]), "{third}");

    // API errors: exit 2 with the API's message — an empty prompt, an execution that is still running.
    let empty = cli(url, &["continue", first_id, ""]);
    assert_eq!(empty.code, Some(2), "{empty:?}");
    assert!(empty.stderr.contains("invalid-field"), "{empty:?}");
    let hanging = cli(url, &["trigger", "hello-agent", "-i", "steps=0", "-i", "hang=true"]);
    assert_eq!(hanging.code, Some(0), "{hanging:?}");
    let hanging = hanging.stdout.trim().to_owned();
    server.wait_for(&hanging, "running", LIMIT).await;
    let early = cli(url, &["continue", &hanging, "too soon"]);
    assert_eq!(early.code, Some(2), "{early:?}");
    assert!(early.stderr.contains("(409 execution-not-finished)"), "{early:?}");
    cli(url, &["cancel", &hanging]).id_and_status();
    server.wait_for(&hanging, "cancelled", LIMIT).await;
    let third_id = third["id"].as_str().expect("an id");
    server.wait_for(third_id, "succeeded", LIMIT).await;
}

/// Polls `approvals --json` until a pending approval other than `decided` is listed; it.
async fn next_pending_approval(url: &str, decided: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let listed = cli(url, &["approvals", "--json"]).json();
        let items = listed["items"].as_array().expect("items");
        let pending = items.iter().find(|approval| !decided.iter().any(|id| approval["id"] == *id));
        if let Some(approval) = pending {
            return approval.clone();
        }
        assert!(started.elapsed() < LIMIT, "no new pending approval: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn approvals_are_listed_and_decided_from_the_command_line() {
    let dir = TestDir::new("cli-approvals");
    let server = server(&dir).await;
    let url = server.url.as_str();

    let none = cli(url, &["approvals"]);
    assert_eq!(none.code, Some(0), "{none:?}");
    assert_eq!(none.stdout.lines().count(), 1, "only the header: {none:?}");

    // hello-agent asks a person (`approval_policy = "ask"`): its run waits for each of its three approvals in turn.
    let triggered = cli(url, &["trigger", "hello-agent", "-i", "steps=0", "-i", "approvals=3"]);
    assert_eq!(triggered.code, Some(0), "{triggered:?}");
    let execution_id = triggered.stdout.trim().to_owned();
    let first = next_pending_approval(url, &[]).await;
    let first_id = first["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        (&first["execution_id"], &first["kind"], &first["summary"]),
        (&json!(execution_id), &json!("command"), &json!("demo --approved-step 1")),
        "{first}"
    );
    server.wait_for(&execution_id, "waiting", LIMIT).await;

    // The table: a header and the approval's row, its id in full so that `approve` takes it.
    let table = cli(url, &["approvals"]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:?}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("EXECUTION") && lines[0].contains("SUMMARY"));
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells[..5], [first_id.as_str(), &execution_id, "hello-agent", "command", "demo"], "{table:?}");
    assert!(lines[1].contains("demo --approved-step 1"), "{table:?}");

    let approved = cli(url, &["approve", &first_id, "--note", "go ahead"]);
    assert_eq!(approved.id_and_status(), (first_id.clone(), "approved".to_owned()));

    // The second one comes once the first is answered; declined with `--json`, the answer is the approval.
    let second = next_pending_approval(url, &[&first_id]).await;
    let second_id = second["id"].as_str().expect("an id").to_owned();
    assert_eq!(second["summary"], "demo --approved-step 2", "{second}");
    let declined = cli(url, &["decline", &second_id, "--note", "not this one", "--json"]).json();
    assert_eq!(
        (&declined["id"], &declined["status"], &declined["note"], &declined["decided_by"]),
        (&second["id"], &json!("declined"), &json!("not this one"), &json!("anonymous")),
        "{declined}"
    );

    // The third, approved for the session: the answer says so.
    let third = next_pending_approval(url, &[&first_id, &second_id]).await;
    let third_id = third["id"].as_str().expect("an id").to_owned();
    let for_session = cli(url, &["approve", &third_id, "--for-session", "--json"]).json();
    assert_eq!((&for_session["status"], &for_session["for_session"]), (&json!("approved"), &json!(true)));

    // The agent got every answer, notes included, and went on.
    let followed = cli(url, &["logs", "-f", &execution_id]);
    assert_eq!(followed.code, Some(0), "{followed:?}");
    assert!(followed.stdout.contains("approval 1: approve by anonymous (go ahead)\n"), "{followed:?}");
    assert!(followed.stdout.contains("approval 2: decline by anonymous (not this one)\n"), "{followed:?}");
    assert!(followed.stdout.contains("approval 3: approve_for_session by anonymous\n"), "{followed:?}");
    let finished = cli(url, &["show", &execution_id, "--json"]).json();
    assert_eq!(
        finished["output"]["decisions"],
        json!(["approve", "decline", "approve_for_session"]),
        "{finished}"
    );

    // Deciding again, or an approval that does not exist: the API's error, exit 2.
    let again = cli(url, &["approve", &first_id]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.stderr.contains("(409 approval-decided)"), "{again:?}");
    let unknown = cli(url, &["decline", "0190a0a0-0000-7000-8000-000000000000"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("not-found"), "{unknown:?}");
    let empty = cli(url, &["approvals", "--json"]).json();
    assert_eq!(empty["items"], json!([]), "{empty}");
}

#[tokio::test]
async fn a_token_from_the_flag_or_the_variable_opens_a_dashboard_with_auth_on() {
    const TOKEN: &str = "cli-test-token-0123456789abcdef";
    const WRONG: &str = "cli-test-token-not-the-right-one";
    let dir = TestDir::new("cli-auth");
    let store = format!("sqlite:{}", dir.path().join("dashboard.db").display());
    let server =
        BinaryServer::start(&dir, &[("DASHBOARD_STORE", store), ("DASHBOARD_AUTH_TOKEN", TOKEN.to_owned())])
            .await;
    let url = server.url.as_str();

    // Without a token, or with a wrong one: the API's 401, exit 2, nothing on standard output.
    let without = cli(url, &["functions"]);
    assert_eq!(without.code, Some(2), "{without:?}");
    assert!(without.stderr.contains("needs a token") && without.stderr.contains("(401 unauthorized)"));
    for (args, env) in [
        (&["functions", "--token", WRONG][..], &[][..]),
        (&["ls", "--json"][..], &[("DASHBOARD_TOKEN", WRONG)][..]),
        // The flag wins over the variable, a wrong flag too.
        (&["functions", "--token", WRONG][..], &[("DASHBOARD_TOKEN", TOKEN)][..]),
    ] {
        let refused = cli_with(url, args, env);
        assert_eq!(refused.code, Some(2), "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains("the token is not valid (401 unauthorized)"),
            "{args:?}: {refused:?}"
        );
        assert!(refused.stdout.is_empty(), "{args:?}: {refused:?}");
    }

    // The right token, from the flag: `--json` prints the API's JSON.
    let functions = cli(url, &["--json", "functions", "--token", TOKEN]).json();
    let names: Vec<&str> = functions["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|function| function["name"].as_str())
        .collect();
    assert_eq!(names, ["hello-agent"], "{functions}");

    // From the variable (or the flag over a wrong variable): a trigger, its log stream and the list all carry it.
    let waited = cli_with(
        url,
        &["trigger", "hello-agent", "-i", "steps=2", "-i", "delay_ms=10", "--wait", "--json"],
        &[("DASHBOARD_TOKEN", TOKEN)],
    )
    .json();
    assert_eq!(
        (&waited["status"], &waited["triggered_by"]),
        (&json!("succeeded"), &json!("admin")),
        "{waited}"
    );
    let id = waited["id"].as_str().expect("an id");
    let followed = cli_with(url, &["logs", "-f", id], &[("DASHBOARD_TOKEN", TOKEN)]);
    assert_eq!(followed.code, Some(0), "{followed:?}");
    assert_eq!(step_lines(&followed.stdout), steps(2), "{followed:?}");
    let listed = cli_with(url, &["ls", "--json", "--token", TOKEN], &[("DASHBOARD_TOKEN", WRONG)]).json();
    assert_eq!(listed["items"][0]["id"], id, "{listed}");
}
