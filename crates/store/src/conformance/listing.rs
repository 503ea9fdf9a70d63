//! Conformance cases for reading executions back: the filtered, paged list, the unfinished ones and the counts.

use std::collections::HashSet;

use dashboard_core::{Execution, ExecutionId, ExecutionStatus};
use serde_json::{Value, json};

use super::fixtures::{advance, all_executions, function, ids, in_status, queued};
use crate::{DashboardStore, ExecutionQuery};

async fn list(store: &dyn DashboardStore, query: ExecutionQuery) -> Vec<ExecutionId> {
    let query = ExecutionQuery { limit: 1000, ..query };
    let page = store.list_executions(&query).await.expect("list executions");
    assert_eq!(page.next_cursor, None, "everything fits in one page of {}: {query:?}", query.limit);
    ids(&page.items)
}

/// Executions come newest first (by id, descending), and a cursor newer than all of them lists them all.
pub async fn executions_are_listed_newest_first(store: &dyn DashboardStore) {
    let page = store
        .list_executions(&ExecutionQuery { limit: 10, ..ExecutionQuery::default() })
        .await
        .expect("list");
    assert!(page.items.is_empty() && page.next_cursor.is_none(), "a fresh store lists nothing: {page:?}");
    let alpha = function(store, "alpha").await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(queued(store, &alpha, json!({"n": n})).await.id);
    }
    // A change of status must not change the order.
    let first = store.get_execution(created[0]).await.expect("get").expect("stored");
    advance(store, &first, ExecutionStatus::Running).await;
    created.reverse();
    assert_eq!(list(store, ExecutionQuery::default()).await, created);
    let newest_cursor = ExecutionQuery { before: Some(ExecutionId::generate()), ..ExecutionQuery::default() };
    assert_eq!(list(store, newest_cursor).await, created);
    let listed = all_executions(store).await;
    assert_eq!(
        listed[0],
        store.get_execution(created[0]).await.expect("get").expect("stored"),
        "items are whole"
    );
}

/// Each filter keeps exactly the executions that match it, and filters combine.
pub async fn execution_filters_select_matching_executions(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let beta = function(store, "beta").await;
    let alpha_queued = in_status(store, &alpha, Queued).await.id;
    let alpha_done = in_status(store, &alpha, Succeeded).await.id;
    let beta_failed = in_status(store, &beta, Failed).await.id;
    let mut on_other_backend = super::fixtures::new_execution(&alpha, json!({}));
    on_other_backend.backend = "codex".into();
    let alpha_codex = store.create_execution(on_other_backend).await.expect("create").value.id;
    let beta_done = in_status(store, &beta, Succeeded).await.id;

    let by =
        |status: Option<ExecutionStatus>, function: Option<&str>, backend: Option<&str>| ExecutionQuery {
            status,
            function: function.map(str::to_owned),
            backend: backend.map(str::to_owned),
            ..ExecutionQuery::default()
        };
    assert_eq!(list(store, by(Some(Succeeded), None, None)).await, [beta_done, alpha_done]);
    assert_eq!(list(store, by(Some(Queued), None, None)).await, [alpha_codex, alpha_queued]);
    assert_eq!(list(store, by(Some(Running), None, None)).await, []);
    assert_eq!(list(store, by(None, Some("beta"), None)).await, [beta_done, beta_failed]);
    assert_eq!(list(store, by(None, Some("alph"), None)).await, [], "function is an exact name");
    assert_eq!(list(store, by(None, None, Some("codex"))).await, [alpha_codex]);
    assert_eq!(
        list(store, by(None, None, Some("demo"))).await,
        [beta_done, beta_failed, alpha_done, alpha_queued]
    );
    assert_eq!(list(store, by(Some(Queued), Some("alpha"), Some("demo"))).await, [alpha_queued]);
    assert_eq!(list(store, by(Some(Failed), Some("alpha"), None)).await, []);
}

/// The text filter finds executions whose input, as JSON text, contains it, ignoring case; `_` and `%` are text.
pub async fn execution_text_search_is_a_case_insensitive_substring_of_the_input(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let mut by_input = Vec::new();
    for input in [
        json!({"issue": "Fix the Login bug"}),
        json!({"issue": "Add dark mode", "labels": ["UI"]}),
        json!({"code": "a_b"}),
        json!({"code": "axb"}),
        json!({"share": "100%"}),
        json!({"share": "1000"}),
    ] {
        by_input.push((input.clone(), queued(store, &alpha, input).await.id));
    }
    let with = |wanted: &[Value]| -> Vec<ExecutionId> {
        by_input.iter().rev().filter(|(input, _)| wanted.contains(input)).map(|(_, id)| *id).collect()
    };
    let search = |text: &str| ExecutionQuery { text: Some(text.to_owned()), ..ExecutionQuery::default() };
    assert_eq!(list(store, search("login")).await, with(&[json!({"issue": "Fix the Login bug"})]));
    assert_eq!(list(store, search("THE LOGIN")).await, with(&[json!({"issue": "Fix the Login bug"})]));
    assert_eq!(list(store, search("ui")).await, with(&[json!({"issue": "Add dark mode", "labels": ["UI"]})]));
    assert_eq!(
        list(store, search("issue")).await,
        with(&[json!({"issue": "Fix the Login bug"}), json!({"issue": "Add dark mode", "labels": ["UI"]})]),
        "keys are part of the text"
    );
    assert_eq!(list(store, search("a_b")).await, with(&[json!({"code": "a_b"})]), "`_` is no wildcard");
    assert_eq!(list(store, search("0%")).await, with(&[json!({"share": "100%"})]), "`%` is no wildcard");
    assert_eq!(list(store, search("nowhere")).await, []);
    let narrowed = ExecutionQuery { function: Some("other".into()), ..search("login") };
    assert_eq!(list(store, narrowed).await, [], "text combines with the other filters");
}

