//! Sessions and diffs through the engine: the diff a backend reports is stored with the final status (the latest
//! one, cut past the limit), the session id as soon as it is reported, and a continue of a finished turn runs the
//! next turn of the same session — or is refused, for who asks, what it continues and where it would run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::Scope;
use dashboard_backend_api::{
    Backend, BackendError, DIFF_CUT_MARKER, MAX_DIFF_BYTES, Principal, Readiness, RunContext, RunOutcome,
};
use dashboard_core::{ExecutionId, ExecutionStatus, FunctionSpec, LogStream};
use dashboard_engine::{ContinueRequest, Dashboard, EngineError, TriggerRequest};
use dashboard_store::{FunctionKey, MemoryStore};
use serde_json::{Value, json};

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// A backend that reports the diffs its input lists (`diffs`: strings, or a number for a diff of that many bytes)
/// and the session its input names (`session`), logs the session it resumes, then succeeds — or, with `hang`, waits
/// until it is cancelled. It continues sessions
/// when built so.
struct Differ {
    can_continue: bool,
}

// The trait is declared with `async_trait`, which this crate does not depend on: its methods are written out as the
// macro expands them.
#[async_trait]
impl Backend for Differ {
    fn kind(&self) -> &'static str {
        "differ"
    }

    fn can_continue(&self) -> bool {
        self.can_continue
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("diffs")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        if let Some(session_id) = run.input_field::<String>("session")? {
            run.session(session_id).await;
        }
        if let Some(session_id) = &run.resume {
            let prompt = run.prompt.clone().unwrap_or_default();
            run.log(LogStream::Agent, format!("resumed {session_id} with {prompt:?}")).await;
        }
        if run.input_field::<bool>("hang")?.unwrap_or(false) {
            run.cancel.cancelled().await;
            return Err(BackendError::Cancelled);
        }
        let diffs: Vec<Value> = run.input_field("diffs")?.unwrap_or_default();
        for diff in diffs {
            match diff {
                Value::Number(n_bytes) => {
                    let n_lines = n_bytes.as_u64().unwrap_or(0) / 10;
                    run.diff("+123456789\n".repeat(n_lines as usize)).await;
                }
                other => run.diff(other.as_str().unwrap_or_default()).await,
            }
        }
        Ok(RunOutcome::Succeeded { output: json!(null), usage: None })
    }
}

fn dashboard() -> Dashboard {
    Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("differ", Differ { can_continue: true })
        .backend("one-shot", Differ { can_continue: false })
        .build()
}

async fn trigger(dashboard: &Dashboard, input: Value) -> ExecutionId {
    trigger_on(dashboard, "differ", input).await
}

async fn trigger_on(dashboard: &Dashboard, backend: &str, input: Value) -> ExecutionId {
    let principal = Principal::anonymous();
    if dashboard.store().get_function(&FunctionKey::parse("f")).await.expect("read").is_none() {
        dashboard.create_function(&principal, FunctionSpec::new("f", "differ")).await.expect("a function");
    }
    let backend = Some(backend.to_owned());
    let request = TriggerRequest { function: "f".into(), input, backend, idempotency_key: None };
    dashboard.trigger(&principal, request).await.expect("the trigger is accepted").execution.id
}

