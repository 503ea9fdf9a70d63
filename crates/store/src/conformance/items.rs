//! Conformance cases for transcript items: upserts by id with gap-free seqs, also under concurrent calls, paged
//! reads, items stored in one step with a status change, and retention.

use std::sync::Arc;

use dashboard_core::{
    ExecutionId, ExecutionStatus, Item, ItemBody, ItemStatus, LogStream, MessageRole, NewItem, NewLogLine,
    now,
};
use serde_json::json;

use super::fixtures::{a_moment_between, assert_no_event_after, function, in_status, last_event_id, queued};
use crate::{DashboardStore, ExecutionUpdate, StoreError};

/// An agent message `text` under `id`.
fn message(id: &str, status: ItemStatus, text: &str) -> NewItem {
    let body = ItemBody::Message { role: MessageRole::Agent, text: text.to_owned() };
    NewItem::new(id, status, body).expect("a valid test item")
}

/// A command `command` under `id`.
fn command(id: &str, status: ItemStatus, command: &str, exit_code: Option<i32>) -> NewItem {
    let body = ItemBody::Command { command: command.to_owned(), cwd: None, output: String::new(), exit_code };
    NewItem::new(id, status, body).expect("a valid test item")
}

async fn upsert(store: &dyn DashboardStore, id: ExecutionId, items: Vec<NewItem>) -> Vec<Item> {
    store.upsert_items(id, items).await.expect("upsert items")
}

async fn list_all(store: &dyn DashboardStore, id: ExecutionId) -> Vec<Item> {
    store.list_items(id, 0, 100_000).await.expect("list items")
}

/// (id, seq) of each item, in order.
fn ids_and_seqs(items: &[Item]) -> Vec<(&str, u64)> {
    items.iter().map(|item| (item.id.as_str(), item.seq)).collect()
}

/// New items are numbered 1, 2, 3… per execution in the order they first appear, across calls, with
/// `ts = updated_at` = the time of the call; each call returns what it stored, in the order given; an empty call
/// stores nothing.
pub async fn items_are_numbered_in_order_of_first_appearance(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let other = queued(store, &alpha, json!({})).await;
    assert!(list_all(store, execution.id).await.is_empty(), "a new execution has no items");
    assert!(upsert(store, execution.id, Vec::new()).await.is_empty(), "an empty upsert returns nothing");

    let earliest = now();
    let first = upsert(
        store,
        execution.id,
        vec![
            message("m1", ItemStatus::Completed, "hello"),
            command("c1", ItemStatus::InProgress, "ls", None),
        ],
    )
    .await;
    assert_eq!(ids_and_seqs(&first), [("m1", 1), ("c1", 2)]);
    let elsewhere = upsert(store, other.id, vec![message("m1", ItemStatus::Completed, "there")]).await;
    assert_eq!(ids_and_seqs(&elsewhere), [("m1", 1)], "seqs and ids are per execution");
    let second = upsert(
        store,
        execution.id,
        vec![message("m2", ItemStatus::InProgress, "thinking"), message("m3", ItemStatus::Completed, "done")],
    )
    .await;
    assert_eq!(ids_and_seqs(&second), [("m2", 3), ("m3", 4)]);
    let latest = now();

    let stored = list_all(store, execution.id).await;
    assert_eq!(stored, [first, second].concat(), "the list holds what the upserts returned, in seq order");
    for item in &stored {
        assert!((earliest..=latest).contains(&item.ts), "ts is the time of the upsert: {item:?}");
        assert_eq!(item.ts, item.updated_at, "a new item was updated when it appeared: {item:?}");
    }
    let expected_body =
        ItemBody::Command { command: "ls".into(), cwd: None, output: String::new(), exit_code: None };
    assert_eq!((stored[1].status, &stored[1].body), (ItemStatus::InProgress, &expected_body));
    assert_eq!(list_all(store, other.id).await, elsewhere);
}