/// Walks all pages of `query` with `before` cursors; returns the ids in visiting order and the page count.
async fn walk(store: &dyn DashboardStore, query: ExecutionQuery) -> (Vec<ExecutionId>, usize) {
    let mut visited = Vec::new();
    let mut pages = 0;
    let mut before = None;
    loop {
        let page =
            store.list_executions(&ExecutionQuery { before, ..query.clone() }).await.expect("list a page");
        pages += 1;
        assert!(
            page.items.len() <= query.limit.max(1),
            "a page is at most `limit` long: {}",
            page.items.len()
        );
        visited.extend(ids(&page.items));
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(
                    Some(cursor),
                    page.items.last().map(|execution| execution.id),
                    "the cursor is the last item"
                );
                before = Some(cursor);
            }
            None => return (visited, pages),
        }
        assert!(pages <= 100, "the pages never end");
    }
}

/// Paging with `limit` and `before` visits every execution exactly once, newest first, and ends with no cursor.
pub async fn execution_pages_visit_every_execution_once(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let beta = function(store, "beta").await;
    let mut created: Vec<Execution> = Vec::new();
    for n in 0..23 {
        let function = if n % 3 == 0 { &beta } else { &alpha };
        created.push(queued(store, function, json!({"n": n})).await);
    }
    let newest_first: Vec<ExecutionId> = created.iter().rev().map(|execution| execution.id).collect();

    let (visited, pages) = walk(store, ExecutionQuery { limit: 5, ..ExecutionQuery::default() }).await;
    assert_eq!(visited, newest_first);
    assert_eq!(pages, 5, "23 items in pages of 5");
    assert_eq!(visited.iter().collect::<HashSet<_>>().len(), visited.len(), "no execution twice");

    let (visited, pages) =
        walk(store, ExecutionQuery { limit: 8, function: Some("beta".into()), ..ExecutionQuery::default() })
            .await;
    let betas: Vec<ExecutionId> = created
        .iter()
        .rev()
        .filter(|execution| execution.function == "beta")
        .map(|execution| execution.id)
        .collect();
    assert_eq!(
        (visited, pages),
        (betas.clone(), 1),
        "8 beta executions fit in one page of 8, with no cursor"
    );

    let (visited, pages) =
        walk(store, ExecutionQuery { limit: 4, function: Some("beta".into()), ..ExecutionQuery::default() })
            .await;
    assert_eq!((visited, pages), (betas, 2), "a full last page has no cursor");

    let (visited, pages) = walk(store, ExecutionQuery { limit: 0, ..ExecutionQuery::default() }).await;
    assert_eq!((visited, pages), (newest_first.clone(), 23), "a limit of 0 counts as 1");

    let middle = ExecutionQuery { before: Some(newest_first[10]), limit: 3, ..ExecutionQuery::default() };
    let page = store.list_executions(&middle).await.expect("list");
    assert_eq!(ids(&page.items), newest_first[11..14], "`before` is exclusive");
    let oldest = ExecutionQuery { before: Some(newest_first[22]), limit: 3, ..ExecutionQuery::default() };
    let page = store.list_executions(&oldest).await.expect("list");
    assert!(
        page.items.is_empty() && page.next_cursor.is_none(),
        "nothing is older than the oldest: {page:?}"
    );
}

/// Only `queued`, `running` and `waiting` executions are unfinished, and they come oldest first.
pub async fn unfinished_executions_are_listed_oldest_first(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    assert!(store.list_unfinished().await.expect("list").is_empty());
    let alpha = function(store, "alpha").await;
    let mut expected = Vec::new();
    for status in [Queued, Running, Succeeded, Waiting, Failed, Running, TimedOut, Cancelled, Waiting, Queued]
    {
        let execution = in_status(store, &alpha, status).await;
        if !status.is_terminal() {
            expected.push(execution);
        }
    }
    assert_eq!(store.list_unfinished().await.expect("list"), expected);
}

/// Counts per status add up, and statuses with no execution count 0.
pub async fn executions_are_counted_by_status(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let empty = store.count_by_status().await.expect("count");
    assert_eq!(empty.total(), 0);
    let missing: Vec<_> =
        ExecutionStatus::ALL.into_iter().filter(|status| !empty.0.contains_key(status)).collect();
    assert!(missing.is_empty(), "every status is counted, with 0 when there is none; missing {missing:?}");
    let alpha = function(store, "alpha").await;
    let plan =
        [(Queued, 3), (Running, 2), (Waiting, 2), (Succeeded, 4), (Failed, 1), (TimedOut, 0), (Cancelled, 1)];
    for (status, n) in plan {
        for _ in 0..n {
            in_status(store, &alpha, status).await;
        }
    }
    let counts = store.count_by_status().await.expect("count");
    for (status, n) in plan {
        assert_eq!(counts.get(status), n, "{status}: {counts:?}");
    }
    assert_eq!(counts.total(), 13);
}
