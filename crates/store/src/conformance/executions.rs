//! Conformance cases for executions: creation with idempotency keys, and status changes as a compare-and-set on
//! the status machine.

use dashboard_core::{CoreError, EventKind, ExecutionId, ExecutionStatus, NewEvent, now};
use serde_json::json;

use super::fixtures::{
    advance, all_executions, assert_no_event_after, function, in_status, last_event_id, new_execution, queued,
};
use crate::{DashboardStore, ExecutionUpdate, StoreError};

/// A new execution is stored `queued` with every field as given, and `execution.queued` is recorded.
pub async fn execution_create_records_queued(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let retried = queued(store, &alpha, json!({})).await;
    let mut trigger = new_execution(&alpha, json!({"issue_url": "https://example.com/1", "steps": 3}));
    trigger.attempt = 2;
    trigger.retry_of = Some(retried.id);
    trigger.idempotency_key = Some("key-1".into());
    trigger.triggered_by = Some("ci".into());

    let earliest = now();
    let recorded = store.create_execution(trigger.clone()).await.expect("create");
    let latest = now();
    let execution = recorded.value;
    assert_eq!(execution, trigger.into_execution(execution.created_at), "stored as given, queued");
    assert!((earliest..=latest).contains(&execution.created_at), "created_at is the time of the call");
    assert_eq!(
        recorded.event,
        NewEvent::for_execution(&execution).recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(last_event_id(store).await, recorded.event.id);
    assert_eq!(store.get_execution(execution.id).await.expect("get"), Some(execution));
    assert_eq!(store.get_execution(ExecutionId::generate()).await.expect("get unknown"), None);
}

/// Reusing an idempotency key returns the first execution as an error and writes nothing, not even an event.
pub async fn idempotency_key_reuse_returns_first_execution_and_writes_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let bravo = function(store, "bravo").await;
    let mut first = new_execution(&alpha, json!({"n": 1}));
    first.idempotency_key = Some("deploy-42".into());
    let first = store.create_execution(first).await.expect("first trigger").value;
    let before = last_event_id(store).await;

    // Another body, even another function: the key alone decides.
    let mut repeat = new_execution(&bravo, json!({"n": 2}));
    repeat.idempotency_key = Some("deploy-42".into());
    let result = store.create_execution(repeat.clone()).await;
    match result {
        Err(StoreError::IdempotencyKeyExists { existing }) => assert_eq!(*existing, first),
        other => panic!("expected IdempotencyKeyExists, got {other:?}"),
    }
    assert_eq!(store.get_execution(repeat.id).await.expect("get"), None, "the repeat was stored");
    assert_no_event_after(store, before, "a repeated idempotency key").await;

    let mut other_key = new_execution(&alpha, json!({"n": 3}));
    other_key.idempotency_key = Some("deploy-43".into());
    store.create_execution(other_key).await.expect("another key is another execution");
    queued(store, &alpha, json!({})).await;
    queued(store, &alpha, json!({})).await;
    assert_eq!(all_executions(store).await.len(), 4, "executions without a key never clash");
}

