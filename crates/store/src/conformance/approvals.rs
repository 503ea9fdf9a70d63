//! Conformance cases for approvals: a request stored with its events, its item and the `running → waiting` it
//! causes, and a decision as a compare-and-set on `pending` that lets the execution run again once nothing else is
//! pending.

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, CoreError, EventKind, Execution,
    ExecutionId, ExecutionStatus, Item, ItemBody, ItemStatus, MessageRole, NewEvent, NewItem, now,
};
use serde_json::json;

use super::fixtures::{
    advance, approval_item, create_approval, decided, function, in_status, last_event_id, pending_approval,
};
use crate::{ApprovalChange, DashboardStore, StoreError};

/// Panics unless `change` recorded exactly events of the `expected` kinds, each saying what [`NewEvent`] says of the
/// change, and the feed holds exactly them, in id order, after `before`.
async fn assert_recorded(
    store: &dyn DashboardStore,
    before: u64,
    change: &ApprovalChange,
    expected: &[EventKind],
) {
    let kinds: Vec<EventKind> = change.events.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, expected, "the events of the change");
    for event in &change.events {
        let said = match event.kind {
            EventKind::ApprovalRequested | EventKind::ApprovalDecided => {
                NewEvent::for_approval(event.kind, &change.approval)
            }
            EventKind::ExecutionWaiting => NewEvent::for_change(ExecutionStatus::Running, &change.execution),
            EventKind::ExecutionResumed => NewEvent::for_change(ExecutionStatus::Waiting, &change.execution),
            other => panic!("an approval change recorded {other}"),
        };
        assert_eq!(event, &said.recorded(event.id, event.ts));
    }
    let feed = store.list_events(before, 100).await.expect("listing events");
    assert_eq!(feed, change.events, "the feed holds exactly the change's events, in id order");
}

/// Whether `result` is `Invalid` naming `field`.
fn is_invalid<T>(result: &Result<T, StoreError>, field: &str) -> bool {
    matches!(result, Err(StoreError::Invalid(CoreError::InvalidField { field: named, .. })) if named == field)
}

/// Whether `result` is `NotFound` naming `entity` and `key`.
fn is_not_found<T>(result: &Result<T, StoreError>, entity: &str, key: impl ToString) -> bool {
    match result {
        Err(StoreError::NotFound { entity: named, key: missing }) => {
            *named == entity && *missing == key.to_string()
        }
        _ => false,
    }
}

async fn read_execution(store: &dyn DashboardStore, id: ExecutionId) -> Option<Execution> {
    store.get_execution(id).await.expect("reading an execution")
}

async fn read_approval(store: &dyn DashboardStore, id: ApprovalId) -> Option<Approval> {
    store.get_approval(id).await.expect("reading an approval")
}

async fn read_items(store: &dyn DashboardStore, id: ExecutionId) -> Vec<Item> {
    store.list_items(id, 0, 1000).await.expect("listing items")
}

/// Panics unless the refused change wrote nothing: no event, no approval, no item, the execution as it was.
async fn assert_nothing_stored(store: &dyn DashboardStore, before: u64, refused: &Approval, was: &Execution) {
    let events = store.list_events(before, 10).await.expect("listing events");
    assert!(events.is_empty(), "a refused approval recorded events: {events:?}");
    assert_eq!(read_approval(store, refused.id).await, None, "a refused approval was stored");
    assert_eq!(
        read_execution(store, was.id).await.as_ref(),
        Some(was),
        "a refused approval changed its execution"
    );
    assert!(read_items(store, was.id).await.is_empty(), "a refused approval stored its item");
}

