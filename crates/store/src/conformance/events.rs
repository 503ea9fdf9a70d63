//! Conformance cases for the activity feed (ids, order, cursors), retention pruning, and the health check.

use dashboard_core::{Event, EventKind, ExecutionId, ExecutionStatus, LogStream, NewLogLine};
use serde_json::json;

use super::fixtures::{
    a_moment_between, advance, all_executions, function, in_status, last_event_id, queued, spec,
};
use crate::{DashboardStore, StoreError};

async fn all_events(store: &dyn DashboardStore) -> Vec<Event> {
    store.list_events(0, 100_000).await.expect("list events")
}

/// Every change records one event, in the order of the changes, with strictly increasing ids; the feed holds exactly
/// the events the changes returned.
pub async fn every_change_records_its_event_in_order(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    assert!(all_events(store).await.is_empty(), "a fresh store has no events");
    assert_eq!(last_event_id(store).await, 0);

    let mut returned = Vec::new();
    let alpha = dashboard_core::Function::create(spec("alpha")).expect("valid spec");
    returned.push(store.create_function(alpha.clone()).await.expect("create function").event);
    let trigger = super::fixtures::new_execution(&alpha, json!({}));
    let execution = store.create_execution(trigger).await.expect("create execution");
    returned.push(execution.event);
    let running =
        store.update_execution(execution.value.id, crate::ExecutionUpdate::new(Queued, Running)).await;
    returned.push(running.expect("start").event);
    store
        .append_logs(execution.value.id, vec![NewLogLine::new(LogStream::Stdout, "hi")])
        .await
        .expect("append");
    let failed = crate::ExecutionUpdate::new(Running, Failed).error("boom\nstack trace");
    returned.push(store.update_execution(execution.value.id, failed).await.expect("fail").event);
    returned.push(store.update_function(alpha.id, spec("alpha"), Some(1)).await.expect("update").event);
    returned.push(store.delete_function(alpha.id).await.expect("delete").event);

    let kinds: Vec<EventKind> = returned.iter().map(|event| event.kind).collect();
    use EventKind::*;
    let expected = [
        FunctionCreated,
        ExecutionQueued,
        ExecutionStarted,
        ExecutionFailed,
        FunctionUpdated,
        FunctionDeleted,
    ];
    assert_eq!(kinds, expected, "log lines record no event");
    assert!(
        returned.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids must strictly increase: {returned:?}"
    );
    assert!(returned.windows(2).all(|pair| pair[0].ts <= pair[1].ts), "times must not go back: {returned:?}");
    assert_eq!(all_events(store).await, returned, "the feed holds exactly the returned events");
    assert_eq!(last_event_id(store).await, returned[5].id);
    let failed_event = &returned[3];
    assert_eq!(failed_event.execution_id, Some(execution.value.id));
    assert_eq!(
        (failed_event.function.as_deref(), failed_event.backend.as_deref()),
        (Some("alpha"), Some("demo"))
    );
    assert_eq!(failed_event.data["error"], json!("boom\nstack trace"));
}

/// `list_events` returns the events after a cursor, oldest first, at most `limit`.
pub async fn events_are_listed_after_a_cursor_with_limit(store: &dyn DashboardStore) {
    for name in ["a", "b", "c", "d", "e"] {
        function(store, name).await;
    }
    let events = all_events(store).await;
    assert_eq!(events.len(), 5);
    let ids: Vec<u64> = events.iter().map(|event| event.id).collect();
    let after = |cursor: u64, limit: usize| async move {
        let listed = store.list_events(cursor, limit).await.expect("list events");
        listed.iter().map(|event| event.id).collect::<Vec<u64>>()
    };
    assert_eq!(after(0, 2).await, ids[..2]);
    assert_eq!(after(ids[1], 2).await, ids[2..4]);
    assert_eq!(after(ids[3], 10).await, ids[4..]);
    assert_eq!(after(ids[4], 10).await, Vec::<u64>::new(), "nothing after the newest");
    assert_eq!(after(ids[4] + 1000, 10).await, Vec::<u64>::new(), "nothing after a future cursor");
    assert_eq!(after(0, 0).await, Vec::<u64>::new(), "a limit of 0 lists nothing");
    let names: Vec<Option<&str>> = events.iter().map(|event| event.function.as_deref()).collect();
    assert_eq!(names, [Some("a"), Some("b"), Some("c"), Some("d"), Some("e")], "oldest first");
}