/// Each legal transition changes the status, sets the times and results it implies, and records its event.
pub async fn execution_update_follows_the_status_machine(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;

    let execution = queued(store, &alpha, json!({})).await;
    let started =
        store.update_execution(execution.id, ExecutionUpdate::new(Queued, Running)).await.expect("start");
    let running = started.value.clone();
    assert_eq!(running.status, Running);
    assert!(running.started_at.is_some_and(|at| at >= execution.created_at), "started_at is set on running");
    assert_eq!((running.finished_at, &running.output, &running.error), (None, &None, &None));
    assert_eq!(started.event, NewEvent::for_execution(&running).recorded(started.event.id, started.event.ts));

    let usage = json!({"input_tokens": 10, "output_tokens": 20});
    let update =
        ExecutionUpdate::new(Running, Succeeded).output(json!({"answer": 42})).usage(Some(usage.clone()));
    let succeeded = store.update_execution(execution.id, update).await.expect("succeed");
    let done = succeeded.value.clone();
    assert_eq!(
        (done.status, &done.output, &done.usage),
        (Succeeded, &Some(json!({"answer": 42})), &Some(usage))
    );
    assert_eq!(done.started_at, running.started_at, "started_at is kept");
    assert!(
        done.finished_at.is_some_and(|at| Some(at) >= done.started_at),
        "finished_at is set on a terminal status"
    );
    assert_eq!(
        succeeded.event,
        NewEvent::for_execution(&done).recorded(succeeded.event.id, succeeded.event.ts)
    );
    assert!(succeeded.event.id > started.event.id);
    assert_eq!(store.get_execution(execution.id).await.expect("get"), Some(done));

    // Every other legal path, each with the error it carries.
    for (from, to) in
        [(Queued, Failed), (Queued, Cancelled), (Running, Failed), (Running, TimedOut), (Running, Cancelled)]
    {
        let execution = queued(store, &alpha, json!({})).await;
        let execution = if from == Running { advance(store, &execution, Running).await } else { execution };
        let update = ExecutionUpdate::new(from, to).error(format!("reason: {to}"));
        let recorded = store.update_execution(execution.id, update).await.expect("a legal transition");
        let value = &recorded.value;
        assert_eq!((value.status, value.error.as_deref()), (to, Some(format!("reason: {to}").as_str())));
        assert!(value.finished_at.is_some(), "{from} → {to} must set finished_at");
        assert_eq!(value.started_at.is_some(), from == Running, "{from} → {to}: started_at only if it ran");
        assert_eq!(recorded.event.kind, to.event_kind());
        assert_eq!(
            recorded.event,
            NewEvent::for_execution(value).recorded(recorded.event.id, recorded.event.ts)
        );
        assert_eq!(store.get_execution(execution.id).await.expect("get").as_ref(), Some(value));
    }
}

/// A compare-and-set that finds another status than `from` is `StatusMismatch`, and writes nothing.
pub async fn execution_update_with_wrong_from_is_status_mismatch(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let waiting = queued(store, &alpha, json!({})).await;
    let running = in_status(store, &alpha, Running).await;
    let before = last_event_id(store).await;

    let result = store.update_execution(waiting.id, ExecutionUpdate::new(Running, Succeeded)).await;
    assert!(
        matches!(result, Err(StoreError::StatusMismatch { expected: Running, actual: Queued })),
        "got {result:?}"
    );
    // Two callers that both saw `queued`: the second one loses.
    let result = store.update_execution(running.id, ExecutionUpdate::new(Queued, Running)).await;
    assert!(
        matches!(result, Err(StoreError::StatusMismatch { expected: Queued, actual: Running })),
        "got {result:?}"
    );
    assert_eq!(store.get_execution(waiting.id).await.expect("get"), Some(waiting));
    assert_eq!(store.get_execution(running.id).await.expect("get"), Some(running));
    assert_no_event_after(store, before, "a lost compare-and-set").await;
}

/// A transition the status machine forbids is `Invalid`, even when `from` is right, and writes nothing.
pub async fn illegal_execution_transition_is_invalid(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let queued = queued(store, &alpha, json!({})).await;
    let running = in_status(store, &alpha, Running).await;
    let waiting = in_status(store, &alpha, Waiting).await;
    let before = last_event_id(store).await;
    let cases = [
        (&queued, Succeeded),
        (&queued, TimedOut),
        (&queued, Queued),
        (&queued, Waiting),
        (&running, Queued),
        (&running, Running),
        (&waiting, Succeeded),
        (&waiting, Queued),
        (&waiting, Waiting),
    ];
    for (execution, to) in cases {
        let from = execution.status;
        let result = store.update_execution(execution.id, ExecutionUpdate::new(from, to)).await;
        assert!(
            matches!(&result, Err(StoreError::Invalid(CoreError::IllegalTransition { from: f, to: t })) if (*f, *t) == (from, to)),
            "{from} → {to}: got {result:?}"
        );
        assert_eq!(store.get_execution(execution.id).await.expect("get").as_ref(), Some(execution));
    }
    assert_no_event_after(store, before, "an illegal transition").await;
}

