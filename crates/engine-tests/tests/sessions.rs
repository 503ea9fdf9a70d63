//! Sessions and diffs through the engine: the diff a backend reports is stored with the final status (the latest
//! one, cut past the limit), the session id as soon as it is reported, and a continue of a finished turn runs the
//! next turn of the same session — or is refused, for who asks, what it continues and where it would run.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dashboard_backend_api::{
    Backend, BackendError, DIFF_CUT_MARKER, MAX_DIFF_BYTES, Principal, Readiness, RunContext, RunOutcome,
};
use dashboard_core::{ExecutionId, ExecutionStatus, FunctionSpec};
use dashboard_engine::{Dashboard, TriggerRequest};
use dashboard_store::{FunctionKey, MemoryStore};
use serde_json::{Value, json};

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// A backend that reports the diffs its input lists (`diffs`: strings, or a number for a diff of that many bytes),
/// then succeeds.
struct Differ;

type BoxedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// The trait is declared with `async_trait`, which this crate does not depend on: its methods are written out as the
// macro expands them.
impl Backend for Differ {
    fn kind(&self) -> &'static str {
        "differ"
    }

    fn check<'life0, 'async_trait>(&'life0 self) -> BoxedFuture<'async_trait, Readiness>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Readiness::ready("diffs") })
    }

    fn trigger<'life0, 'async_trait>(
        &'life0 self,
        run: RunContext,
    ) -> BoxedFuture<'async_trait, Result<RunOutcome, BackendError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
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
        })
    }
}

fn dashboard() -> Dashboard {
    Dashboard::builder().store(Arc::new(MemoryStore::default())).backend("differ", Differ).build()
}

async fn trigger(dashboard: &Dashboard, input: Value) -> ExecutionId {
    let principal = Principal::anonymous();
    if dashboard.store().get_function(&FunctionKey::parse("f")).await.expect("read").is_none() {
        dashboard.create_function(&principal, FunctionSpec::new("f", "differ")).await.expect("a function");
    }
    let request = TriggerRequest { function: "f".into(), input, backend: None, idempotency_key: None };
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