/// A pending approval of a `running` execution is stored as given and moves the execution to `waiting` (nothing else
/// of it changes): `approval.requested`, then `execution.waiting`.
pub async fn a_pending_approval_moves_a_running_execution_to_waiting(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let before = last_event_id(store).await;
    let request = pending_approval(&running, "cargo publish");

    let change = create_approval(store, request.clone(), None).await;
    assert_eq!(change.approval, request, "stored as given");
    assert_eq!(change.execution, Execution { status: ExecutionStatus::Waiting, ..running.clone() });
    assert!(change.items.is_empty(), "no item given, none stored");
    assert_recorded(store, before, &change, &[EventKind::ApprovalRequested, EventKind::ExecutionWaiting])
        .await;
    assert_eq!(read_approval(store, request.id).await, Some(request));
    assert_eq!(read_execution(store, running.id).await, Some(change.execution));
    assert_eq!(read_approval(store, ApprovalId::generate()).await, None, "an unknown approval");
}

/// A second pending approval of a `waiting` execution records only `approval.requested`: the execution waits already.
pub async fn a_second_pending_approval_of_a_waiting_execution_changes_no_status(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let first = create_approval(store, pending_approval(&running, "rm -rf build"), None).await;
    let before = last_event_id(store).await;

    let second = create_approval(store, pending_approval(&running, "git push"), None).await;
    assert_eq!(second.execution, first.execution, "the waiting execution is unchanged");
    assert_recorded(store, before, &second, &[EventKind::ApprovalRequested]).await;
    assert_eq!(read_execution(store, running.id).await, Some(first.execution));
    assert_eq!(store.count_pending_approvals().await.expect("count"), 2);
}

/// A pending approval needs its execution `running` or `waiting`: of a queued or finished one it is a
/// `StatusMismatch` expecting `running`, and nothing is stored, not its item nor an event.
pub async fn a_pending_approval_of_an_execution_neither_running_nor_waiting_is_a_status_mismatch(
    store: &dyn DashboardStore,
) {
    let alpha = function(store, "alpha").await;
    let others = ExecutionStatus::ALL
        .into_iter()
        .filter(|status| !matches!(status, ExecutionStatus::Running | ExecutionStatus::Waiting));
    for status in others {
        let stuck = in_status(store, &alpha, status).await;
        let before = last_event_id(store).await;
        let request = pending_approval(&stuck, "make deploy");
        let item = approval_item(&request, ItemStatus::InProgress);
        let result = store.create_approval(request.clone(), Some(item)).await;
        let mismatch = match &result {
            Err(StoreError::StatusMismatch { expected, actual }) => Some((*expected, *actual)),
            _ => None,
        };
        let what = format!("a pending approval of a {status} execution: got {result:?}");
        assert_eq!(mismatch, Some((ExecutionStatus::Running, status)), "{what}");
        assert_nothing_stored(store, before, &request, &stuck).await;
    }
    assert_eq!(store.count_pending_approvals().await.expect("count"), 0);
}

/// An approval stored already decided (by the policy or a session's grant) records `approval.requested` then
/// `approval.decided` and changes no status, whatever the execution's; every field is read back as given.
pub async fn an_approval_stored_decided_records_requested_and_decided_and_changes_no_status(
    store: &dyn DashboardStore,
) {
    let alpha = function(store, "alpha").await;
    for status in ExecutionStatus::ALL {
        let execution = in_status(store, &alpha, status).await;
        let before = last_event_id(store).await;
        let mut request = pending_approval(&execution, "Which database?");
        request.kind = ApprovalKind::Question;
        request.details =
            json!({"questions": [{"id": "db", "question": "Which database? ✓", "options": ["pg"]}]});
        request.session_id = Some("thread-1".into());
        let answered = ApprovalDecision {
            for_session: true,
            note: Some("as before".into()),
            answers: Some(json!({"db": ["pg"]})),
            ..ApprovalDecision::new(ApprovalStatus::Approved, "session grant")
        };
        let request = answered.apply(&request, now());

        let change = create_approval(store, request.clone(), None).await;
        assert_eq!(change.approval, request, "stored as given");
        assert_eq!(change.execution, execution, "{status}: an approval stored decided moves no execution");
        assert_recorded(store, before, &change, &[EventKind::ApprovalRequested, EventKind::ApprovalDecided])
            .await;
        assert_eq!(read_approval(store, request.id).await, Some(request));
        assert_eq!(read_execution(store, execution.id).await, Some(execution));
    }
    let declined = in_status(store, &alpha, ExecutionStatus::Running).await;
    let request =
        decided(pending_approval(&declined, "curl evil.example"), ApprovalStatus::Declined, "policy");
    let change = create_approval(store, request.clone(), None).await;
    assert_eq!((change.approval, change.execution), (request, declined), "a decline by policy moves nothing");
    assert_eq!(store.count_pending_approvals().await.expect("count"), 0);
}

