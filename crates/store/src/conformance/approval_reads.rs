//! Conformance cases for reading approvals back — the lists, the count of pending ones, a session's grant — their
//! retention with their execution, and a function's approval policy.

use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalPolicy, ApprovalStatus, ExecutionId,
    ExecutionStatus, Function, now,
};

use super::fixtures::{
    a_moment_between, advance, create_approval, decided, function, in_status, pending_approval, spec,
};
use crate::{ApprovalQuery, DashboardStore, FunctionKey};

/// The ids `list_approvals` returns for this query.
async fn listed(
    store: &dyn DashboardStore,
    pending_only: bool,
    execution: Option<ExecutionId>,
    limit: usize,
) -> Vec<ApprovalId> {
    let query = ApprovalQuery { pending_only, execution, limit };
    let approvals = store.list_approvals(&query).await.expect("listing approvals");
    approvals.iter().map(|approval| approval.id).collect()
}

/// Pending approvals are listed oldest first by id, all of them newest first; the execution filter keeps that
/// execution's; at most `limit` come back, a limit of 0 being read as 1; each comes back whole.
pub async fn approvals_are_listed_pending_oldest_first_and_all_newest_first(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let one = in_status(store, &alpha, ExecutionStatus::Running).await;
    let two = in_status(store, &alpha, ExecutionStatus::Running).await;
    let a1 = create_approval(store, pending_approval(&one, "a1"), None).await.approval.id;
    let b1 = create_approval(store, pending_approval(&two, "b1"), None).await.approval.id;
    let by_policy = decided(pending_approval(&one, "a2"), ApprovalStatus::Approved, "policy");
    let a2 = create_approval(store, by_policy, None).await.approval.id;
    // Asked earlier than the others by its clock, but its id is the newer: the id decides the order.
    let mut late = pending_approval(&one, "a3");
    late.requested_at = now() - Duration::from_secs(3600);
    let a3 = create_approval(store, late, None).await.approval.id;
    let b2 = create_approval(store, pending_approval(&two, "b2"), None).await.approval.id;
    let decline = ApprovalDecision::new(ApprovalStatus::Declined, "alice");
    store.decide_approval(b2, decline, None).await.expect("decline b2");

    assert_eq!(listed(store, true, None, 10).await, [a1, b1, a3]);
    assert_eq!(listed(store, false, None, 10).await, [b2, a3, a2, b1, a1]);
    assert_eq!(listed(store, true, Some(one.id), 10).await, [a1, a3]);
    assert_eq!(listed(store, false, Some(one.id), 10).await, [a3, a2, a1]);
    assert_eq!(listed(store, true, Some(two.id), 10).await, [b1]);
    assert_eq!(listed(store, false, Some(ExecutionId::generate()), 10).await, []);
    assert_eq!(listed(store, true, None, 2).await, [a1, b1]);
    assert_eq!(listed(store, false, None, 2).await, [b2, a3]);
    assert_eq!(listed(store, false, Some(one.id), 1).await, [a3]);
    assert_eq!(listed(store, true, None, 0).await, [a1], "a limit of 0 is read as 1");
    assert_eq!(listed(store, false, None, 0).await, [b2], "a limit of 0 is read as 1");

    let query = ApprovalQuery { pending_only: false, execution: None, limit: 10 };
    for approval in store.list_approvals(&query).await.expect("listing approvals") {
        let stored = store.get_approval(approval.id).await.expect("reading an approval");
        assert_eq!(stored.as_ref(), Some(&approval), "an approval is listed whole");
    }
}

