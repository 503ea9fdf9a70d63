//! The real Claude Code CLI (2.1.332, from npm) through the whole server, with `approval_policy = "ask"`: Claude Code
//! asks the dashboard's permission tool (`--permission-prompt-tool mcp__dashboard__approve`, served at
//! `/api/executions/{id}/mcp` and authorized by the execution's callback token) before it runs a command the model
//! asks for; the execution is `waiting` with a pending approval in the API, and a person's decision over the API
//! reaches Claude Code (approve: the command runs; decline: the model is told). The model is a local fake Messages API:
//! nothing leaves 127.0.0.1. Without `claude` on `PATH` the tests skip, saying why — unless `CI` is set and
//! `DASHBOARD_REQUIRE_CLAUDE=1`, where they fail.

mod common;

#[path = "../../backends/tests/support/fake_anthropic.rs"]
mod fake_anthropic;

use std::time::{Duration, Instant};

use common::{TestServer, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use fake_anthropic::{ClaudeFolder, FakeAnthropic, Step, claude_is_installed};
use serde_json::{Value, json};

/// The token that decides, and whose name the records carry.
const BOB: &str = "bob-secret-token-0123456789";
/// How long Claude Code may take to do anything here (a fail-safe, not a measure).
const PATIENCE: Duration = Duration::from_secs(90);

/// A server whose `careful` function runs the real Claude Code with `approval_policy = "ask"` against a fake model that
/// asks to run `command`, then says `closing`.
async fn set_up(command: &str, closing: &str) -> (TestServer, FakeAnthropic, ClaudeFolder) {
    set_up_with(vec![Step::Bash(command.to_owned())], closing).await
}

/// As [`set_up`], with the fake model playing `steps`; the server also has `spender` (Bash allowed, no approvals,
/// `max_cost_usd = 0.01`) and a price for the fake's model that makes each of its requests cost about 3 cents.
async fn set_up_with(steps: Vec<Step>, closing: &str) -> (TestServer, FakeAnthropic, ClaudeFolder) {
    let model = FakeAnthropic::start(steps, closing).await;
    let folder = ClaudeFolder::new(&model.base_url);
    let config = format!(
        r#"
[[backends]]
name = "claude"
kind = "claude"
command = "{wrapper}"
workdir = "{work}"
api_key_env = ""
env_passthrough = []
kill_grace_secs = 2

[[functions]]
name = "careful"
backend = "claude"
approval_policy = "ask"
timeout_secs = 120
prompt = "{{{{ input.task }}}}"

[[backends]]
name = "claude-bash"
kind = "claude"
command = "{wrapper}"
workdir = "{work}"
api_key_env = ""
env_passthrough = []
allowed_tools = ["Bash"]
kill_grace_secs = 2

[[functions]]
name = "spender"
backend = "claude-bash"
max_cost_usd = 0.01
timeout_secs = 120
prompt = "{{{{ input.task }}}}"

[[prices]]
model = "claude-opus-5-5"
input_per_mtok = 200.0
output_per_mtok = 200.0
"#,
        wrapper = folder.wrapper.display(),
        work = folder.work.display()
    );
    let path = folder.root.join("dashboard.toml");
    std::fs::write(&path, config).expect("the config file");
    let server = server_with(|config| {
        config.config_file = Some(path);
        config.auth_tokens = vec![TokenSpec::from_secret("bob", BOB, Scope::Trigger)];
    })
    .await;
    (server, model, folder)
}

async fn send(_server: &TestServer, request: reqwest::RequestBuilder, what: &str) -> Value {
    let answer = common::answer(request.bearer_auth(BOB)).await;
    assert!(answer.status / 100 == 2, "{what}: {} {:?}", answer.status, answer.body);
    answer.body
}

async fn get(server: &TestServer, path: &str) -> Value {
    send(server, server.client.get(format!("{}{path}", server.url)), path).await
}

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    send(server, server.client.post(format!("{}{path}", server.url)).json(&body), path).await
}

