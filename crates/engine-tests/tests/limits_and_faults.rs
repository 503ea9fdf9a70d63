//! The engine against a store whose writes fail for a while (a full disk, injected at the store trait over a real
//! SQLite file), and the limits on what one execution may store: its log, its transcript items and its output.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Principal, Readiness, RunContext, RunOutcome};
use dashboard_backends::DemoBackend;
use dashboard_core::{Execution, ExecutionId, ExecutionStatus, FunctionSpec, LogStream, NewLogLine};
use dashboard_engine::{Dashboard, EngineError, TriggerRequest};
use dashboard_store::{DashboardStore, FailingWrites};
use dashboard_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// A backend that logs a line, waits until the test opens its gate, logs another and succeeds with the input as
/// its output: a run that ends exactly when the test says.
#[derive(Clone)]
struct Gated {
    gate: Arc<Semaphore>,
}

impl Default for Gated {
    fn default() -> Self {
        Self { gate: Arc::new(Semaphore::new(0)) }
    }
}

#[async_trait]
impl Backend for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("a gate")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        run.log(LogStream::Stdout, "waiting at the gate").await;
        let permit = tokio::select! {
            permit = self.gate.acquire() => permit,
            () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
        };
        permit.map_err(|_| BackendError::Cancelled)?.forget();
        run.log(LogStream::Stdout, "through the gate").await;
        Ok(RunOutcome::Succeeded { output: run.input.clone(), usage: None })
    }
}

/// A backend that hands its run to a remote agent, which reports its log and status through the callbacks.
struct Remote;

#[async_trait]
impl Backend for Remote {
    fn kind(&self) -> &'static str {
        "remote"
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("an agent elsewhere")
    }

    async fn trigger(&self, _run: RunContext) -> Result<RunOutcome, BackendError> {
        Ok(RunOutcome::Detached)
    }
}

async fn trigger(dashboard: &Dashboard, function: &str, input: Value) -> Result<ExecutionId, EngineError> {
    let request = TriggerRequest { function: function.into(), input, backend: None, idempotency_key: None };
    Ok(dashboard.trigger(&Principal::anonymous(), request).await?.execution.id)
}

async fn execution(dashboard: &Dashboard, id: ExecutionId) -> Execution {
    dashboard.store().get_execution(id).await.expect("reads go on").expect("the execution exists")
}

/// Waits until `condition` holds, checking whenever the bus says something changed (and every few ms besides).
async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting: {what}");
}

async fn wait_for_status(dashboard: &Dashboard, id: ExecutionId, wanted: ExecutionStatus) -> Execution {
    let what = format!("execution {id} {wanted}");
    wait_until(&what, || async { execution(dashboard, id).await.status == wanted }).await;
    execution(dashboard, id).await
}

