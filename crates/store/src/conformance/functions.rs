//! Conformance cases for functions: create, look up, list, update with a version check, rename and delete.

use dashboard_core::{EventKind, ExecutionStatus, Function, FunctionId, NewEvent};
use serde_json::json;

use super::fixtures::{assert_no_event_after, function, in_status, last_event_id, spec};
use crate::{DashboardStore, FunctionKey, StoreError};

/// A created function comes back as given, with its `function.created` event, by id and by name.
pub async fn function_is_found_by_id_and_by_name(store: &dyn DashboardStore) {
    let function = Function::create(spec("triage-issue")).expect("valid spec");
    let recorded = store.create_function(function.clone()).await.expect("create");
    assert_eq!(recorded.value, function);
    assert_eq!(
        recorded.event,
        NewEvent::for_function(EventKind::FunctionCreated, &function)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(last_event_id(store).await, recorded.event.id, "the event is the newest");

    let by_id = store.get_function(&FunctionKey::Id(function.id)).await.expect("get by id");
    assert_eq!(by_id.as_ref(), Some(&function));
    let by_name = store.get_function(&FunctionKey::Name("triage-issue".into())).await.expect("get by name");
    assert_eq!(by_name.as_ref(), Some(&function));

    let unknown_id =
        store.get_function(&FunctionKey::Id(FunctionId::generate())).await.expect("get unknown id");
    assert_eq!(unknown_id, None);
    let unknown_name =
        store.get_function(&FunctionKey::Name("triage".into())).await.expect("get unknown name");
    assert_eq!(unknown_name, None, "a prefix of a name is another name");
}

/// Functions are listed sorted by name, whatever the order they were created in.
pub async fn functions_are_listed_by_name(store: &dyn DashboardStore) {
    assert!(store.list_functions().await.expect("list").is_empty(), "a fresh store has no functions");
    for name in ["charlie", "alpha", "delta", "bravo"] {
        function(store, name).await;
    }
    let listed = store.list_functions().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|function| function.name.as_str()).collect();
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta"]);
}

/// A second function with a taken name is refused, and nothing is written.
pub async fn duplicate_function_name_is_refused(store: &dyn DashboardStore) {
    let first = function(store, "alpha").await;
    let before = last_event_id(store).await;
    let second = Function::create(spec("alpha")).expect("valid spec");
    let result = store.create_function(second.clone()).await;
    assert!(matches!(&result, Err(StoreError::DuplicateName { name }) if name == "alpha"), "got {result:?}");
    assert_eq!(store.list_functions().await.expect("list"), [first]);
    assert_eq!(store.get_function(&FunctionKey::Id(second.id)).await.expect("get"), None);
    assert_no_event_after(store, before, "a refused duplicate").await;
}