/// Pruning deletes executions that finished before the cutoff, with their logs and events, and old events about no
/// execution; it keeps unfinished executions and recent ones whole.
pub async fn prune_deletes_old_finished_executions_with_their_logs_and_events(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let old_done = in_status(store, &alpha, Succeeded).await;
    store.append_logs(old_done.id, vec![NewLogLine::new(LogStream::Stdout, "old")]).await.expect("append");
    let old_failed = in_status(store, &alpha, Failed).await;
    let old_running = in_status(store, &alpha, Running).await;
    let old_queued = in_status(store, &alpha, Queued).await;
    let finishing_late = in_status(store, &alpha, Running).await;
    store
        .append_logs(old_running.id, vec![NewLogLine::new(LogStream::Stdout, "still going")])
        .await
        .expect("append");
    let cutoff = a_moment_between().await;
    let late = advance(store, &finishing_late, Cancelled).await;
    let recent_done = in_status(store, &alpha, Succeeded).await;
    store.append_logs(recent_done.id, vec![NewLogLine::new(LogStream::Stdout, "new")]).await.expect("append");
    let beta = function(store, "beta").await;

    assert_eq!(store.prune_finished_before(cutoff, 100).await.expect("prune"), 2);
    for gone in [&old_done, &old_failed] {
        assert_eq!(
            store.get_execution(gone.id).await.expect("get"),
            None,
            "{} finished before the cutoff",
            gone.status
        );
        match store.read_logs(gone.id, 0, 100).await {
            Ok(lines) => assert!(lines.is_empty(), "the logs of a pruned execution remain: {lines:?}"),
            Err(StoreError::NotFound { .. }) => {}
            Err(other) => panic!("reading the logs of a pruned execution: {other}"),
        }
    }
    let mut kept = vec![recent_done.clone(), late.clone(), old_queued.clone(), old_running.clone()];
    kept.sort_by_key(|execution| std::cmp::Reverse(execution.id));
    assert_eq!(all_executions(store).await, kept);
    assert_eq!(store.read_logs(old_running.id, 0, 100).await.expect("read").len(), 1);
    assert_eq!(store.read_logs(recent_done.id, 0, 100).await.expect("read").len(), 1);

    let events = all_events(store).await;
    let pruned = [Some(old_done.id), Some(old_failed.id)];
    assert!(
        events.iter().all(|event| !pruned.contains(&event.execution_id)),
        "events of pruned executions remain"
    );
    let about = |id: ExecutionId| events.iter().filter(|event| event.execution_id == Some(id)).count();
    assert_eq!(
        [about(old_running.id), about(old_queued.id), about(late.id), about(recent_done.id)],
        [2, 1, 3, 3],
        "the events of kept executions are kept whole"
    );
    let function_events: Vec<&str> = events
        .iter()
        .filter(|event| event.execution_id.is_none())
        .filter_map(|event| event.function.as_deref())
        .collect();
    assert_eq!(function_events, ["beta"], "only recent events about no execution are kept");
    assert_eq!(last_event_id(store).await, events.last().map_or(0, |event| event.id));
    let functions = store.list_functions().await.expect("list functions");
    assert_eq!(functions, [alpha, beta], "pruning keeps functions");

    assert_eq!(
        store.prune_finished_before(cutoff, 100).await.expect("prune again"),
        0,
        "nothing left to prune"
    );
}

/// Pruning deletes at most `limit` executions per call; repeated calls finish the job.
pub async fn prune_respects_its_limit(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    for status in [ExecutionStatus::Succeeded, ExecutionStatus::Failed, ExecutionStatus::Cancelled] {
        for _ in 0..2 {
            in_status(store, &alpha, status).await;
        }
    }
    let unfinished = in_status(store, &alpha, ExecutionStatus::Queued).await;
    let cutoff = a_moment_between().await;
    let mut deleted = Vec::new();
    for _ in 0..5 {
        deleted.push(store.prune_finished_before(cutoff, 4).await.expect("prune"));
    }
    assert_eq!(deleted, [4, 2, 0, 0, 0]);
    assert_eq!(all_executions(store).await, [unfinished]);
    let counts = store.count_by_status().await.expect("count");
    assert_eq!((counts.get(ExecutionStatus::Queued), counts.total()), (1, 1));
}

/// Event ids are never reused, even after pruning removed the newest events.
pub async fn event_ids_keep_increasing_after_prune(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let done = advance(store, &execution, ExecutionStatus::Cancelled).await;
    let newest_seen = last_event_id(store).await;
    assert!(newest_seen >= 3, "three changes were recorded");
    let cutoff = a_moment_between().await;
    assert_eq!(store.prune_finished_before(cutoff, 10).await.expect("prune"), 1);
    assert!(all_events(store).await.is_empty(), "every event was old: {:?}", all_events(store).await);
    assert_eq!(store.get_execution(done.id).await.expect("get"), None);

    let next = store.create_function(dashboard_core::Function::create(spec("beta")).expect("valid")).await;
    let next = next.expect("create function").event;
    assert!(next.id > newest_seen, "event id {} reused after {newest_seen}", next.id);
    assert_eq!(last_event_id(store).await, next.id);
    assert_eq!(store.list_events(newest_seen, 10).await.expect("list"), [next]);
}

/// A working store answers the health check.
pub async fn ping_answers(store: &dyn DashboardStore) {
    store.ping().await.expect("a fresh store answers");
    function(store, "alpha").await;
    store.ping().await.expect("a used store answers");
}