/// A running execution waits (`execution.waiting`) and runs again (`execution.resumed`, `started_at` kept), and a
/// waiting one may end `failed`, `timed_out` or `cancelled`, like a running one.
pub async fn a_waiting_execution_runs_again_or_ends(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, Running).await;
    let waits =
        store.update_execution(running.id, ExecutionUpdate::new(Running, Waiting)).await.expect("wait");
    assert_eq!(waits.value, dashboard_core::Execution { status: Waiting, ..running.clone() });
    assert_eq!(waits.event.kind, EventKind::ExecutionWaiting);
    assert_eq!(waits.event, NewEvent::for_execution(&waits.value).recorded(waits.event.id, waits.event.ts));
    let resumed = store.update_execution(running.id, ExecutionUpdate::new(Waiting, Running)).await;
    let resumed = resumed.expect("resume");
    assert_eq!(resumed.value, running, "running again, started_at kept");
    assert_eq!(resumed.event.kind, EventKind::ExecutionResumed);
    assert_eq!(
        resumed.event,
        NewEvent::for_change(Waiting, &resumed.value).recorded(resumed.event.id, resumed.event.ts)
    );
    assert_eq!(store.get_execution(running.id).await.expect("get"), Some(resumed.value));

    for end in [Failed, TimedOut, Cancelled] {
        let waiting = in_status(store, &alpha, Waiting).await;
        let update = ExecutionUpdate::new(Waiting, end).error(format!("reason: {end}"));
        let ended = store.update_execution(waiting.id, update).await.expect("a legal transition");
        let value = &ended.value;
        assert_eq!((value.status, value.error.as_deref()), (end, Some(format!("reason: {end}").as_str())));
        assert!(value.finished_at.is_some(), "waiting → {end} must set finished_at");
        assert_eq!(value.started_at, waiting.started_at, "waiting → {end} keeps started_at");
        assert_eq!(ended.event, NewEvent::for_execution(value).recorded(ended.event.id, ended.event.ts));
        assert_eq!(store.get_execution(waiting.id).await.expect("get").as_ref(), Some(value));
    }
}

/// A terminal execution never changes again, whatever the caller claims its status is.
pub async fn terminal_execution_never_changes(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    for terminal in ExecutionStatus::ALL.into_iter().filter(|status| status.is_terminal()) {
        let finished = in_status(store, &alpha, terminal).await;
        let before = last_event_id(store).await;
        for from in ExecutionStatus::ALL {
            for to in ExecutionStatus::ALL {
                let update = ExecutionUpdate::new(from, to).output(json!("late")).error("late");
                let result = store.update_execution(finished.id, update).await;
                let refused = if from == terminal {
                    matches!(result, Err(StoreError::Invalid(_)))
                } else {
                    matches!(result, Err(StoreError::StatusMismatch { .. } | StoreError::Invalid(_)))
                };
                assert!(refused, "{terminal} execution, update {from} → {to}: got {result:?}");
            }
        }
        assert_eq!(store.get_execution(finished.id).await.expect("get").as_ref(), Some(&finished));
        assert_no_event_after(store, before, "an update of a terminal execution").await;
    }
}

/// Updating an execution that does not exist is `NotFound`, and writes nothing.
pub async fn execution_update_of_unknown_id_is_not_found(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    queued(store, &alpha, json!({})).await;
    let before = last_event_id(store).await;
    let unknown = ExecutionId::generate();
    let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
    let result = store.update_execution(unknown, update).await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "execution", .. })), "got {result:?}");
    assert_eq!(store.get_execution(unknown).await.expect("get"), None);
    assert_no_event_after(store, before, "an update of an unknown execution").await;
}

/// The instance given with `running` is stored on the execution; a later change without one keeps it.
pub async fn the_instance_that_runs_an_execution_is_kept(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    assert_eq!(execution.instance, None, "a queued execution has run nowhere yet");
    let start = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running).instance("i-north");
    let running = store.update_execution(execution.id, start).await.expect("start").value;
    assert_eq!(running.instance.as_deref(), Some("i-north"));
    let finish = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded).output(json!(1));
    let finished = store.update_execution(execution.id, finish).await.expect("finish").value;
    assert_eq!(finished.instance.as_deref(), Some("i-north"), "the end keeps who ran it");
    let stored = store.get_execution(execution.id).await.expect("get").expect("stored");
    assert_eq!(stored, finished);
}