/// An approval whose id exists already is `Invalid` naming `id` — whatever its execution and status — and nothing is
/// stored; the id is checked after the execution is found and before its status is.
pub async fn an_approval_with_a_taken_id_is_invalid_and_writes_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let first = create_approval(store, pending_approval(&running, "npm publish"), None).await.approval;

    let other = in_status(store, &alpha, ExecutionStatus::Running).await;
    let queued = in_status(store, &alpha, ExecutionStatus::Queued).await;
    let taken = |execution: &Execution| Approval { id: first.id, ..pending_approval(execution, "ls") };
    let cases = [
        (&other, taken(&other)),
        (&other, decided(taken(&other), ApprovalStatus::Approved, "policy")),
        (&queued, taken(&queued)),
    ];
    for (execution, again) in cases {
        let before = last_event_id(store).await;
        let item = approval_item(&again, ItemStatus::InProgress);
        let result = store.create_approval(again.clone(), Some(item)).await;
        assert!(
            is_invalid(&result, "id"),
            "{} approval of a {} execution: got {result:?}",
            again.status,
            execution.status
        );
        assert_eq!(
            read_approval(store, first.id).await.as_ref(),
            Some(&first),
            "the first approval was changed"
        );
        let events = store.list_events(before, 10).await.expect("listing events");
        assert!(events.is_empty(), "a refused approval recorded events: {events:?}");
        assert_eq!(read_execution(store, execution.id).await.as_ref(), Some(execution));
        assert!(read_items(store, execution.id).await.is_empty(), "a refused approval stored its item");
    }
}

/// An approval of an unknown execution is `NotFound` (before its id is checked), and nothing is stored.
pub async fn an_approval_of_an_unknown_execution_is_not_found(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let first = create_approval(store, pending_approval(&running, "make"), None).await.approval;
    let before = last_event_id(store).await;
    let unknown = ExecutionId::generate();
    for id in [ApprovalId::generate(), first.id] {
        let request = Approval { id, execution_id: unknown, ..pending_approval(&running, "make install") };
        let result = store.create_approval(request, None).await;
        assert!(is_not_found(&result, "execution", unknown), "got {result:?}");
    }
    let events = store.list_events(before, 10).await.expect("listing events");
    assert!(events.is_empty(), "a refused approval recorded events: {events:?}");
    assert_eq!(store.count_pending_approvals().await.expect("count"), 1);
}

