//! Usage, cost and budgets through the engine, on the demo backend (whose input `cost_per_step_usd` makes it report a
//! growing cost after each step): usage in the one shape, priced from `[[prices]]` when the backend gives no cost; a
//! run that crosses `max_cost_usd` or a daily budget is stopped and fails saying which; a spent daily budget refuses
//! triggers, retries and continues — of a function, or of a token — and still does after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashboard_backend_api::{Principal, Scope};
use dashboard_backends::DemoBackend;
use dashboard_core::{ExecutionId, ExecutionStatus, FunctionSpec, Usage};
use dashboard_engine::{ContinueRequest, Dashboard, EngineError, Price, TriggerRequest};
use dashboard_store::{DashboardStore, MemoryStore};
use serde_json::{Value, json};

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

fn on(store: Arc<dyn DashboardStore>) -> Dashboard {
    Dashboard::builder()
        .store(store)
        .backend("demo", DemoBackend)
        .prices(vec![Price {
            model: "demo-model".into(),
            input_per_mtok: 2.0,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
            output_per_mtok: 10.0,
        }])
        .token_budgets(HashMap::from([("ci".to_owned(), 0.25)]))
        .build()
}

async fn create(dashboard: &Dashboard, spec: FunctionSpec) {
    dashboard.create_function(&Principal::anonymous(), spec).await.expect("a function");
}

async fn trigger_as(
    dashboard: &Dashboard,
    principal: &Principal,
    input: Value,
) -> Result<ExecutionId, EngineError> {
    let request = TriggerRequest { function: "f".into(), input, backend: None, idempotency_key: None };
    Ok(dashboard.trigger(principal, request).await?.execution.id)
}

async fn trigger(dashboard: &Dashboard, input: Value) -> Result<ExecutionId, EngineError> {
    trigger_as(dashboard, &Principal::anonymous(), input).await
}

