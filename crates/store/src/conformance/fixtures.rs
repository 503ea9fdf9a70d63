//! Small helpers the conformance cases share: making functions and executions, moving executions along, and checking
//! that a refused change wrote nothing.

use std::time::Duration;

use dashboard_core::{Execution, ExecutionId, ExecutionStatus, Function, FunctionSpec, Timestamp, now};
use serde_json::{Value, json};

use crate::{DashboardStore, ExecutionQuery, ExecutionUpdate, NewExecution};

/// A valid spec on the `demo` backend.
pub(crate) fn spec(name: &str) -> FunctionSpec {
    FunctionSpec::new(name, "demo")
}

/// Stores a new function named `name`.
pub(crate) async fn function(store: &dyn DashboardStore, name: &str) -> Function {
    let function = Function::create(spec(name)).expect("the test spec is valid");
    store.create_function(function).await.expect("creating a function with a fresh name").value
}

/// A trigger of `function` with `input` and nothing optional set.
pub(crate) fn new_execution(function: &Function, input: Value) -> NewExecution {
    NewExecution::of(function, input)
}

/// Stores a queued execution of `function` with `input`.
pub(crate) async fn queued(store: &dyn DashboardStore, function: &Function, input: Value) -> Execution {
    store.create_execution(new_execution(function, input)).await.expect("creating an execution").value
}

/// Moves `execution` from its current status to `to`.
pub(crate) async fn advance(
    store: &dyn DashboardStore,
    execution: &Execution,
    to: ExecutionStatus,
) -> Execution {
    let update = ExecutionUpdate::new(execution.status, to);
    let recorded = store.update_execution(execution.id, update).await;
    recorded.unwrap_or_else(|error| panic!("{} → {to} was refused: {error}", execution.status)).value
}

/// Stores an execution of `function` and moves it to `status` along a legal path.
pub(crate) async fn in_status(
    store: &dyn DashboardStore,
    function: &Function,
    status: ExecutionStatus,
) -> Execution {
    let execution = queued(store, function, json!({})).await;
    match status {
        ExecutionStatus::Queued => execution,
        ExecutionStatus::Running => advance(store, &execution, ExecutionStatus::Running).await,
        terminal => {
            let running = advance(store, &execution, ExecutionStatus::Running).await;
            advance(store, &running, terminal).await
        }
    }
}

/// Every execution in the store, newest first, read through the list in one big page.
pub(crate) async fn all_executions(store: &dyn DashboardStore) -> Vec<Execution> {
    let query = ExecutionQuery { limit: 10_000, ..ExecutionQuery::default() };
    store.list_executions(&query).await.expect("listing executions").items
}

/// The id of the newest event.
pub(crate) async fn last_event_id(store: &dyn DashboardStore) -> u64 {
    store.last_event_id().await.expect("reading the last event id")
}

/// Panics when an event was recorded after `last_seen`: a refused change must write nothing.
pub(crate) async fn assert_no_event_after(store: &dyn DashboardStore, last_seen: u64, what: &str) {
    let events = store.list_events(last_seen, 10).await.expect("listing events");
    assert!(events.is_empty(), "{what} recorded events: {events:?}");
}

/// A time strictly between what happened before this call and what happens after it.
pub(crate) async fn a_moment_between() -> Timestamp {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    cutoff
}

/// The ids of `executions`, in order.
pub(crate) fn ids(executions: &[Execution]) -> Vec<ExecutionId> {
    executions.iter().map(|execution| execution.id).collect()
}