async fn messages(dashboard: &Dashboard, id: ExecutionId) -> Vec<String> {
    let lines = dashboard.store().read_logs(id, 0, 100_000).await.expect("reads go on");
    lines.into_iter().map(|line| line.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executions_outlive_a_store_that_refuses_writes_and_end_as_they_truly_did() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let gated = Gated::default();
    let dashboard = Dashboard::builder()
        .store(store.clone() as Arc<dyn DashboardStore>)
        .backend("demo", DemoBackend)
        .backend("gated", gated.clone())
        .build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("hangs", "demo"))
        .await
        .expect("a function");
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("waits", "gated"))
        .await
        .expect("a function");

    // Running when the disk fills: one that never ends by itself, one that ends when the gate opens.
    let hanging = trigger(&dashboard, "hangs", json!({"steps": 1, "hang": true})).await.expect("a trigger");
    let finishing = trigger(&dashboard, "waits", json!({"answer": 42})).await.expect("a trigger");
    wait_for_status(&dashboard, hanging, ExecutionStatus::Running).await;
    wait_for_status(&dashboard, finishing, ExecutionStatus::Running).await;
    let finishing_log =
        || async { messages(&dashboard, finishing).await.contains(&"waiting at the gate".into()) };
    wait_until("the gated run's first line is stored", finishing_log).await;
    // The disk fills just as a third one starts: its start is not stored.
    store.fail_from_next_start();
    let unstarted = trigger(&dashboard, "waits", json!({"answer": 7})).await.expect("a trigger");
    wait_until("the store refuses writes", || async { dashboard.metrics().store_write_failures() > 0 }).await;

    let trouble = dashboard.check_store().await.expect_err("the store is not healthy while writes fail");
    assert!(trouble.to_string().contains("disk is full"), "{trouble}");
    assert!(dashboard.metrics().store_write_trouble().is_some());
    let refused = trigger(&dashboard, "hangs", json!({})).await.expect_err("a trigger cannot be stored");
    assert!(matches!(refused, EngineError::StoreUnavailable(_)), "{refused:?}");

    // Cancel is taken while writes fail, for a running execution and for one whose start was not stored.
    let principal = Principal::anonymous();
    let cancelled = dashboard.cancel(&principal, hanging).await.expect("cancel is taken");
    assert_eq!(cancelled.status, ExecutionStatus::Running, "the status changes once the store takes it");
    dashboard.cancel(&principal, unstarted).await.expect("cancel is taken");
    gated.gate.add_permits(1);
    wait_until("three executions hold a change for the store", || async {
        dashboard.metrics().held_executions() == 3
    })
    .await;
    assert_eq!(execution(&dashboard, hanging).await.status, ExecutionStatus::Running);
    assert_eq!(execution(&dashboard, finishing).await.status, ExecutionStatus::Running);
    assert_eq!(execution(&dashboard, unstarted).await.status, ExecutionStatus::Queued);

    // Space is back: every held change lands, without a restart.
    store.fail_writes(false);
    let hanging = wait_for_status(&dashboard, hanging, ExecutionStatus::Cancelled).await;
    assert_eq!(hanging.error.as_deref(), Some("cancelled"));
    let finishing_execution = wait_for_status(&dashboard, finishing, ExecutionStatus::Succeeded).await;
    assert_eq!(finishing_execution.output, Some(json!({"answer": 42})));
    assert_eq!(
        messages(&dashboard, finishing).await,
        ["running on backend gated (attempt 1)", "waiting at the gate", "through the gate", "finished"]
    );
    wait_for_status(&dashboard, unstarted, ExecutionStatus::Cancelled).await;
    assert!(execution(&dashboard, unstarted).await.started_at.is_none(), "it never ran");
    wait_until("nothing is held", || async { dashboard.metrics().held_executions() == 0 }).await;
    wait_until("the store is healthy again", || async { dashboard.check_store().await.is_ok() }).await;
    assert_eq!(dashboard.metrics().store_write_trouble(), None);
    assert!(trigger(&dashboard, "hangs", json!({"steps": 0})).await.is_ok(), "triggers are stored again");
}

