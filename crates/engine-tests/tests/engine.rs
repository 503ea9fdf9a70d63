//! The engine on its own, as an embedder uses it: the memory store, the demo backend, no HTTP.

use std::sync::Arc;
use std::time::Duration;

use dashboard_backend_api::{Principal, Scope};
use dashboard_backends::DemoBackend;
use dashboard_core::{
    ExecutionId, ExecutionStatus, FunctionSpec, ItemBody, ItemStatus, MessageRole, NewItem,
};
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
    dashboard.create_function(&Principal::anonymous(), spec).await.expect("the function is created");
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
async fn recovery_closes_the_items_an_interrupted_run_left_in_progress() {
    let store = Arc::new(MemoryStore::default());
    let before_restart = dashboard_on(store.clone(), 8);
    function(&before_restart, "cut-off", None).await;
    let function = store
        .get_function(&dashboard_store::FunctionKey::parse("cut-off"))
        .await
        .expect("read")
        .expect("exists");
    // A crash in the middle of a command: the execution running, its command item still in progress.
    let id = store.create_execution(NewExecution::of(&function, json!({}))).await.expect("stored").value.id;
    store
        .update_execution(id, ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running))
        .await
        .expect("marked running");
    let command =
        ItemBody::Command { command: "make".into(), cwd: None, output: String::new(), exit_code: None };
    let message = ItemBody::Message { role: MessageRole::Agent, text: "building".into() };
    let items = vec![
        NewItem::new("said", ItemStatus::Completed, message).expect("an item"),
        NewItem::new("make", ItemStatus::InProgress, command).expect("an item"),
    ];
    store.upsert_items(id, items).await.expect("stored");

    let after_restart = dashboard_on(store.clone(), 8);
    assert_eq!(after_restart.recover().await.expect("recovery runs").interrupted, 1);
    let statuses: Vec<(String, ItemStatus)> = store
        .list_items(id, 0, 10)
        .await
        .expect("read")
        .into_iter()
        .map(|item| (item.id, item.status))
        .collect();
    let expected = [("said".to_owned(), ItemStatus::Completed), ("make".to_owned(), ItemStatus::Failed)];
    assert_eq!(statuses, expected, "the command ends failed with its execution; the finished message stays");
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
    dashboard.create_function(&Principal::anonymous(), spec).await.expect("created");
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

/// The stored log of an execution as (stream, message) pairs, after checking that its seqs are 1..=n.
async fn log_lines(dashboard: &Dashboard, id: ExecutionId) -> Vec<(String, String)> {
    let lines = dashboard.store().read_logs(id, 0, 1000).await.expect("the store answers");
    let seqs: Vec<u64> = lines.iter().map(|line| line.seq).collect();
    assert_eq!(seqs, (1..=lines.len() as u64).collect::<Vec<u64>>(), "seqs have gaps: {lines:?}");
    lines.into_iter().map(|line| (line.stream.to_string(), line.message)).collect()
}

/// Triggers `input` on a new function and waits for `status`; the execution's log.
async fn run_until(input: Value, status: ExecutionStatus) -> (Dashboard, ExecutionId, Vec<(String, String)>) {
    let dashboard = dashboard_on(Arc::default(), 8);
    function(&dashboard, "logged", None).await;
    let id = trigger(&dashboard, "logged", input).await;
    wait_for(&dashboard, id, status).await;
    let lines = log_lines(&dashboard, id).await;
    (dashboard, id, lines)
}