/// An update makes the next version: same id and creation time, new fields, version + 1, `function.updated`.
pub async fn function_update_bumps_version_and_keeps_id(store: &dyn DashboardStore) {
    let first = function(store, "alpha").await;
    let mut changed = spec("alpha");
    changed.description = "Second version".into();
    changed.timeout_secs = Some(60);
    let recorded = store.update_function(first.id, changed.clone(), None).await.expect("update");
    let second = recorded.value;
    assert_eq!((second.id, second.version, second.created_at), (first.id, 2, first.created_at));
    assert_eq!(second.spec(), changed);
    assert!(second.updated_at >= first.updated_at, "updated_at went back in time");
    assert_eq!(
        recorded.event,
        NewEvent::for_function(EventKind::FunctionUpdated, &second)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(recorded.event.data["version"], json!(2));
    assert_eq!(store.get_function(&FunctionKey::Id(first.id)).await.expect("get").as_ref(), Some(&second));

    let third = store
        .update_function(first.id, spec("alpha"), Some(2))
        .await
        .expect("update at the expected version");
    assert_eq!(third.value.version, 3);
    assert!(third.event.id > recorded.event.id, "event ids must increase");
    assert_eq!(store.list_functions().await.expect("list"), [third.value]);
}

/// An update that expects another version than the stored one is refused, and nothing is written.
pub async fn function_update_with_stale_version_is_refused(store: &dyn DashboardStore) {
    let first = function(store, "alpha").await;
    let second = store.update_function(first.id, spec("alpha"), Some(1)).await.expect("update").value;
    let before = last_event_id(store).await;
    let mut stale = spec("alpha");
    stale.description = "lost update".into();
    let result = store.update_function(first.id, stale, Some(1)).await;
    assert!(
        matches!(result, Err(StoreError::VersionMismatch { expected: 1, actual: 2 })),
        "expected a version mismatch, got {result:?}"
    );
    assert_eq!(store.get_function(&FunctionKey::Id(first.id)).await.expect("get"), Some(second));
    assert_no_event_after(store, before, "a refused update").await;
}

/// Renaming onto another function's name is refused; renaming onto a free name moves the name.
pub async fn function_rename_onto_another_name_is_refused(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let bravo = function(store, "bravo").await;
    let before = last_event_id(store).await;
    let result = store.update_function(alpha.id, spec("bravo"), None).await;
    assert!(matches!(&result, Err(StoreError::DuplicateName { name }) if name == "bravo"), "got {result:?}");
    assert_eq!(store.list_functions().await.expect("list"), [alpha.clone(), bravo.clone()]);
    assert_no_event_after(store, before, "a refused rename").await;

    let renamed =
        store.update_function(alpha.id, spec("charlie"), None).await.expect("rename to a free name").value;
    assert_eq!((renamed.id, renamed.name.as_str()), (alpha.id, "charlie"));
    assert_eq!(
        store.get_function(&FunctionKey::Name("alpha".into())).await.expect("get"),
        None,
        "the old name is free"
    );
    let by_new_name = store.get_function(&FunctionKey::Name("charlie".into())).await.expect("get");
    assert_eq!(by_new_name.as_ref(), Some(&renamed));
    let reused = function(store, "alpha").await;
    assert_ne!(reused.id, alpha.id, "the freed name belongs to a new function");

    let kept = store
        .update_function(bravo.id, spec("bravo"), None)
        .await
        .expect("keeping its own name is no rename");
    assert_eq!(kept.value.version, 2);
}

/// An update whose spec breaks a domain rule is refused as invalid, and nothing is written.
pub async fn function_update_with_invalid_spec_is_refused(store: &dyn DashboardStore) {
    let first = function(store, "alpha").await;
    let before = last_event_id(store).await;
    let result = store.update_function(first.id, spec("Not A Slug"), None).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "expected invalid, got {result:?}");
    assert_eq!(store.get_function(&FunctionKey::Id(first.id)).await.expect("get"), Some(first));
    assert_no_event_after(store, before, "a refused update").await;
}

/// Updating a function that does not exist is `NotFound`.
pub async fn function_update_of_missing_function_is_not_found(store: &dyn DashboardStore) {
    function(store, "alpha").await;
    let result = store.update_function(FunctionId::generate(), spec("ghost"), None).await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "function", .. })), "got {result:?}");
    assert_eq!(store.get_function(&FunctionKey::Name("ghost".into())).await.expect("get"), None);
}

/// Deleting a function records `function.deleted`, frees its name, and keeps its executions.
pub async fn function_delete_keeps_its_executions(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let bravo = function(store, "bravo").await;
    let done = in_status(store, &alpha, ExecutionStatus::Succeeded).await;
    let waiting = in_status(store, &alpha, ExecutionStatus::Queued).await;

    let recorded = store.delete_function(alpha.id).await.expect("delete");
    assert_eq!(recorded.value, alpha);
    assert_eq!(
        recorded.event,
        NewEvent::for_function(EventKind::FunctionDeleted, &alpha)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(store.get_function(&FunctionKey::Id(alpha.id)).await.expect("get"), None);
    assert_eq!(store.get_function(&FunctionKey::Name("alpha".into())).await.expect("get"), None);
    assert_eq!(store.list_functions().await.expect("list"), [bravo]);
    assert_eq!(store.get_execution(done.id).await.expect("get").as_ref(), Some(&done));
    assert_eq!(store.get_execution(waiting.id).await.expect("get").as_ref(), Some(&waiting));

    let again = function(store, "alpha").await;
    assert_ne!(again.id, alpha.id, "the name is free again");
}

/// Deleting a function that does not exist is `NotFound`, and nothing is written.
pub async fn function_delete_of_missing_function_is_not_found(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    store.delete_function(alpha.id).await.expect("the first delete");
    let before = last_event_id(store).await;
    for id in [alpha.id, FunctionId::generate()] {
        let result = store.delete_function(id).await;
        assert!(matches!(result, Err(StoreError::NotFound { entity: "function", .. })), "got {result:?}");
    }
    assert_no_event_after(store, before, "a refused delete").await;
}