/// Pending approvals are counted over every execution; a decided one is not counted, nor one stored decided.
pub async fn pending_approvals_are_counted_across_executions(store: &dyn DashboardStore) {
    let count = || async { store.count_pending_approvals().await.expect("counting pending approvals") };
    assert_eq!(count().await, 0, "a fresh store has none");
    let alpha = function(store, "alpha").await;
    let one = in_status(store, &alpha, ExecutionStatus::Running).await;
    let two = in_status(store, &alpha, ExecutionStatus::Running).await;
    let first = create_approval(store, pending_approval(&one, "a"), None).await.approval.id;
    create_approval(store, pending_approval(&one, "b"), None).await;
    let third = create_approval(store, pending_approval(&two, "c"), None).await.approval.id;
    create_approval(store, decided(pending_approval(&two, "d"), ApprovalStatus::Approved, "policy"), None)
        .await;
    assert_eq!(count().await, 3);
    let approve = ApprovalDecision::new(ApprovalStatus::Approved, "alice");
    store.decide_approval(first, approve, None).await.expect("approve");
    assert_eq!(count().await, 2);
    let expire = ApprovalDecision::new(ApprovalStatus::Expired, "dashboard");
    store.decide_approval(third, expire, None).await.expect("expire");
    assert_eq!(count().await, 1);
}

/// A session's grant is its newest approval approved for the session with that kind and grant key — stored so, or
/// decided so later; approvals of other sessions, kinds or keys, approved only once, declined or still pending are
/// never grants.
pub async fn a_session_grant_is_the_newest_approval_approved_for_the_session(store: &dyn DashboardStore) {
    use ApprovalKind::{Command, FileChange};
    use ApprovalStatus::{Approved, Declined, Expired, Pending};
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let grant = |session: &str, kind: ApprovalKind, key: &str, status: ApprovalStatus, for_session: bool| {
        let asked = Approval {
            session_id: Some(session.to_owned()),
            kind,
            grant_key: Some(key.to_owned()),
            ..pending_approval(&running, key)
        };
        if status == ApprovalStatus::Pending {
            return asked;
        }
        let decision = ApprovalDecision { for_session, ..ApprovalDecision::new(status, "alice") };
        decision.apply(&asked, now())
    };
    let find = |session: &str, kind: ApprovalKind, key: &str| {
        let (session, key) = (session.to_owned(), key.to_owned());
        async move { store.session_grant(&session, kind, &key).await.expect("looking up a grant") }
    };
    assert_eq!(find("thread-1", Command, "cargo test").await, None, "a fresh store has no grants");

    create_approval(store, grant("thread-1", Command, "cargo test", Approved, true), None).await;
    let newest = create_approval(store, grant("thread-1", Command, "cargo test", Approved, true), None).await;
    let never = [
        grant("thread-1", Command, "cargo test", Approved, false),
        grant("thread-1", Command, "cargo test", Declined, true),
        grant("thread-1", Command, "cargo test", Expired, false),
        grant("thread-1", Command, "cargo test", Pending, false),
        grant("thread-1", FileChange, "cargo test", Approved, true),
        grant("thread-1", Command, "cargo test --release", Approved, true),
        grant("thread-2", Command, "cargo test", Approved, true),
    ];
    let mut other_session = None;
    for approval in never {
        let is_thread_2 = approval.session_id.as_deref() == Some("thread-2");
        let stored = create_approval(store, approval, None).await.approval;
        if is_thread_2 {
            other_session = Some(stored);
        }
    }
    assert_eq!(find("thread-1", Command, "cargo test").await, Some(newest.approval), "the newest grant");
    assert_eq!(find("thread-2", Command, "cargo test").await, other_session, "each session its own");
    assert_eq!(find("thread-1", FileChange, "cargo test").await.map(|found| found.kind), Some(FileChange));
    assert_eq!(find("thread-1", ApprovalKind::Question, "cargo test").await, None);
    assert_eq!(find("thread-1", Command, "cargo").await, None, "a prefix of a key is another key");
    assert_eq!(find("thread-3", Command, "cargo test").await, None);

    // A pending approval approved for the session by a person becomes the newest grant.
    let asked = create_approval(store, grant("thread-1", Command, "cargo test", Pending, false), None).await;
    let for_session = ApprovalDecision { for_session: true, ..ApprovalDecision::new(Approved, "bob") };
    let decided = store.decide_approval(asked.approval.id, for_session, None).await.expect("approve");
    assert_eq!(find("thread-1", Command, "cargo test").await, Some(decided.approval));

    // So does one asked before the agent reported its session, when the decision brings the session.
    let unknown_session =
        Approval { session_id: None, ..grant("thread-1", Command, "cargo test", Pending, false) };
    let asked = create_approval(store, unknown_session, None).await;
    let with_session = ApprovalDecision {
        for_session: true,
        session_id: Some("thread-1".into()),
        ..ApprovalDecision::new(Approved, "bob")
    };
    let decided = store.decide_approval(asked.approval.id, with_session, None).await.expect("approve");
    assert_eq!(decided.approval.session_id.as_deref(), Some("thread-1"));
    assert_eq!(find("thread-1", Command, "cargo test").await, Some(decided.approval));
}