fn line(stream: &str, message: &str) -> (String, String) {
    (stream.to_owned(), message.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stores_every_line_in_order_between_its_first_and_closing_lines() {
    let (_, _, lines) = run_until(json!({"steps": 10, "delay_ms": 0}), ExecutionStatus::Succeeded).await;
    assert_eq!(lines.len(), 12, "{lines:?}");
    assert_eq!(lines[0], line("system", "running on backend demo (attempt 1)"));
    for (step, (stream, message)) in (1..=10).zip(&lines[1..11]) {
        assert_eq!(stream, "stdout");
        assert!(message.starts_with(&format!("step {step} of 10")), "{message}");
    }
    assert_eq!(lines[11], line("system", "finished"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_ends_its_log_with_the_reason() {
    let (_, _, lines) =
        run_until(json!({"steps": 1, "delay_ms": 0, "fail": true}), ExecutionStatus::Failed).await;
    let (stream, message) = lines.last().expect("a closing line");
    assert_eq!(stream, "system");
    assert!(message.starts_with("failed: "), "{message}");
    assert!(lines.iter().any(|(stream, _)| stream == "stderr"), "the backend's own line: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_keeps_the_lines_it_wrote() {
    let input = json!({"steps": 2, "delay_ms": 0, "hang": true});
    let (dashboard, id, _) = run_until(input, ExecutionStatus::Running).await;
    // The hang line comes after the steps; once it is stored, every earlier line is too.
    tokio::time::timeout(SETTLE, async {
        while !log_lines(&dashboard, id).await.iter().any(|(_, message)| message.starts_with("hanging")) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the hang line is stored while the run waits");
    dashboard.cancel(&Principal::anonymous(), id).await.expect("cancel is accepted");
    wait_for(&dashboard, id, ExecutionStatus::Cancelled).await;

    let lines = log_lines(&dashboard, id).await;
    let messages: Vec<&str> = lines.iter().map(|(_, message)| message.as_str()).collect();
    assert_eq!(messages.len(), 5, "{messages:?}");
    assert_eq!(messages[0], "running on backend demo (attempt 1)");
    assert!(messages[1].starts_with("step 1 of 2") && messages[2].starts_with("step 2 of 2"), "{messages:?}");
    assert_eq!(messages[3], "hanging until cancelled or timed out");
    assert!(messages[4].starts_with("cancelled"), "{messages:?}");
}

/// A spec whose schema requires `field`.
fn requiring(name: &str, field: &str) -> FunctionSpec {
    let mut spec = FunctionSpec::new(name, "demo");
    spec.input_schema = json!({"type": "object", "required": [field]});
    spec
}

async fn try_trigger(
    dashboard: &Dashboard,
    function: &str,
    input: Value,
) -> Result<ExecutionId, EngineError> {
    let request = TriggerRequest { function: function.into(), input, backend: None, idempotency_key: None };
    dashboard.trigger(&Principal::anonymous(), request).await.map(|triggered| triggered.execution.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_changed_through_the_engine_is_triggered_as_changed_at_once() {
    let dashboard = dashboard_on(Arc::default(), 8);
    dashboard.create_function(&Principal::anonymous(), requiring("f", "a")).await.expect("created");
    try_trigger(&dashboard, "f", json!({"a": 1})).await.expect("version 1 takes `a`");

    let key = dashboard_store::FunctionKey::Name("f".into());
    dashboard
        .update_function(&Principal::anonymous(), &key, requiring("f", "b"), None)
        .await
        .expect("updated");
    let refused = try_trigger(&dashboard, "f", json!({"a": 1})).await;
    assert!(matches!(refused, Err(EngineError::Invalid(_))), "version 2 needs `b`: {refused:?}");
    let id = try_trigger(&dashboard, "f", json!({"b": 1})).await.expect("version 2 takes `b`");
    let execution = dashboard.store().get_execution(id).await.expect("the store").expect("the execution");
    assert_eq!(execution.function_version, 2);

    dashboard
        .update_function(&Principal::anonymous(), &key, requiring("g", "b"), None)
        .await
        .expect("renamed to g");
    assert!(matches!(
        try_trigger(&dashboard, "f", json!({"b": 1})).await,
        Err(EngineError::NotFound { entity: "function", .. })
    ));
    try_trigger(&dashboard, "g", json!({"b": 1})).await.expect("the new name");

    dashboard
        .delete_function(&Principal::anonymous(), &dashboard_store::FunctionKey::Name("g".into()))
        .await
        .expect("deleted");
    assert!(matches!(
        try_trigger(&dashboard, "g", json!({"b": 1})).await,
        Err(EngineError::NotFound { entity: "function", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_changed_in_the_store_behind_the_engines_back_is_seen_within_a_second() {
    let store: Arc<MemoryStore> = Arc::default();
    let dashboard = dashboard_on(store.clone(), 8);
    let function =
        dashboard.create_function(&Principal::anonymous(), requiring("f", "a")).await.expect("created");
    try_trigger(&dashboard, "f", json!({"a": 1})).await.expect("version 1 takes `a`");

    store.update_function(function.id, requiring("f", "b"), None).await.expect("updated in the store");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    try_trigger(&dashboard, "f", json!({"b": 1})).await.expect("version 2 is read again");

    store.delete_function(function.id).await.expect("deleted in the store");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        try_trigger(&dashboard, "f", json!({"b": 1})).await,
        Err(EngineError::NotFound { entity: "function", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_changing_functions_is_held_to_the_principals_scope_and_backends() {
    let dashboard = Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("a", DemoBackend)
        .backend("b", DemoBackend)
        .build();
    let anyone = Principal::anonymous();
    dashboard.create_function(&anyone, FunctionSpec::new("on-a", "a")).await.expect("created");
    dashboard.create_function(&anyone, FunctionSpec::new("on-b", "b")).await.expect("created");
    let key = |name: &str| dashboard_store::FunctionKey::Name(name.into());

    let reader = Principal::token("dashboards", Scope::Read, None);
    let trigger_only = Principal::token("ci", Scope::Trigger, None);
    let ops_on_b = Principal::token("ops", Scope::Admin, Some(vec!["b".into()]));
    let is_forbidden = |result: Result<dashboard_core::Function, EngineError>, backend: &str| matches!(&result, Err(EngineError::Forbidden { backend: refused, .. }) if refused == backend);
    for principal in [&reader, &trigger_only, &ops_on_b] {
        let update =
            dashboard.update_function(principal, &key("on-a"), FunctionSpec::new("on-a", "a"), None).await;
        assert!(is_forbidden(update, "a"), "{principal:?} updated a function on a");
        let create = dashboard.create_function(principal, FunctionSpec::new("new-on-a", "a")).await;
        assert!(is_forbidden(create, "a"), "{principal:?} created a function on a");
        let delete = dashboard.delete_function(principal, &key("on-a")).await;
        assert!(is_forbidden(delete, "a"), "{principal:?} deleted a function on a");
    }
    // Moving a function onto a backend the principal lacks, or off one, is refused too.
    let onto_a =
        dashboard.update_function(&ops_on_b, &key("on-b"), FunctionSpec::new("on-b", "a"), None).await;
    assert!(is_forbidden(onto_a, "a"), "moved onto a");
    let function =
        dashboard.store().get_function(&key("on-a")).await.expect("the store").expect("still there");
    assert_eq!((function.version, function.backend.as_str()), (1, "a"), "the refused changes left it alone");

    // Within its grant the same principal changes what it may.
    let updated =
        dashboard.update_function(&ops_on_b, &key("on-b"), FunctionSpec::new("on-b", "b"), None).await;
    assert_eq!(updated.expect("ops may change functions on b").version, 2);
    dashboard.delete_function(&ops_on_b, &key("on-b")).await.expect("ops may delete functions on b");
}
