//! The engine on its own, as an embedder uses it: the memory store, the demo backend, no HTTP.

use std::sync::Arc;
use std::time::Duration;

use dashboard_backends::{DemoBackend, Principal, Scope};
use dashboard_core::{ExecutionId, ExecutionStatus, FunctionSpec};
use dashboard_engine::{BusMessage, Dashboard, EngineError, INTERRUPTED_ERROR, TriggerRequest};
use dashboard_store::{DashboardStore, ExecutionUpdate, MemoryStore, NewExecution};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(10);

fn dashboard_on(store: Arc<MemoryStore>, max_concurrency: usize) -> Dashboard {
    Dashboard::builder().store(store).backend("demo", DemoBackend).max_concurrency(max_concurrency).build()
}

async fn function(dashboard: &Dashboard, name: &str, max_concurrency: Option<u32>) {
    let mut spec = FunctionSpec::new(name, "demo");
    spec.max_concurrency = max_concurrency;
    dashboard.create_function(spec).await.expect("the function is created");
}

async fn trigger(dashboard: &Dashboard, function: &str, input: Value) -> ExecutionId {
    let request = TriggerRequest { function: function.into(), input, backend: None, idempotency_key: None };
    dashboard.trigger(&Principal::anonymous(), request).await.expect("the trigger is accepted").execution.id
}

async fn status(dashboard: &Dashboard, id: ExecutionId) -> ExecutionStatus {
    dashboard
        .store()
        .get_execution(id)
        .await
        .expect("the store answers")
        .expect("the execution exists")
        .status
}