async fn wait_for(server: &TestServer, path: &str, check: impl Fn(&Value) -> Option<Value>) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = get(server, path).await;
        if let Some(found) = check(&body) {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up on {path}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_finished(server: &TestServer, id: &str) -> Value {
    wait_for(server, &format!("/api/executions/{id}"), |execution| {
        let status = execution["status"].as_str().unwrap_or_default();
        (!matches!(status, "queued" | "running" | "waiting")).then(|| execution.clone())
    })
    .await
}

/// Triggers `careful`, waits for its pending approval (the execution `waiting`), and decides it with `body`.
async fn ask_and_decide(server: &TestServer, model: &FakeAnthropic, body: Value) -> (String, Value) {
    let triggered =
        post(server, "/api/executions", json!({"function": "careful", "input": {"task": "Make the file."}}))
            .await;
    let id = triggered["id"].as_str().expect("an id").to_owned();
    let path = format!("/api/approvals?status=pending&execution={id}");
    let deadline = Instant::now() + PATIENCE;
    let approval = loop {
        if let Some(approval) = get(server, &path).await["items"].get(0).cloned() {
            break approval;
        }
        let execution = get(server, &format!("/api/executions/{id}")).await;
        if Instant::now() > deadline || !matches!(execution["status"].as_str(), Some("queued" | "running")) {
            let logs = get(server, &format!("/api/executions/{id}/logs")).await;
            let elsewhere = model.other_requests();
            panic!(
                "no approval was asked: {execution}\nlogs: {logs}\nrequests not to the model: {elsewhere:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(get(server, &format!("/api/executions/{id}")).await["status"], "waiting");
    assert_eq!(approval["kind"], "command", "{approval}");
    let approval_id = approval["id"].as_str().expect("an id");
    let decided = post(server, &format!("/api/approvals/{approval_id}"), body).await;
    (id, decided)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_asks_the_dashboard_and_runs_the_command_a_person_approves() {
    if !claude_is_installed() {
        return;
    }
    let (server, model, folder) = set_up("touch made.txt", "Made it.").await;
    let (id, decided) = ask_and_decide(&server, &model, json!({"decision": "approve"})).await;
    assert_eq!((decided["status"].as_str(), decided["decided_by"].as_str()), (Some("approved"), Some("bob")));
    assert_eq!(decided["summary"], "touch made.txt");
    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert!(folder.work.join("made.txt").exists(), "the approved command ran");
    let usage = &execution["usage"];
    assert!(usage["raw"].is_object() && usage["input_tokens"].as_u64().is_some(), "the one shape: {usage}");
    assert!(model.other_requests().is_empty(), "nothing left 127.0.0.1: {:?}", model.other_requests());
    let items = get(&server, &format!("/api/executions/{id}/items")).await["items"].clone();
    let kinds: Vec<&str> =
        items.as_array().into_iter().flatten().filter_map(|item| item["kind"].as_str()).collect();
    assert!(kinds.contains(&"approval") && kinds.contains(&"command"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_is_what_claude_code_tells_the_model() {
    if !claude_is_installed() {
        return;
    }
    let (server, model, folder) = set_up("touch made.txt", "I was not allowed.").await;
    let (id, decided) =
        ask_and_decide(&server, &model, json!({"decision": "decline", "note": "not here"})).await;
    assert_eq!(decided["status"], "declined");
    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "succeeded", "the agent went on: {execution}");
    assert!(!folder.work.join("made.txt").exists(), "the declined command never ran");
    let results = model.tool_results();
    assert!(results.iter().any(|result| result.contains("declined by bob: not here")), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_decided_after_75_seconds_still_lets_the_tool_run() {
    if !claude_is_installed() {
        return;
    }
    let (server, _model, folder) = set_up("touch late.txt", "Done late.").await;
    let triggered =
        post(&server, "/api/executions", json!({"function": "careful", "input": {"task": "Make the file."}}))
            .await;
    let id = triggered["id"].as_str().expect("an id").to_owned();
    let path = format!("/api/approvals?status=pending&execution={id}");
    let approval = wait_for(&server, &path, |body| body["items"].get(0).cloned()).await;
    // Claude Code's MCP client gives up on a tool call after 60 s unless told it goes on: the dashboard's progress
    // notifications (every 15 s) and the server's timeout in the MCP config keep it waiting.
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert_eq!(get(&server, &format!("/api/executions/{id}")).await["status"], "waiting", "still waiting");
    let approval_id = approval["id"].as_str().expect("an id");
    post(&server, &format!("/api/approvals/{approval_id}"), json!({"decision": "approve"})).await;
    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert!(folder.work.join("late.txt").exists(), "the tool ran after 75 s");
}

/// The pids of live processes that run in `dir` (Claude Code and the commands it started run in its work dir).
fn processes_in(dir: &std::path::Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let is_zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            !is_zombie && cwd.starts_with(dir)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_spending_is_stopped_at_its_max_cost_and_leaves_no_process() {
    if !claude_is_installed() {
        return;
    }
    let steps = (0..20).map(|n| Step::Bash(format!("sleep 1; echo spent-{n}"))).collect();
    let (server, _model, folder) = set_up_with(steps, "unreachable").await;
    let triggered =
        post(&server, "/api/executions", json!({"function": "spender", "input": {"task": "Keep going."}}))
            .await;
    let id = triggered["id"].as_str().expect("an id").to_owned();
    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let error = execution["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("budget exceeded: max_cost_usd of function spender ("), "{error}");
    let usage = &execution["usage"];
    assert!(usage["cost_usd"].as_f64().is_some_and(|cost| cost > 0.01), "the spend is kept: {usage}");
    assert_eq!(usage["model"], "claude-opus-5-5", "{usage}");
    assert!(usage["raw"].is_object() && usage["input_tokens"].as_u64().is_some(), "the one shape: {usage}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_in(&folder.work).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_in(&folder.work), Vec::<u32>::new(), "no process of the run is left");
    let spent = get(&server, &format!("/api/executions/{id}/logs")).await.to_string();
    assert!(!spent.contains("spent-19"), "stopped long before its last step");
}
