//! Conformance cases for sessions and diffs: the agent's session id and the execution a follow-up turn continues,
//! and the run's diff stored with its final status and read apart from the execution.

use dashboard_core::{ExecutionId, ExecutionStatus};
use serde_json::json;

use super::fixtures::{
    a_moment_between, all_executions, assert_no_event_after, function, in_status, last_event_id,
    new_execution,
};
use crate::{DashboardStore, ExecutionUpdate, StoreError};

/// A follow-up turn is stored with the execution it continues and its session, read alike by id and in lists.
pub async fn a_follow_up_turn_is_stored_with_its_session_and_the_execution_it_continues(
    store: &dyn DashboardStore,
) {
    let alpha = function(store, "alpha").await;
    let first = in_status(store, &alpha, ExecutionStatus::Succeeded).await;
    assert_eq!((&first.session_id, first.continues), (&None, None), "a first turn has neither");
    let mut turn = new_execution(&alpha, json!({}));
    turn.continues = Some(first.id);
    turn.session_id = Some("thread-1".into());
    turn.prompt = Some("And now the tests, please.".into());
    let stored = store.create_execution(turn.clone()).await.expect("create").value;
    assert_eq!(stored, turn.into_execution(stored.created_at), "stored as given");
    assert_eq!(store.get_execution(stored.id).await.expect("get").as_ref(), Some(&stored));
    assert_eq!(all_executions(store).await.first(), Some(&stored), "listed with its session");
}

/// The session id is set on an execution while it runs, replaces one set before, records no event, and is read back;
/// an unknown execution is not found.
pub async fn a_session_id_is_set_while_the_execution_runs_without_an_event(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let before = last_event_id(store).await;
    let set = store.set_session_id(running.id, "thread-1").await.expect("set");
    assert_eq!((set.session_id.as_deref(), set.status), (Some("thread-1"), ExecutionStatus::Running));
    let set = store.set_session_id(running.id, "thread-2").await.expect("set again");
    assert_eq!(set.session_id.as_deref(), Some("thread-2"), "a later report replaces the first");
    assert_eq!(store.get_execution(running.id).await.expect("get"), Some(set.clone()));
    assert_no_event_after(store, before, "setting a session id").await;

    let finished = store
        .update_execution(
            running.id,
            ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded),
        )
        .await
        .expect("finish")
        .value;
    assert_eq!(finished.session_id.as_deref(), Some("thread-2"), "a status change keeps the session");

    let unknown = ExecutionId::generate();
    let result = store.set_session_id(unknown, "thread-3").await;
    assert!(matches!(result, Err(StoreError::NotFound { .. })), "got {result:?}");
}

/// A diff is stored with the status change that carries it and read apart from the execution; a change without one
/// keeps it, a refused change stores none, and an execution without one (or an unknown one) has none.
pub async fn a_diff_is_stored_with_the_status_change_and_read_apart(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let running = in_status(store, &alpha, Running).await;
    let diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n".to_owned();

    let refused = ExecutionUpdate::new(Queued, Failed).diff(Some("refused".into()));
    let result = store.update_execution_with_logs(running.id, refused, Vec::new(), Vec::new()).await;
    assert!(matches!(result, Err(StoreError::StatusMismatch { .. })), "got {result:?}");
    assert_eq!(store.get_diff(running.id).await.expect("diff"), None, "a refused change stored its diff");

    let update = ExecutionUpdate::new(Running, Succeeded).diff(Some(diff.clone()));
    let finished = store.update_execution_with_logs(running.id, update, Vec::new(), Vec::new()).await;
    let finished = finished.expect("finish with a diff").recorded.value;
    assert_eq!(store.get_diff(running.id).await.expect("diff"), Some(diff.clone()));
    assert_eq!(store.get_execution(running.id).await.expect("get"), Some(finished), "the diff is not in it");

    let other = in_status(store, &alpha, Running).await;
    let update = ExecutionUpdate::new(Running, Failed).diff(Some("first".into()));
    store.update_execution(other.id, update).await.expect("fail with a diff");
    assert_eq!(store.get_diff(other.id).await.expect("diff").as_deref(), Some("first"));

    let plain = in_status(store, &alpha, Succeeded).await;
    assert_eq!(store.get_diff(plain.id).await.expect("diff"), None, "an execution without a diff has one");
    assert_eq!(store.get_diff(ExecutionId::generate()).await.expect("diff"), None);
    assert_eq!(
        store.get_diff(running.id).await.expect("diff"),
        Some(diff),
        "another execution's diff replaced it"
    );
}

/// Pruning an execution deletes its diff.
pub async fn prune_deletes_the_diffs_of_pruned_executions(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let old = in_status(store, &alpha, Running).await;
    let update = ExecutionUpdate::new(Running, Succeeded).diff(Some("+old\n".into()));
    store.update_execution(old.id, update).await.expect("finish");
    let cutoff = a_moment_between().await;
    let recent = in_status(store, &alpha, Running).await;
    let update = ExecutionUpdate::new(Running, Succeeded).diff(Some("+new\n".into()));
    store.update_execution(recent.id, update).await.expect("finish");

    assert_eq!(store.prune_finished_before(cutoff, 100).await.expect("prune"), 1);
    assert_eq!(store.get_diff(old.id).await.expect("diff"), None, "the diff of a pruned execution remains");
    assert_eq!(store.get_diff(recent.id).await.expect("diff").as_deref(), Some("+new\n"));
}

/// The turns of a session are listed by its id, newest first, and only they.
pub async fn executions_are_listed_by_session(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let first = in_status(store, &alpha, ExecutionStatus::Running).await;
    store.set_session_id(first.id, "thread-1").await.expect("set");
    let other = in_status(store, &alpha, ExecutionStatus::Running).await;
    store.set_session_id(other.id, "thread-2").await.expect("set");
    in_status(store, &alpha, ExecutionStatus::Queued).await;
    let mut turn = new_execution(&alpha, json!({}));
    turn.continues = Some(first.id);
    turn.session_id = Some("thread-1".into());
    let second = store.create_execution(turn).await.expect("create").value;

    let query = |session_id: &str| crate::ExecutionQuery {
        session_id: Some(session_id.to_owned()),
        limit: 10,
        ..crate::ExecutionQuery::default()
    };
    let ids =
        |page: crate::ExecutionPage| page.items.into_iter().map(|execution| execution.id).collect::<Vec<_>>();
    let listed = store.list_executions(&query("thread-1")).await.expect("list");
    assert_eq!(ids(listed), [second.id, first.id]);
    let listed = store.list_executions(&query("thread-3")).await.expect("list");
    assert_eq!(ids(listed), []);
}