/// An upsert of a known id keeps its seq and `ts` and takes the new status and body (even of another kind), with a
/// later `updated_at`; the other items are untouched.
pub async fn item_upsert_keeps_seq_and_ts_and_changes_status_body_and_updated_at(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let first = upsert(
        store,
        execution.id,
        vec![command("c1", ItemStatus::InProgress, "make", None), message("m1", ItemStatus::Completed, "ok")],
    )
    .await;
    a_moment_between().await;

    let finished = command("c1", ItemStatus::Failed, "make", Some(2));
    let updated = upsert(store, execution.id, vec![finished.clone()]).await;
    assert_eq!(updated.len(), 1);
    let updated = &updated[0];
    assert_eq!((updated.id.as_str(), updated.seq, updated.ts), ("c1", 1, first[0].ts), "seq and ts are kept");
    assert_eq!((updated.status, &updated.body), (finished.status, &finished.body));
    assert!(updated.updated_at > first[0].updated_at, "updated_at moves on: {updated:?}");

    let error = NewItem::new("m1", ItemStatus::Failed, ItemBody::Error { message: "gone wrong".into() })
        .expect("a valid test item");
    let changed_kind =
        upsert(store, execution.id, vec![error.clone(), message("m2", ItemStatus::Completed, "next")]).await;
    assert_eq!(
        ids_and_seqs(&changed_kind),
        [("m1", 2), ("m2", 3)],
        "a known id among new ones keeps its seq"
    );
    assert_eq!(changed_kind[0].body, error.body, "the body may change kind");

    let stored = list_all(store, execution.id).await;
    assert_eq!(ids_and_seqs(&stored), [("c1", 1), ("m1", 2), ("m2", 3)]);
    assert_eq!(stored[0], *updated, "the list shows the item as last stored");
    assert_eq!(stored[1], changed_kind[0]);
}

/// An id named twice in one call is one item, numbered at its first mention, with the status and body of its last.
pub async fn an_item_named_twice_in_one_call_is_stored_once_with_the_later_fields(
    store: &dyn DashboardStore,
) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    upsert(store, execution.id, vec![message("before", ItemStatus::Completed, "first")]).await;

    let items = vec![
        command("c1", ItemStatus::InProgress, "test", None),
        message("m1", ItemStatus::Completed, "between"),
        command("c1", ItemStatus::Completed, "test", Some(0)),
        message("before", ItemStatus::Completed, "first, again"),
        message("before", ItemStatus::Completed, "first, last"),
    ];
    let stored = upsert(store, execution.id, items).await;
    assert_eq!(
        ids_and_seqs(&stored),
        [("c1", 2), ("m1", 3), ("before", 1)],
        "one per id, in order of first mention"
    );
    let expected =
        ItemBody::Command { command: "test".into(), cwd: None, output: String::new(), exit_code: Some(0) };
    assert_eq!(
        (stored[0].status, &stored[0].body),
        (ItemStatus::Completed, &expected),
        "the later mention wins"
    );
    assert_eq!(stored[2].body, ItemBody::Message { role: MessageRole::Agent, text: "first, last".into() });
    assert_eq!(list_all(store, execution.id).await.len(), 3);
    let next = upsert(store, execution.id, vec![message("m2", ItemStatus::Completed, "next")]).await;
    assert_eq!(ids_and_seqs(&next), [("m2", 4)], "no seq was spent on the repeated id");
}