/// A decision is a compare-and-set on `pending`: it writes the decision with `decided_at` = the time of the call and
/// records `approval.decided`; any later decision is `AlreadyDecided` carrying the approval as stored, and writes
/// nothing. An approval stored decided is never pending.
pub async fn deciding_is_a_compare_and_set_on_pending(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let request = create_approval(store, pending_approval(&running, "rm -rf build"), None).await.approval;
    // The agent reported its session after it asked: the decision writes it onto the approval.
    let decision = ApprovalDecision {
        for_session: true,
        note: Some("just this once".into()),
        session_id: Some("thread-1".into()),
        ..ApprovalDecision::new(ApprovalStatus::Approved, "alice")
    };
    let before = last_event_id(store).await;
    let earliest = now();
    let change = store.decide_approval(request.id, decision.clone(), None).await.expect("decide");
    let latest = now();
    let decided_at = change.approval.decided_at.expect("decided_at is set");
    assert!((earliest..=latest).contains(&decided_at), "decided_at is the time of the call");
    assert_eq!(change.approval, decision.apply(&request, decided_at));
    assert_eq!(change.approval.session_id.as_deref(), Some("thread-1"), "the session is written onto it");
    assert_recorded(store, before, &change, &[EventKind::ApprovalDecided, EventKind::ExecutionResumed]).await;
    let stored = change.approval;
    assert_eq!(read_approval(store, request.id).await.as_ref(), Some(&stored));

    let before = last_event_id(store).await;
    let late = [
        ApprovalDecision::new(ApprovalStatus::Declined, "bob"),
        ApprovalDecision::new(ApprovalStatus::Expired, "dashboard"),
        decision,
    ];
    for second in late {
        let result = store.decide_approval(request.id, second.clone(), None).await;
        assert!(
            matches!(&result, Err(StoreError::AlreadyDecided { existing }) if **existing == stored),
            "a second decision ({}): got {result:?}",
            second.status
        );
    }
    let policy = decided(pending_approval(&running, "ls"), ApprovalStatus::Declined, "policy");
    let policy = create_approval(store, policy, None).await.approval;
    let before_policy = last_event_id(store).await;
    let result =
        store.decide_approval(policy.id, ApprovalDecision::new(ApprovalStatus::Approved, "bob"), None).await;
    assert!(
        matches!(&result, Err(StoreError::AlreadyDecided { existing }) if **existing == policy),
        "deciding an approval stored decided: got {result:?}"
    );
    assert_eq!(read_approval(store, request.id).await, Some(stored), "a late decision changed the approval");
    assert_eq!(read_approval(store, policy.id).await, Some(policy));
    let events = store.list_events(before_policy, 10).await.expect("listing events");
    assert!(events.is_empty(), "a refused decision recorded events: {events:?}");
    assert_eq!(
        store.list_events(before, 10).await.expect("listing events").len(),
        2,
        "the policy's approval"
    );
}

/// Deciding one of two pending approvals leaves the execution `waiting`; deciding the last one moves it back to
/// `running` (`approval.decided`, then `execution.resumed`) and keeps `started_at`. Another execution's pending
/// approvals hold it back no more than a decline does.
pub async fn deciding_the_last_pending_approval_resumes_the_execution(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let first = create_approval(store, pending_approval(&running, "cargo test"), None).await.approval;
    let second = create_approval(store, pending_approval(&running, "cargo bench"), None).await;
    let waiting = second.execution;
    let neighbour = in_status(store, &alpha, ExecutionStatus::Running).await;
    create_approval(store, pending_approval(&neighbour, "make"), None).await;

    let before = last_event_id(store).await;
    let decline = ApprovalDecision::new(ApprovalStatus::Declined, "alice");
    let change = store.decide_approval(first.id, decline, None).await.expect("decide the first");
    assert_eq!(change.execution, waiting, "another approval is still pending");
    assert_recorded(store, before, &change, &[EventKind::ApprovalDecided]).await;

    let before = last_event_id(store).await;
    let approve = ApprovalDecision::new(ApprovalStatus::Approved, "alice");
    let change = store.decide_approval(second.approval.id, approve, None).await.expect("decide the last");
    assert_eq!(change.execution, Execution { status: ExecutionStatus::Running, ..waiting });
    assert_eq!(change.execution.started_at, running.started_at, "started_at is kept");
    assert_recorded(store, before, &change, &[EventKind::ApprovalDecided, EventKind::ExecutionResumed]).await;
    assert_eq!(read_execution(store, running.id).await, Some(change.execution));
    let neighbour = read_execution(store, neighbour.id).await.expect("the other execution");
    assert_eq!(neighbour.status, ExecutionStatus::Waiting, "another execution's decision moved this one");
}

/// A decision moves no execution that is not `waiting`: one that ended keeps its end, one already running again
/// stays as it is; only `approval.decided` is recorded.
pub async fn deciding_changes_no_status_of_an_execution_that_is_not_waiting(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    for end in [
        ExecutionStatus::Cancelled,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Failed,
        ExecutionStatus::Running,
    ] {
        let running = in_status(store, &alpha, ExecutionStatus::Running).await;
        let request = create_approval(store, pending_approval(&running, "deploy"), None).await;
        let moved = advance(store, &request.execution, end).await;
        let before = last_event_id(store).await;
        let expire = ApprovalDecision::new(ApprovalStatus::Expired, "dashboard");
        let change = store.decide_approval(request.approval.id, expire, None).await.expect("decide");
        assert_eq!(change.approval.status, ApprovalStatus::Expired);
        assert_eq!(change.execution, moved, "a decision moved a {end} execution");
        assert_recorded(store, before, &change, &[EventKind::ApprovalDecided]).await;
        assert_eq!(read_execution(store, running.id).await, Some(moved));
    }
}