/// Pruning an execution deletes its approvals; an unfinished (waiting) execution and a recent one keep theirs.
pub async fn prune_deletes_the_approvals_of_pruned_executions(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let old = in_status(store, &alpha, ExecutionStatus::Running).await;
    let old_approval = create_approval(store, pending_approval(&old, "old"), None).await;
    let expire = ApprovalDecision::new(ApprovalStatus::Expired, "dashboard");
    let cancelled = advance(store, &old_approval.execution, ExecutionStatus::Cancelled).await;
    store.decide_approval(old_approval.approval.id, expire, None).await.expect("expire");
    let waiting = in_status(store, &alpha, ExecutionStatus::Running).await;
    let waits = create_approval(store, pending_approval(&waiting, "waits"), None).await.approval.id;
    let cutoff = a_moment_between().await;
    let recent = in_status(store, &alpha, ExecutionStatus::Running).await;
    let by_policy = decided(pending_approval(&recent, "recent"), ApprovalStatus::Approved, "policy");
    let recent_approval = create_approval(store, by_policy, None).await.approval.id;
    advance(store, &recent, ExecutionStatus::Succeeded).await;

    assert_eq!(store.prune_finished_before(cutoff, 100).await.expect("prune"), 1);
    assert_eq!(store.get_execution(cancelled.id).await.expect("get"), None);
    let gone = store.get_approval(old_approval.approval.id).await.expect("reading an approval");
    assert_eq!(gone, None, "the approval of a pruned execution remains");
    assert_eq!(listed(store, false, None, 10).await, [recent_approval, waits]);
    assert_eq!(listed(store, false, Some(cancelled.id), 10).await, []);
    assert_eq!(store.count_pending_approvals().await.expect("count"), 1);
}

/// A function keeps its approval policy and approval timeout through create, update, lookups and the list; a
/// function that sets neither has `auto` and no timeout of its own.
pub async fn a_function_keeps_its_approval_policy_and_timeout(store: &dyn DashboardStore) {
    let plain = function(store, "plain").await;
    assert_eq!((plain.approval_policy, plain.approval_timeout_secs), (ApprovalPolicy::Auto, None));
    let mut asking = spec("asking");
    asking.approval_policy = ApprovalPolicy::Ask;
    asking.approval_timeout_secs = Some(120);
    let created = Function::create(asking).expect("a valid spec");
    let created = store.create_function(created).await.expect("create").value;
    assert_eq!((created.approval_policy, created.approval_timeout_secs), (ApprovalPolicy::Ask, Some(120)));
    let read = |key: FunctionKey| async move { store.get_function(&key).await.expect("get") };
    assert_eq!(read(FunctionKey::Id(created.id)).await.as_ref(), Some(&created));
    assert_eq!(read(FunctionKey::Name("asking".into())).await.as_ref(), Some(&created));
    assert_eq!(read(FunctionKey::Id(plain.id)).await.as_ref(), Some(&plain));

    let mut denying = spec("asking");
    denying.approval_policy = ApprovalPolicy::Deny;
    let updated = store.update_function(created.id, denying, Some(1)).await.expect("update").value;
    assert_eq!((updated.approval_policy, updated.approval_timeout_secs), (ApprovalPolicy::Deny, None));
    assert_eq!(read(FunctionKey::Id(created.id)).await.as_ref(), Some(&updated));
    let mut timed = spec("asking");
    timed.approval_timeout_secs = Some(604_800);
    let updated = store.update_function(created.id, timed, Some(2)).await.expect("update").value;
    assert_eq!(
        (updated.approval_policy, updated.approval_timeout_secs),
        (ApprovalPolicy::Auto, Some(604_800))
    );
    assert_eq!(store.list_functions().await.expect("list"), [updated, plain]);
}
