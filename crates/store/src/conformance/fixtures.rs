//! Small helpers the conformance cases share: making functions, executions and approvals, moving executions along,
//! and checking that a refused change wrote nothing.

use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, Execution, ExecutionId,
    ExecutionStatus, Function, FunctionSpec, ItemBody, ItemStatus, NewItem, Timestamp, now,
};
use serde_json::{Value, json};

use crate::{ApprovalChange, DashboardStore, ExecutionQuery, ExecutionUpdate, NewExecution};

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

/// Stores an execution of `function` and moves it to `status` along a legal path: every status but `queued` is
/// reached through `running`.
pub(crate) async fn in_status(
    store: &dyn DashboardStore,
    function: &Function,
    status: ExecutionStatus,
) -> Execution {
    let execution = queued(store, function, json!({})).await;
    if status == ExecutionStatus::Queued {
        return execution;
    }
    let running = advance(store, &execution, ExecutionStatus::Running).await;
    if status == ExecutionStatus::Running {
        return running;
    }
    advance(store, &running, status).await
}

/// A pending approval, asked now, of `execution`'s agent to run `command` (also its grant key), expiring in an hour.
pub(crate) fn pending_approval(execution: &Execution, command: &str) -> Approval {
    let requested_at = now();
    Approval {
        id: ApprovalId::generate(),
        execution_id: execution.id,
        function: execution.function.clone(),
        backend: execution.backend.clone(),
        session_id: execution.session_id.clone(),
        kind: ApprovalKind::Command,
        summary: command.to_owned(),
        details: json!({"command": command, "cwd": "/work/repo", "reason": "to finish the task"}),
        item_id: Some(format!("call-{}", ApprovalId::generate())),
        grant_key: Some(command.to_owned()),
        status: ApprovalStatus::Pending,
        for_session: false,
        requested_at,
        expires_at: requested_at + Duration::from_secs(3600),
        decided_by: None,
        decided_at: None,
        note: None,
        answers: None,
    }
}

/// `approval` decided now, `status` by `decided_by`: as the function's policy stores it.
pub(crate) fn decided(approval: Approval, status: ApprovalStatus, decided_by: &str) -> Approval {
    ApprovalDecision::new(status, decided_by).apply(&approval, now())
}

/// Stores `approval` with `item`.
pub(crate) async fn create_approval(
    store: &dyn DashboardStore,
    approval: Approval,
    item: Option<NewItem>,
) -> ApprovalChange {
    let status = approval.status;
    let created = store.create_approval(approval, item).await;
    created.unwrap_or_else(|error| panic!("creating a {status} approval was refused: {error}"))
}

/// The transcript item of `approval`, in `status`.
pub(crate) fn approval_item(approval: &Approval, status: ItemStatus) -> NewItem {
    let body = ItemBody::Approval { approval_id: approval.id.to_string() };
    NewItem::new(format!("approval-{}", approval.id), status, body).expect("a valid test item")
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