/// Reads return the items after `after`, at most `limit` of them, in seq order.
pub async fn item_reads_respect_after_and_limit(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let items =
        (1..=10).map(|n| message(&format!("m{n}"), ItemStatus::Completed, &format!("message {n}"))).collect();
    assert_eq!(upsert(store, execution.id, items).await.len(), 10);
    // An update keeps the item where it was in the order.
    upsert(store, execution.id, vec![message("m3", ItemStatus::Failed, "changed")]).await;

    let read = |after: u64, limit: usize| async move {
        let items = store.list_items(execution.id, after, limit).await.expect("list items");
        items.iter().map(|item| item.seq).collect::<Vec<u64>>()
    };
    assert_eq!(read(0, 3).await, [1, 2, 3]);
    assert_eq!(read(4, 3).await, [5, 6, 7]);
    assert_eq!(read(8, 100).await, [9, 10]);
    assert_eq!(read(9, 1).await, [10]);
    assert_eq!(read(10, 100).await, Vec::<u64>::new(), "nothing after the last item");
    assert_eq!(read(1000, 100).await, Vec::<u64>::new(), "nothing after a seq past the end");
    assert_eq!(read(0, 0).await, Vec::<u64>::new(), "a limit of 0 reads nothing");
    let items = store.list_items(execution.id, 2, 1).await.expect("list items");
    assert_eq!((items[0].id.as_str(), items[0].status), ("m3", ItemStatus::Failed));
}

/// Upserting into an execution that does not exist is `NotFound`, even with no items, and stores nothing; listing
/// its items finds none.
pub async fn items_of_an_unknown_execution_are_not_found_on_upsert_and_none_on_list(
    store: &dyn DashboardStore,
) {
    let unknown = ExecutionId::generate();
    for items in [vec![message("m1", ItemStatus::Completed, "lost")], Vec::new()] {
        let result = store.upsert_items(unknown, items).await;
        assert!(matches!(result, Err(StoreError::NotFound { entity: "execution", .. })), "got {result:?}");
    }
    assert!(list_all(store, unknown).await.is_empty(), "items of an unknown execution were stored");
}

/// A status change with items stores them as `upsert_items` does, with the lines, and returns them; a refused one —
/// unknown execution, wrong `from`, illegal transition — stores no item, no line and no event.
pub async fn update_with_logs_stores_items_with_the_status_change_or_none_of_them(
    store: &dyn DashboardStore,
) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    upsert(store, execution.id, vec![command("c1", ItemStatus::InProgress, "deploy", None)]).await;
    let before = last_event_id(store).await;

    let line = || vec![NewLogLine::new(LogStream::Stdout, "lost")];
    let lost =
        || vec![message("lost", ItemStatus::Completed, "lost"), command("c1", ItemStatus::Failed, "x", None)];
    let unknown = ExecutionId::generate();
    let result = store
        .update_execution_with_logs(unknown, ExecutionUpdate::new(Queued, Running), line(), lost())
        .await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "execution", .. })), "got {result:?}");
    let result = store
        .update_execution_with_logs(execution.id, ExecutionUpdate::new(Running, Failed), line(), lost())
        .await;
    assert!(
        matches!(result, Err(StoreError::StatusMismatch { expected: Running, actual: Queued })),
        "got {result:?}"
    );
    let result = store
        .update_execution_with_logs(execution.id, ExecutionUpdate::new(Queued, Succeeded), line(), lost())
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "got {result:?}");
    let stored = list_all(store, execution.id).await;
    assert_eq!(ids_and_seqs(&stored), [("c1", 1)], "a refused update stored items");
    assert_eq!(stored[0].status, ItemStatus::InProgress, "a refused update changed an item");
    assert!(
        store.read_logs(execution.id, 0, 10).await.expect("read logs").is_empty(),
        "a refused update stored lines"
    );
    assert!(list_all(store, unknown).await.is_empty());
    assert_no_event_after(store, before, "a refused update with items").await;

    let started = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Queued, Running),
            Vec::new(),
            Vec::new(),
        )
        .await
        .expect("start with nothing else");
    assert!(started.items.is_empty(), "no items given, none returned");
    let items = vec![
        command("c1", ItemStatus::Completed, "deploy", Some(0)),
        message("m1", ItemStatus::Completed, "deployed"),
        message("m1", ItemStatus::Completed, "deployed, for sure"),
    ];
    let finished = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Running, Succeeded),
            vec![NewLogLine::new(LogStream::Stdout, "the end")],
            items,
        )
        .await
        .expect("finish with a line and items");
    assert_eq!(finished.recorded.value.status, Succeeded);
    assert_eq!(finished.last_seq, 1);
    assert_eq!(ids_and_seqs(&finished.items), [("c1", 1), ("m1", 2)], "stored as upsert_items stores them");
    assert_eq!(finished.items[0].status, ItemStatus::Completed);
    assert_eq!(
        finished.items[1].body,
        ItemBody::Message { role: MessageRole::Agent, text: "deployed, for sure".into() }
    );
    assert_eq!(list_all(store, execution.id).await, finished.items);
}