/// A decision of status `pending` is `Invalid` naming `status`, and an unknown approval is `NotFound` (entity
/// `approval`); neither writes anything.
pub async fn a_decision_that_decides_nothing_is_refused(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let change = create_approval(store, pending_approval(&running, "deploy"), None).await;
    let before = last_event_id(store).await;

    let undecided = ApprovalDecision::new(ApprovalStatus::Pending, "alice");
    let item = approval_item(&change.approval, ItemStatus::Completed);
    let result = store.decide_approval(change.approval.id, undecided, Some(item.clone())).await;
    assert!(is_invalid(&result, "status"), "got {result:?}");
    let unknown = ApprovalId::generate();
    let approve = ApprovalDecision::new(ApprovalStatus::Approved, "alice");
    let result = store.decide_approval(unknown, approve, Some(item)).await;
    assert!(is_not_found(&result, "approval", unknown), "got {result:?}");
    assert_eq!(read_approval(store, change.approval.id).await, Some(change.approval));
    assert_eq!(read_execution(store, running.id).await, Some(change.execution));
    assert!(read_items(store, running.id).await.is_empty(), "a refused decision stored its item");
    let events = store.list_events(before, 10).await.expect("listing events");
    assert!(events.is_empty(), "a refused decision recorded events: {events:?}");
}

/// The item given with a request or a decision is upserted in the same step, as `upsert_items` does (numbered after
/// the execution's items, then updated in place); a refused change stores none.
pub async fn an_approval_is_stored_with_its_item(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let said = ItemBody::Message { role: MessageRole::Agent, text: "I need to deploy.".into() };
    let message = NewItem::new("m1", ItemStatus::Completed, said).expect("a valid test item");
    store.upsert_items(running.id, vec![message]).await.expect("upsert");

    let request = pending_approval(&running, "deploy");
    let asked = approval_item(&request, ItemStatus::InProgress);
    let created = create_approval(store, request.clone(), Some(asked.clone())).await;
    assert_eq!(created.items.len(), 1, "{:?}", created.items);
    let item = &created.items[0];
    assert_eq!((item.id.as_str(), item.seq, item.status), (asked.id.as_str(), 2, ItemStatus::InProgress));
    assert_eq!(item.body, asked.body);
    assert_eq!(read_items(store, running.id).await[1..], created.items);

    let approve = ApprovalDecision::new(ApprovalStatus::Approved, "alice");
    let answered = approval_item(&request, ItemStatus::Completed);
    let decision = store.decide_approval(request.id, approve.clone(), Some(answered)).await.expect("decide");
    let updated = &decision.items[..];
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!((updated[0].seq, updated[0].status, updated[0].ts), (2, ItemStatus::Completed, item.ts));
    assert_eq!(read_items(store, running.id).await[1..], *updated);

    let late = NewItem::new("late", ItemStatus::Completed, asked.body).expect("a valid test item");
    let result = store.decide_approval(request.id, approve, Some(late)).await;
    assert!(matches!(result, Err(StoreError::AlreadyDecided { .. })), "got {result:?}");
    assert_eq!(read_items(store, running.id).await.len(), 2, "a refused decision stored its item");

    let policy = decided(pending_approval(&running, "ls"), ApprovalStatus::Approved, "policy");
    let recorded = approval_item(&policy, ItemStatus::Completed);
    let created = create_approval(store, policy, Some(recorded)).await;
    assert_eq!(
        created.items.iter().map(|item| item.seq).collect::<Vec<_>>(),
        [3],
        "stored decided, with its item"
    );
}