async fn wait_until_terminal(dashboard: &Dashboard, id: ExecutionId) -> ExecutionStatus {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let execution = dashboard.store().get_execution(id).await.expect("read").expect("it exists");
            if execution.status.is_terminal() {
                return execution.status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the run ends")
}

/// Runs `diffs` to the end; the stored diff and the engine's `system` lines.
async fn check_diff(diffs: Value) -> (Option<String>, Vec<String>) {
    let dashboard = dashboard();
    let id = trigger(&dashboard, json!({"diffs": diffs})).await;
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    let diff = dashboard.store().get_diff(id).await.expect("read");
    let lines = dashboard.store().read_logs(id, 0, 100).await.expect("read");
    let system = lines.into_iter().filter(|line| line.stream.as_str() == "system").map(|line| line.message);
    (diff, system.collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_diff_is_stored_with_the_final_status() {
    let (diff, _) = check_diff(json!(["+first\n", "+first\n+second\n"])).await;
    assert_eq!(diff.as_deref(), Some("+first\n+second\n"));
    let (diff, _) = check_diff(json!([])).await;
    assert_eq!(diff, None, "a run that reported no diff has none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_over_the_limit_is_kept_cut_at_a_line_and_the_log_says_so() {
    let (diff, system) = check_diff(json!([MAX_DIFF_BYTES + 100, MAX_DIFF_BYTES + 200])).await;
    let diff = diff.expect("a diff");
    assert!(diff.len() <= MAX_DIFF_BYTES && diff.ends_with(DIFF_CUT_MARKER), "{} bytes", diff.len());
    assert!(diff.trim_end_matches(DIFF_CUT_MARKER).ends_with("+123456789\n"), "cut on a line boundary");
    let said: Vec<&String> = system.iter().filter(|line| line.contains("the diff is longer")).collect();
    assert_eq!(said.len(), 1, "said once: {system:?}");
}

/// A finished run of `backend` that reported `session` (when given); its id.
async fn finished_turn(dashboard: &Dashboard, backend: &str, session: Option<&str>) -> ExecutionId {
    let id = trigger_on(dashboard, backend, json!({"session": session})).await;
    assert_eq!(wait_until_terminal(dashboard, id).await, ExecutionStatus::Succeeded);
    id
}

fn next_turn(prompt: &str) -> ContinueRequest {
    ContinueRequest { prompt: prompt.to_owned(), input: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_runs_the_next_turn_of_the_session_with_its_prompt() {
    let dashboard = dashboard();
    let first = finished_turn(&dashboard, "differ", Some("thread-1")).await;
    let store = dashboard.store();
    let stored = store.get_execution(first).await.expect("read").expect("it exists");
    assert_eq!(stored.session_id.as_deref(), Some("thread-1"), "the session is stored on the execution");

    let alice = Principal::token("alice", Scope::Trigger, None);
    let next =
        dashboard.continue_session(&alice, first, next_turn("now the tests")).await.expect("continued");
    assert_eq!(
        (next.continues, next.session_id.as_deref(), next.attempt, next.triggered_by.as_deref()),
        (Some(first), Some("thread-1"), 1, Some("alice"))
    );
    assert_eq!((next.backend.as_str(), next.prompt.as_deref()), ("differ", Some("now the tests")));
    assert_eq!(wait_until_terminal(&dashboard, next.id).await, ExecutionStatus::Succeeded);
    let lines = store.read_logs(next.id, 0, 100).await.expect("read");
    assert!(
        lines.iter().any(|line| line.message == "resumed thread-1 with \"now the tests\""),
        "the backend resumed the session with the new prompt: {lines:?}"
    );
}

/// Continues `id` as `principal` with `prompt`; the refusal.
async fn refusal(dashboard: &Dashboard, principal: &Principal, id: ExecutionId, prompt: &str) -> EngineError {
    dashboard.continue_session(principal, id, next_turn(prompt)).await.expect_err("the continue is refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_needs_trigger_on_the_backend() {
    let dashboard = dashboard();
    let first = finished_turn(&dashboard, "differ", Some("thread-1")).await;
    let reader = Principal::token("reader", Scope::Read, None);
    assert!(matches!(refusal(&dashboard, &reader, first, "go on").await, EngineError::Forbidden { .. }));
    let elsewhere = Principal::token("elsewhere", Scope::Trigger, Some(vec!["one-shot".into()]));
    assert!(matches!(refusal(&dashboard, &elsewhere, first, "go on").await, EngineError::Forbidden { .. }));
    let unknown = ExecutionId::generate();
    let anyone = Principal::anonymous();
    assert!(matches!(refusal(&dashboard, &anyone, unknown, "go on").await, EngineError::NotFound { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_without_a_session_or_before_the_end_is_a_conflict_and_an_empty_prompt_invalid() {
    let dashboard = dashboard();
    let anyone = Principal::anonymous();
    let without = finished_turn(&dashboard, "differ", None).await;
    assert!(matches!(refusal(&dashboard, &anyone, without, "go on").await, EngineError::NoSession { .. }));

    let with = finished_turn(&dashboard, "differ", Some("thread-1")).await;
    assert!(matches!(refusal(&dashboard, &anyone, with, "  ").await, EngineError::Invalid(_)));

    let running = trigger(&dashboard, json!({"session": "thread-2", "hang": true})).await;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let execution = dashboard.store().get_execution(running).await.expect("read").expect("it exists");
            if execution.session_id.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the session is stored while the run goes on");
    assert!(matches!(refusal(&dashboard, &anyone, running, "go on").await, EngineError::NotFinished { .. }));
    dashboard.cancel(&anyone, running).await.expect("cancelled");
    assert_eq!(wait_until_terminal(&dashboard, running).await, ExecutionStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_on_a_backend_that_cannot_is_refused() {
    let dashboard = dashboard();
    let first = finished_turn(&dashboard, "one-shot", Some("thread-1")).await;
    let refused = refusal(&dashboard, &Principal::anonymous(), first, "go on").await;
    assert!(
        matches!(&refused, EngineError::CannotContinue { backend } if backend == "one-shot"),
        "{refused:?}"
    );
}
