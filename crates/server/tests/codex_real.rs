//! The real Codex CLI (0.169, from npm) through the whole server: a function with `approval_policy = "ask"` on a
//! `codex` backend in `app-server` mode, pointed at a local fake Responses API (nothing leaves 127.0.0.1). Codex asks
//! to run a command: the execution is `waiting` with a pending approval in the API; a person's decision over the API
//! reaches Codex (approve: the command runs and the run succeeds; decline: the model is told), and both are in the
//! transcript and the activity feed with who decided. A follow-up turn continues the thread. Without `codex` on `PATH`
//! the tests skip, saying why — unless `CI` and `DASHBOARD_REQUIRE_CODEX=1` are set, where they fail.

mod common;

#[path = "../../backends/tests/support/fake_model.rs"]
mod fake_model;

use std::time::{Duration, Instant};

use common::{TestServer, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use fake_model::{CodexFolder, FakeModel, Step, codex_is_installed};
use serde_json::{Value, json};

/// The token that decides, and whose name the records carry.
const ALICE: &str = "alice-secret-token-0123456789";
/// How long Codex may take to do anything here (a fail-safe, not a measure).
const PATIENCE: Duration = Duration::from_secs(60);

/// A server whose `ask` function runs the real Codex (approval `untrusted`, read-only: it asks before a command)
/// against a fake model playing `steps` then `closing`.
async fn set_up(steps: Vec<Step>, closing: &str) -> (TestServer, FakeModel, CodexFolder) {
    let model = FakeModel::start(steps, closing).await;
    let folder = CodexFolder::new(&model.base_url);
    let config = format!(
        r#"
[[backends]]
name = "codex"
kind = "codex"
mode = "app-server"
command = "{wrapper}"
workdir = "{work}"
sandbox = "read-only"
approval = "untrusted"
kill_grace_secs = 2

[[functions]]
name = "ask"
backend = "codex"
approval_policy = "ask"
timeout_secs = 120
prompt = "{{{{ input.task }}}}"
"#,
        wrapper = folder.wrapper.display(),
        work = folder.work.display()
    );
    let path = folder.root.join("dashboard.toml");
    std::fs::write(&path, config).expect("the config file");
    let server = server_with(|config| {
        config.config_file = Some(path);
        config.auth_tokens = vec![TokenSpec::from_secret("alice", ALICE, Scope::Trigger)];
    })
    .await;
    (server, model, folder)
}

async fn get(server: &TestServer, path: &str) -> Value {
    let request = server.client.get(format!("{}{path}", server.url)).bearer_auth(ALICE);
    let answer = common::answer(request).await;
    assert_eq!(answer.status, 200, "GET {path}: {:?}", answer.body);
    answer.body
}

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    let request = server.client.post(format!("{}{path}", server.url)).bearer_auth(ALICE).json(&body);
    let answer = common::answer(request).await;
    assert!(answer.status / 100 == 2, "POST {path}: {} {:?}", answer.status, answer.body);
    answer.body
}

async fn trigger(server: &TestServer) -> String {
    let body = json!({"function": "ask", "input": {"task": "Make the file."}});
    post(server, "/api/executions", body).await["id"].as_str().expect("an id").to_owned()
}