/// The error of the first health check that finds the store unhealthy (a probe's answer is reused for a second).
async fn unhealthy(dashboard: &Dashboard) -> EngineError {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match dashboard.check_store().await {
                Err(error) => return error,
                Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    found.expect("gave up waiting: the store is unhealthy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_writes_with_nothing_held_is_unhealthy_until_a_probe_gets_through() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let dashboard = Dashboard::builder().store(store.clone() as Arc<dyn DashboardStore>).build();
    dashboard.check_store().await.expect("healthy");
    store.fail_writes(true);
    let trouble = unhealthy(&dashboard).await;
    assert!(trouble.to_string().contains("disk is full"), "{trouble}");
    assert!(dashboard.metrics().store_write_failures() >= 1);
    store.fail_writes(false);
    wait_until("healthy again", || async { dashboard.check_store().await.is_ok() }).await;
    assert_eq!(dashboard.metrics().store_write_trouble(), None, "the probe's own episode ends with it");
    assert_eq!(dashboard.metrics().store_write_episodes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_fits_where_held_writes_do_not_keeps_the_store_unhealthy_in_one_episode() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let gated = Gated::default();
    let dashboard = Dashboard::builder()
        .store(store.clone() as Arc<dyn DashboardStore>)
        .backend("gated", gated.clone())
        .build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("waits", "gated"))
        .await
        .expect("a function");
    let id = trigger(&dashboard, "waits", json!({"answer": 42})).await.expect("a trigger");
    wait_for_status(&dashboard, id, ExecutionStatus::Running).await;
    wait_until("the first line is stored", || async {
        messages(&dashboard, id).await.contains(&"waiting at the gate".into())
    })
    .await;

    // Room for the probe, not for the run's last lines and status.
    store.spare_ping(true);
    store.fail_writes(true);
    gated.gate.add_permits(1);
    wait_until("the run holds its change", || async { dashboard.metrics().held_executions() == 1 }).await;
    for _ in 0..2 {
        let failures = dashboard.metrics().store_write_failures();
        let trouble =
            dashboard.check_store().await.expect_err("unhealthy while an execution holds its change");
        assert!(trouble.to_string().contains("1 executions wait"), "{trouble}");
        assert!(trouble.to_string().contains("disk is full"), "{trouble}");
        // The held write tries again (woken by the probe, or after its back-off) and fails again.
        wait_until("a retry fails", || async { dashboard.metrics().store_write_failures() > failures }).await;
    }
    assert!(store.pings() >= 1, "the health checks probed the store");
    assert_eq!(dashboard.metrics().store_write_episodes(), 1, "one episode, logged once");
    assert!(dashboard.metrics().store_write_trouble().is_some());

    store.fail_writes(false);
    let finished = wait_for_status(&dashboard, id, ExecutionStatus::Succeeded).await;
    assert_eq!(finished.output, Some(json!({"answer": 42})));
    wait_until("nothing is held", || async { dashboard.metrics().held_executions() == 0 }).await;
    wait_until("healthy again", || async { dashboard.check_store().await.is_ok() }).await;
    assert_eq!(dashboard.metrics().store_write_trouble(), None);
    assert_eq!(dashboard.metrics().store_write_episodes(), 1);
}

/// Health checks at once share one probe: on one thread, every check is waiting for the first one's probe before it
/// ends, and the next ones find its answer fresh.
#[tokio::test]
async fn concurrent_health_checks_cost_the_store_one_probe() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let dashboard = Dashboard::builder().store(store.clone() as Arc<dyn DashboardStore>).build();
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let dashboard = dashboard.clone();
        checks.spawn(async move { dashboard.check_store().await });
    }
    while let Some(checked) = checks.join_next().await {
        checked.expect("the check ran").expect("healthy");
    }
    assert_eq!(store.pings(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_report_the_store_refused_counts_once_when_the_agent_retries_it() {
    let store = Arc::new(FailingWrites::new(SqliteStore::open_temporary().expect("a store")));
    let dashboard = Dashboard::builder()
        .store(store.clone() as Arc<dyn DashboardStore>)
        .backend("remote", Remote)
        .max_log_lines(3)
        .build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("elsewhere", "remote"))
        .await
        .expect("a function");
    let id = trigger(&dashboard, "elsewhere", json!({})).await.expect("a trigger");
    wait_for_status(&dashboard, id, ExecutionStatus::Running).await;
    let report = |messages: &[&str]| {
        messages.iter().map(|message| NewLogLine::new(LogStream::Stdout, *message)).collect::<Vec<_>>()
    };
    // Each report fails once (a 503 to the agent), and the agent sends it again.
    for messages in [&["one", "two"][..], &["three", "four"]] {
        store.fail_writes(true);
        let refused = dashboard.report_logs(id, report(messages)).await.expect_err("the store refuses it");
        assert!(matches!(refused, EngineError::StoreUnavailable(_)), "{refused:?}");
        store.fail_writes(false);
        dashboard.report_logs(id, report(messages)).await.expect("the retry is stored");
    }
    assert_eq!(
        messages(&dashboard, id).await,
        [
            "running on backend remote (attempt 1)",
            "one",
            "two",
            "three",
            "log limit of 3 lines reached: the rest of this execution's log is dropped"
        ]
    );
}

/// Runs the demo backend for `steps` lines on a dashboard built by `build`; the execution once finished, and its log.
async fn run_demo(
    build: impl FnOnce(dashboard_engine::DashboardBuilder) -> dashboard_engine::DashboardBuilder,
    input: Value,
) -> (Execution, Vec<String>) {
    let store = Arc::new(SqliteStore::open_temporary().expect("a store"));
    let dashboard = build(Dashboard::builder().store(store).backend("demo", DemoBackend)).build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("chatty", "demo"))
        .await
        .expect("a function");
    let id = trigger(&dashboard, "chatty", input).await.expect("a trigger");
    wait_until("the run ends", || async { execution(&dashboard, id).await.status.is_terminal() }).await;
    (execution(&dashboard, id).await, messages(&dashboard, id).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_log_line_limit_one_marker_is_stored_and_the_run_goes_on() {
    let (execution, lines) =
        run_demo(|builder| builder.max_log_lines(5), json!({"steps": 50, "delay_ms": 0})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded, "the run goes on to its end");
    assert_eq!(lines.len(), 1 + 5 + 1 + 1, "{lines:?}");
    assert!(lines[5].starts_with("step 5 of 50"), "{lines:?}");
    assert_eq!(lines[6], "log limit of 5 lines reached: the rest of this execution's log is dropped");
    assert_eq!(lines[7], "finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_log_byte_limit_one_marker_is_stored_and_the_run_goes_on() {
    let (execution, lines) =
        run_demo(|builder| builder.max_log_bytes(100), json!({"steps": 50, "delay_ms": 0})).await;
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    let marker = "log limit of 100 bytes reached: the rest of this execution's log is dropped";
    assert_eq!(lines.iter().filter(|line| *line == marker).count(), 1, "{lines:?}");
    let kept: usize = lines[1..lines.len() - 2].iter().map(String::len).sum();
    assert!(kept <= 100 && lines.len() < 50, "{kept} bytes kept: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_limit_fails_the_run_and_names_the_limit() {
    let (execution, lines) = run_demo(|builder| builder.max_output_bytes(20), json!({"steps": 1})).await;
    let error = "the output is larger than the limit of 20 bytes of JSON, so it was not stored";
    assert_eq!(
        (execution.status, execution.error.as_deref(), execution.output),
        (ExecutionStatus::Failed, Some(error), None)
    );
    assert_eq!(lines.last().map(String::as_str), Some(format!("failed: {error}").as_str()));
}

/// Runs the demo backend with a transcript (`"items": true`) and at most `max_items` items; the items kept, as
/// `id status`, and the log.
async fn run_demo_items(max_items: u64, steps: u64) -> (Vec<String>, Vec<String>) {
    let store = Arc::new(SqliteStore::open_temporary().expect("a store"));
    let dashboard =
        Dashboard::builder().store(store).backend("demo", DemoBackend).max_items(max_items).build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("narrating", "demo"))
        .await
        .expect("a function");
    let input = json!({"steps": steps, "delay_ms": 0, "items": true});
    let id = trigger(&dashboard, "narrating", input).await.expect("a trigger");
    let finished = wait_for_status(&dashboard, id, ExecutionStatus::Succeeded).await;
    assert_eq!(finished.status, ExecutionStatus::Succeeded, "the run goes on to its end");
    let items = dashboard.store().list_items(id, 0, 100).await.expect("reads go on");
    let items = items.iter().map(|item| format!("{} {:?}", item.id, item.status)).collect();
    (items, messages(&dashboard, id).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_item_limit_new_items_are_dropped_and_the_kept_ones_still_change() {
    let marker = "item limit of 2 items reached: later new items of this execution are dropped";
    let (items, lines) = run_demo_items(2, 3).await;
    assert_eq!(items, ["step-1 Completed", "step-2 Completed"]);
    assert_eq!(lines.iter().filter(|line| *line == marker).count(), 1, "one marker: {lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("finished"));

    // At the limit, the command started in progress is still updated to completed.
    let (items, lines) = run_demo_items(1, 0).await;
    assert_eq!(items, ["command Completed"]);
    assert!(lines.iter().all(|line| !line.starts_with("item limit")), "{lines:?}");
}