/// Pruning an execution deletes its items; the items of kept executions stay whole.
pub async fn prune_deletes_the_items_of_pruned_executions(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let old_done = in_status(store, &alpha, Succeeded).await;
    upsert(store, old_done.id, vec![message("m1", ItemStatus::Completed, "old")]).await;
    let old_running = in_status(store, &alpha, Running).await;
    upsert(store, old_running.id, vec![message("m1", ItemStatus::InProgress, "going")]).await;
    let cutoff = a_moment_between().await;
    let recent_done = in_status(store, &alpha, Succeeded).await;
    upsert(store, recent_done.id, vec![message("m1", ItemStatus::Completed, "new")]).await;

    assert_eq!(store.prune_finished_before(cutoff, 100).await.expect("prune"), 1);
    assert!(list_all(store, old_done.id).await.is_empty(), "the items of a pruned execution remain");
    assert_eq!(list_all(store, old_running.id).await.len(), 1, "an unfinished execution keeps its items");
    assert_eq!(list_all(store, recent_done.id).await.len(), 1, "a recent execution keeps its items");
}

const N_TASKS: usize = 20;
const N_CALLS: usize = 10;
const ITEMS_PER_CALL: usize = 3;

/// Many tasks upserting at once into one execution get one gap-free, duplicate-free numbering, each call's new items
/// numbered together and in order; updates among them keep their seqs.
pub async fn concurrent_item_upserts_have_no_gaps_or_duplicates(store: Arc<dyn DashboardStore>) {
    let alpha = function(&*store, "alpha").await;
    let execution = queued(&*store, &alpha, json!({})).await.id;
    let tasks: Vec<_> = (0..N_TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut stored = Vec::new();
                for call in 0..N_CALLS {
                    let items = (0..ITEMS_PER_CALL)
                        .map(|n| message(&format!("{task}/{call}/{n}"), ItemStatus::InProgress, "going"))
                        .collect();
                    stored.push(store.upsert_items(execution, items).await.expect("a concurrent upsert"));
                    // Each task also updates an item of its own, concurrently with the others' inserts.
                    let update = vec![message(&format!("{task}/0/0"), ItemStatus::Completed, "done")];
                    let updated = store.upsert_items(execution, update).await.expect("a concurrent update");
                    assert_eq!(updated[0].seq, stored[0][0].seq, "an update took a new seq");
                    tokio::task::yield_now().await;
                }
                stored
            })
        })
        .collect();
    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await.expect("an upserting task panicked"));
    }

    let total = (N_TASKS * N_CALLS * ITEMS_PER_CALL) as u64;
    let items = list_all(&*store, execution).await;
    let seqs: Vec<u64> = items.iter().map(|item| item.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<u64>>(), "seqs must be 1..={total} exactly once each");
    for call in calls {
        let first = usize::try_from(call[0].seq).expect("a seq fits in usize");
        let returned: Vec<&str> = call.iter().map(|item| item.id.as_str()).collect();
        let listed: Vec<&str> =
            items[first - 1..first - 1 + ITEMS_PER_CALL].iter().map(|item| item.id.as_str()).collect();
        assert_eq!(returned, listed, "a call's new items are numbered together, in order");
    }
    let completed = items.iter().filter(|item| item.status == ItemStatus::Completed).count();
    assert_eq!(completed, N_TASKS, "each task's updated item");
}