/// Waits until `check` finds something in what `path` answers.
async fn wait_for(server: &TestServer, path: &str, check: impl Fn(&Value) -> Option<Value>) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = get(server, path).await;
        if let Some(found) = check(&body) {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up on {path}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The execution's pending approval, once the execution is `waiting`; and how long after the execution started that
/// was seen.
async fn pending_approval(server: &TestServer, id: &str) -> Value {
    let path = format!("/api/approvals?status=pending&execution={id}");
    let approval = wait_for(server, &path, |body| body["items"].get(0).cloned()).await;
    let execution = get(server, &format!("/api/executions/{id}")).await;
    assert_eq!(execution["status"], "waiting", "{execution}");
    approval
}

async fn wait_until_finished(server: &TestServer, id: &str) -> Value {
    wait_for(server, &format!("/api/executions/{id}"), |execution| {
        let status = execution["status"].as_str().unwrap_or_default();
        (!matches!(status, "queued" | "running" | "waiting")).then(|| execution.clone())
    })
    .await
}

/// The activity feed's events about execution `id`: (kind, data).
async fn events_of(server: &TestServer, id: &str) -> Vec<(String, Value)> {
    let events = get(server, "/api/events?limit=500").await;
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let mut found: Vec<(u64, String, Value)> = items
        .into_iter()
        .filter(|event| event["execution_id"] == id)
        .map(|event| {
            let kind = event["kind"].as_str().unwrap_or_default().to_owned();
            (event["id"].as_u64().unwrap_or_default(), kind, event["data"].clone())
        })
        .collect();
    found.sort_by_key(|(id, _, _)| *id);
    found.into_iter().map(|(_, kind, data)| (kind, data)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_codex_waits_for_a_person_who_approves_over_the_api_and_the_command_runs() {
    if !codex_is_installed() {
        return;
    }
    let (server, model, folder) =
        set_up(vec![Step::Command("touch made.txt && echo made")], "Made it.").await;
    let id = trigger(&server).await;
    let approval = pending_approval(&server, &id).await;
    assert_eq!(approval["kind"], "command", "{approval}");
    assert!(
        approval["summary"].as_str().is_some_and(|summary| summary.contains("touch made.txt")),
        "{approval}"
    );
    assert!(!folder.work.join("made.txt").exists(), "nothing runs before the decision");

    let approval_id = approval["id"].as_str().expect("an id");
    let decided =
        post(&server, &format!("/api/approvals/{approval_id}"), json!({"decision": "approve"})).await;
    assert_eq!(
        (decided["status"].as_str(), decided["decided_by"].as_str()),
        (Some("approved"), Some("alice"))
    );

    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(execution["output"], json!({"message": "Made it."}));
    assert!(folder.work.join("made.txt").exists(), "the approved command ran");
    // Usage in the one shape, Codex's report kept in `raw`; no price is configured, so no cost.
    let usage = &execution["usage"];
    assert!(usage["raw"].is_object() && usage["input_tokens"].as_u64().is_some_and(|n| n > 0), "{usage}");
    assert!(usage["output_tokens"].as_u64().is_some() && usage.get("cost_usd").is_none(), "{usage}");
    assert!(model.tool_outputs().iter().any(|output| output.contains("exited with code 0")));

    // The transcript: the approval (approved) and the command it was about, with its exit code.
    let items = get(&server, &format!("/api/executions/{id}/items")).await["items"].clone();
    let items = items.as_array().cloned().unwrap_or_default();
    let approval_item = items.iter().find(|item| item["kind"] == "approval").expect("an approval item");
    assert_eq!(
        (approval_item["approval_id"].as_str(), approval_item["status"].as_str()),
        (Some(approval_id), Some("completed"))
    );
    let command = items.iter().find(|item| item["kind"] == "command").expect("a command item");
    assert_eq!(command["exit_code"], 0, "{command}");

    let kinds: Vec<String> = events_of(&server, &id).await.into_iter().map(|(kind, _)| kind).collect();
    let expected = ["approval.requested", "execution.waiting", "approval.decided", "execution.resumed"];
    let at = kinds.iter().position(|kind| kind == "approval.requested").expect("requested is in the feed");
    assert_eq!(kinds.get(at..at + 4), Some(expected.map(str::to_owned).as_slice()), "{kinds:?}");
    let decided_event =
        events_of(&server, &id).await.into_iter().find(|(kind, _)| kind == "approval.decided");
    assert_eq!(decided_event.map(|(_, data)| data["decided_by"].clone()), Some(json!("alice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_over_the_api_is_what_the_real_codex_tells_the_model() {
    if !codex_is_installed() {
        return;
    }
    let (server, model, folder) = set_up(vec![Step::Command("touch made.txt")], "I was not allowed.").await;
    let id = trigger(&server).await;
    let approval = pending_approval(&server, &id).await;
    let approval_id = approval["id"].as_str().expect("an id");
    let body = json!({"decision": "decline", "note": "not in this repository"});
    let decided = post(&server, &format!("/api/approvals/{approval_id}"), body).await;
    assert_eq!(
        (decided["status"].as_str(), decided["note"].as_str()),
        (Some("declined"), Some("not in this repository"))
    );

    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "succeeded", "the agent went on: {execution}");
    assert_eq!(execution["output"], json!({"message": "I was not allowed."}));
    assert!(!folder.work.join("made.txt").exists(), "the declined command never ran");
    assert!(
        model.tool_outputs().iter().any(|output| output.contains("rejected by user")),
        "{:?}",
        model.tool_outputs()
    );
    let items = get(&server, &format!("/api/executions/{id}/items")).await["items"].clone();
    let command = items.as_array().into_iter().flatten().find(|item| item["kind"] == "command").cloned();
    assert_eq!(command.map(|command| command["status"].clone()), Some(json!("declined")));
    let decided_event =
        events_of(&server, &id).await.into_iter().find(|(kind, _)| kind == "approval.decided");
    let data = decided_event.map(|(_, data)| data).unwrap_or_default();
    assert_eq!((data["status"].as_str(), data["decided_by"].as_str()), (Some("declined"), Some("alice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_real_codex_waits_ends_the_run_and_expires_the_approval() {
    if !codex_is_installed() {
        return;
    }
    let (server, model, folder) = set_up(vec![Step::Command("touch made.txt")], "unreachable").await;
    let id = trigger(&server).await;
    let approval = pending_approval(&server, &id).await;
    post(&server, &format!("/api/executions/{id}/cancel"), json!({})).await;
    let execution = wait_until_finished(&server, &id).await;
    assert_eq!(execution["status"], "cancelled", "{execution}");
    let approval_id = approval["id"].as_str().expect("an id");
    let expired = wait_for(&server, &format!("/api/approvals/{approval_id}"), |approval| {
        (approval["status"] != "pending").then(|| approval.clone())
    })
    .await;
    assert_eq!(expired["status"], "expired", "{expired}");
    let items = get(&server, &format!("/api/executions/{id}/items")).await["items"].clone();
    let open: Vec<&Value> =
        items.as_array().into_iter().flatten().filter(|item| item["status"] == "in_progress").collect();
    assert!(open.is_empty(), "every item closed: {open:?}");
    assert!(!folder.work.join("made.txt").exists());
    assert_eq!(model.model_requests().len(), 1, "no answer reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_runs_a_second_turn_on_the_same_thread_of_the_real_codex() {
    if !codex_is_installed() {
        return;
    }
    let (server, model, _folder) = set_up(Vec::new(), "The first answer.").await;
    let id = trigger(&server).await;
    let first = wait_until_finished(&server, &id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let thread = first["session_id"].as_str().expect("the thread is the session").to_owned();

    let next =
        post(&server, &format!("/api/executions/{id}/continue"), json!({"prompt": "And the second?"})).await;
    assert_eq!(
        (next["continues"].as_str(), next["session_id"].as_str()),
        (Some(id.as_str()), Some(thread.as_str()))
    );
    let next_id = next["id"].as_str().expect("an id");
    let second = wait_until_finished(&server, next_id).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let requests = model.model_requests();
    let last = requests.last().expect("a second request");
    assert!(
        last.contains("Make the file.") && last.contains("The first answer."),
        "the first turn is in it: {last}"
    );
    assert!(last.contains("And the second?"), "{last}");

    // The status page of the second turn shows both turns.
    let page = server.client.get(format!("{}/executions/{next_id}", server.url)).bearer_auth(ALICE);
    let page = common::answer(page).await;
    let html = page.text();
    assert!(html.contains("Make the file.") && html.contains("And the second?"), "both turns on the page");
}