async fn wait_for(dashboard: &Dashboard, id: ExecutionId, wanted: ExecutionStatus) {
    tokio::time::timeout(SETTLE, async {
        while status(dashboard, id).await != wanted {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("execution {id} never became {wanted}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_at_its_limit_keeps_further_executions_queued() {
    let dashboard = dashboard_on(Arc::default(), 8);
    function(&dashboard, "one-at-a-time", Some(1)).await;
    let first = trigger(&dashboard, "one-at-a-time", json!({"steps": 0, "hang": true})).await;
    let second = trigger(&dashboard, "one-at-a-time", json!({"steps": 0})).await;
    wait_for(&dashboard, first, ExecutionStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&dashboard, second).await, ExecutionStatus::Queued);
    assert_eq!(dashboard.queue_depth(), 1);

    dashboard.cancel(&Principal::anonymous(), first).await.expect("cancel is accepted");
    wait_for(&dashboard, second, ExecutionStatus::Succeeded).await;
    assert_eq!(status(&dashboard, first).await, ExecutionStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_holds_back_executions_of_every_function() {
    let dashboard = dashboard_on(Arc::default(), 2);
    function(&dashboard, "a", None).await;
    function(&dashboard, "b", None).await;
    let hanging = [
        trigger(&dashboard, "a", json!({"steps": 0, "hang": true})).await,
        trigger(&dashboard, "b", json!({"steps": 0, "hang": true})).await,
    ];
    let waiting = trigger(&dashboard, "b", json!({"steps": 0})).await;
    for id in hanging {
        wait_for(&dashboard, id, ExecutionStatus::Running).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&dashboard, waiting).await, ExecutionStatus::Queued);
    dashboard.cancel(&Principal::anonymous(), hanging[0]).await.expect("cancel is accepted");
    wait_for(&dashboard, waiting, ExecutionStatus::Succeeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_change_is_published_on_the_bus() {
    let dashboard = dashboard_on(Arc::default(), 8);
    function(&dashboard, "watched", None).await;
    let mut bus = dashboard.subscribe();
    let id = trigger(&dashboard, "watched", json!({"steps": 2, "delay_ms": 1})).await;
    wait_for(&dashboard, id, ExecutionStatus::Succeeded).await;

    let mut kinds = Vec::new();
    let mut last_seq = 0;
    while let Ok(message) = bus.try_recv() {
        match message {
            BusMessage::Event(event) if event.execution_id == Some(id) => kinds.push(event.kind.as_str()),
            BusMessage::Logs { execution_id, last_seq: seq } if execution_id == id => last_seq = seq,
            _ => {}
        }
    }
    assert_eq!(kinds, ["execution.queued", "execution.started", "execution.succeeded"]);
    let stored = dashboard.store().read_logs(id, 0, 100).await.expect("logs");
    assert_eq!(last_seq, stored.len() as u64, "the bus announced every stored line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fails_interrupted_runs_and_runs_queued_ones() {
    let store = Arc::new(MemoryStore::default());
    let before_restart = dashboard_on(store.clone(), 8);
    function(&before_restart, "survivor", None).await;
    let function = store
        .get_function(&dashboard_store::FunctionKey::parse("survivor"))
        .await
        .expect("read")
        .expect("exists");
    // What a crash leaves behind: one execution running, one queued, written straight to the store.
    let mut left = Vec::new();
    for _ in 0..2 {
        let new = NewExecution::of(&function, json!({"steps": 0}));
        left.push(store.create_execution(new).await.expect("stored").value.id);
    }
    store
        .update_execution(left[0], ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running))
        .await
        .expect("marked running");

    let after_restart = dashboard_on(store.clone(), 8);
    let report = after_restart.recover().await.expect("recovery runs");
    assert_eq!((report.interrupted, report.requeued), (1, 1));
    let interrupted = store.get_execution(left[0]).await.expect("read").expect("exists");
    assert_eq!(
        (interrupted.status, interrupted.error.as_deref()),
        (ExecutionStatus::Failed, Some(INTERRUPTED_ERROR))
    );
    wait_for(&after_restart, left[1], ExecutionStatus::Succeeded).await;
    assert!(store.list_unfinished().await.expect("read").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_work_and_interrupts_what_outlives_the_grace() {
    let dashboard = Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("demo", DemoBackend)
        .cancel_grace(Duration::from_millis(200))
        .build();
    function(&dashboard, "long", None).await;
    let id = trigger(&dashboard, "long", json!({"steps": 0, "hang": true})).await;
    wait_for(&dashboard, id, ExecutionStatus::Running).await;

    dashboard.shutdown(Duration::from_millis(100)).await;
    let execution = dashboard.store().get_execution(id).await.expect("read").expect("exists");
    assert_eq!(
        (execution.status, execution.error.as_deref()),
        (ExecutionStatus::Failed, Some(INTERRUPTED_ERROR))
    );
    let request =
        TriggerRequest { function: "long".into(), input: json!({}), backend: None, idempotency_key: None };
    let refused = dashboard.trigger(&Principal::anonymous(), request).await;
    assert!(matches!(refused, Err(EngineError::ShuttingDown)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_limited_to_other_backends_is_refused() {
    let dashboard = dashboard_on(Arc::default(), 8);
    function(&dashboard, "guarded", None).await;
    let principal = Principal::token("ci", Scope::Trigger, Some(vec!["codex".into()]));
    let request =
        TriggerRequest { function: "guarded".into(), input: json!({}), backend: None, idempotency_key: None };
    let refused = dashboard.trigger(&principal, request).await;
    assert!(
        matches!(refused, Err(EngineError::Forbidden { ref backend, .. }) if backend == "demo"),
        "{refused:?}"
    );
    let reader = Principal::token("dashboards", Scope::Read, None);
    let request =
        TriggerRequest { function: "guarded".into(), input: json!({}), backend: None, idempotency_key: None };
    let refused = dashboard.trigger(&reader, request).await;
    assert!(
        matches!(&refused, Err(EngineError::Forbidden { reason, .. }) if reason.contains("read scope")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_needs_a_missing_field_is_refused_at_trigger_time() {
    let dashboard = dashboard_on(Arc::default(), 8);
    let mut spec = FunctionSpec::new("templated", "demo");
    spec.prompt = Some("Fix {{ input.issue_url }}".into());
    dashboard.create_function(spec).await.expect("created");
    let request = TriggerRequest {
        function: "templated".into(),
        input: json!({}),
        backend: None,
        idempotency_key: None,
    };
    let refused = dashboard.trigger(&Principal::anonymous(), request).await;
    assert!(
        matches!(&refused, Err(EngineError::Invalid(error)) if error.to_string().contains("input.issue_url")),
        "{refused:?}"
    );
}