async fn finished(dashboard: &Dashboard, id: ExecutionId) -> dashboard_core::Execution {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let execution = dashboard.store().get_execution(id).await.expect("read").expect("it exists");
            if execution.status.is_terminal() {
                return execution;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the run ends")
}

/// A run of `steps` steps costing `cost` each, 10 ms apart.
fn costing(steps: u64, cost: f64) -> Value {
    json!({"steps": steps, "delay_ms": 10, "cost_per_step_usd": cost})
}

fn usage_of(execution: &dashboard_core::Execution) -> Usage {
    Usage::from_value(execution.usage.as_ref().expect("a usage"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_stored_in_the_one_shape_and_priced_by_model_when_the_backend_gives_no_cost() {
    let dashboard = on(Arc::new(MemoryStore::default()));
    let mut config = serde_json::Map::new();
    config.insert("model".into(), json!("demo-model"));
    create(&dashboard, FunctionSpec { config, ..FunctionSpec::new("f", "demo") }).await;
    let id = trigger(&dashboard, json!({"steps": 2, "delay_ms": 1})).await.expect("triggered");
    let execution = finished(&dashboard, id).await;
    let usage = usage_of(&execution);
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (Some(24), Some(68), Some(92)));
    assert_eq!(usage.model.as_deref(), Some("demo-model"));
    // 24 input tokens at $2 and 68 output tokens at $10 per million.
    let expected = (24.0 * 2.0 + 68.0 * 10.0) / 1_000_000.0;
    assert!((usage.cost_usd.expect("a cost") - expected).abs() < 1e-12, "{usage:?}");
    assert_eq!(usage.raw, Some(json!({"input_tokens": 24, "output_tokens": 68})), "the report is kept");

    // An unknown model has no cost, never a guessed one.
    let other = on(Arc::new(MemoryStore::default()));
    create(&other, FunctionSpec::new("f", "demo")).await;
    let id = trigger(&other, json!({"steps": 1, "delay_ms": 1})).await.expect("triggered");
    assert_eq!(usage_of(&finished(&other, id).await).cost_usd, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_crosses_its_max_cost_is_stopped_and_fails_saying_so() {
    let dashboard = on(Arc::new(MemoryStore::default()));
    create(&dashboard, FunctionSpec { max_cost_usd: Some(0.25), ..FunctionSpec::new("f", "demo") }).await;
    let id = trigger(&dashboard, costing(20, 0.1)).await.expect("triggered");
    let execution = finished(&dashboard, id).await;
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(
        execution.error.as_deref(),
        Some("budget exceeded: max_cost_usd of function f (0.30 of 0.25)")
    );
    assert!((usage_of(&execution).cost_usd.expect("a cost") - 0.3).abs() < 1e-9, "what it spent is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_stops_the_run_that_crosses_it_then_refuses_triggers_even_after_a_restart() {
    let store: Arc<dyn DashboardStore> = Arc::new(MemoryStore::default());
    let dashboard = on(store.clone());
    create(&dashboard, FunctionSpec { daily_cost_usd: Some(0.5), ..FunctionSpec::new("f", "demo") }).await;
    let first = trigger(&dashboard, costing(3, 0.1)).await.expect("triggered");
    assert_eq!(finished(&dashboard, first).await.status, ExecutionStatus::Succeeded);
    let second = trigger(&dashboard, costing(20, 0.1)).await.expect("0.3 of 0.5 spent: allowed");
    let stopped = finished(&dashboard, second).await;
    assert_eq!(
        stopped.error.as_deref(),
        Some("budget exceeded: daily_cost_usd of function f (0.60 of 0.50)")
    );

    let refused = trigger(&dashboard, costing(1, 0.1)).await;
    let Err(EngineError::BudgetExhausted { budget, spent, limit }) = refused else { panic!("{refused:?}") };
    assert_eq!(budget, "daily_cost_usd of function f");
    assert!((spent - 0.6).abs() < 1e-9 && limit == 0.5, "{spent} of {limit}");
    let retried = dashboard.retry(&Principal::anonymous(), first).await;
    assert!(matches!(retried, Err(EngineError::BudgetExhausted { .. })), "{retried:?}");
    let continued = ContinueRequest { prompt: "more".into(), input: None };
    let continued = dashboard.continue_session(&Principal::anonymous(), first, continued).await;
    assert!(matches!(continued, Err(EngineError::BudgetExhausted { .. })), "{continued:?}");

    // The spend is the store's: a new engine on the same store refuses too.
    let restarted = on(store);
    let refused = trigger(&restarted, costing(1, 0.1)).await;
    assert!(matches!(refused, Err(EngineError::BudgetExhausted { .. })), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_token_budget_counts_tokens() {
    let dashboard = on(Arc::new(MemoryStore::default()));
    create(&dashboard, FunctionSpec { daily_tokens: Some(100), ..FunctionSpec::new("f", "demo") }).await;
    let first = trigger(&dashboard, json!({"steps": 2, "delay_ms": 1})).await.expect("triggered");
    assert_eq!(finished(&dashboard, first).await.status, ExecutionStatus::Succeeded, "92 tokens");
    let second = trigger(&dashboard, json!({"steps": 1, "delay_ms": 1})).await.expect("92 of 100: allowed");
    finished(&dashboard, second).await;
    let refused = trigger(&dashboard, json!({"steps": 1})).await;
    let Err(EngineError::BudgetExhausted { budget, spent, .. }) = refused else { panic!("{refused:?}") };
    assert_eq!((budget.as_str(), spent), ("daily_tokens of function f", 138.0));
    let said = trigger(&dashboard, json!({"steps": 1})).await.expect_err("refused").to_string();
    assert_eq!(said, "budget exhausted: daily_tokens of function f (138 of 100) spent today");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_daily_budget_holds_for_its_own_executions_only() {
    let dashboard = on(Arc::new(MemoryStore::default()));
    create(&dashboard, FunctionSpec::new("f", "demo")).await;
    let ci = Principal::token("ci", Scope::Trigger, None);
    let first = trigger_as(&dashboard, &ci, costing(3, 0.1)).await.expect("triggered");
    assert_eq!(finished(&dashboard, first).await.status, ExecutionStatus::Failed, "0.30 crosses ci's 0.25");
    let refused = trigger_as(&dashboard, &ci, costing(1, 0.1)).await;
    let Err(EngineError::BudgetExhausted { budget, .. }) = refused else { panic!("{refused:?}") };
    assert_eq!(budget, "daily_cost_usd of token ci");
    let alice = Principal::token("alice", Scope::Trigger, None);
    assert!(
        trigger_as(&dashboard, &alice, costing(1, 0.1)).await.is_ok(),
        "another token's budget is its own"
    );
}
