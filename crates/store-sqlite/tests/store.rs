//! What only the SQLite store promises beyond the conformance suite: data survives a reopen (schedules and the outbox's
//! claims too), the schema is versioned, group commit keeps refused changes apart, and a lock held by another process
//! is an error, not a hang.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalPolicy, ApprovalStatus, DeliveryStatus,
    EventKind, ExecutionId, ExecutionStatus, Function, FunctionSpec, LogStream, NewLogLine, Overlap,
    Schedule, ScheduleId, ScheduleSpec, now,
};
use dashboard_store::{
    DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionQuery, ExecutionUpdate, FireAction, FunctionKey,
    NewExecution, OutboxRule, ScheduleFire, StoreError,
};
use dashboard_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

/// A directory of its own for one test, removed at the end even when the test fails.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agent-dashboard-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path).expect("the store opens")
}

async fn function(store: &dyn DashboardStore, name: &str) -> Function {
    let function = Function::create(FunctionSpec::new(name, "demo")).expect("a valid spec");
    store.create_function(function).await.expect("create function").value
}

fn trigger(function: &Function, key: Option<&str>) -> NewExecution {
    NewExecution { idempotency_key: key.map(str::to_owned), ..NewExecution::of(function, json!({"n": 1})) }
}

#[test]
fn the_store_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SqliteStore>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen_and_event_ids_continue_after_pruning() {
    let dir = TestDir::new("reopen");
    let path = dir.0.join("nested/folders/dashboard.db");
    let (alpha, execution, newest_event) = {
        let store = open(&path);
        let alpha = function(&store, "alpha").await;
        let execution = store.create_execution(trigger(&alpha, Some("key"))).await.expect("create").value;
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
        let execution = store.update_execution(execution.id, update).await.expect("start").value;
        store
            .append_logs(execution.id, vec![NewLogLine::new(LogStream::Stdout, "hello")])
            .await
            .expect("append");
        let update =
            ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded).output(json!(42));
        let execution = store.update_execution(execution.id, update).await.expect("finish").value;
        (alpha, execution, store.last_event_id().await.expect("last event"))
    };
    assert!(path.exists(), "the parent folders were created");
    assert!(
        !PathBuf::from(format!("{}-wal", path.display())).exists(),
        "a clean close leaves no write-ahead log"
    );

    let store = open(&path);
    assert_eq!(store.get_function(&FunctionKey::Name("alpha".into())).await.expect("get"), Some(alpha));
    assert_eq!(store.get_execution(execution.id).await.expect("get"), Some(execution.clone()));
    let lines = store.read_logs(execution.id, 0, 10).await.expect("read");
    assert_eq!(lines.iter().map(|line| line.message.as_str()).collect::<Vec<_>>(), ["hello"]);
    assert_eq!(store.last_event_id().await.expect("last event"), newest_event);

    // Prune everything, reopen, and the next event still gets a new id.
    assert_eq!(store.prune_finished_before(now(), 10).await.expect("prune"), 1);
    drop(store);
    let store = open(&path);
    let beta = Function::create(FunctionSpec::new("beta", "demo")).expect("a valid spec");
    let event = store.create_function(beta).await.expect("create").event;
    assert!(event.id > newest_event, "event id {} reused after {newest_event}", event.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_execution_its_approvals_and_its_functions_policy_survive_a_reopen() {
    let dir = TestDir::new("approvals");
    let path = dir.0.join("dashboard.db");
    let (asking, waiting, approval) = {
        let store = open(&path);
        let mut spec = FunctionSpec::new("asking", "demo");
        spec.approval_policy = ApprovalPolicy::Ask;
        spec.approval_timeout_secs = Some(300);
        let asking = Function::create(spec).expect("a valid spec");
        let asking = store.create_function(asking).await.expect("create function").value;
        let execution = store.create_execution(trigger(&asking, None)).await.expect("create").value;
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
        let running = store.update_execution(execution.id, update).await.expect("start").value;
        let requested_at = now();
        let approval = Approval {
            id: ApprovalId::generate(),
            execution_id: running.id,
            function: running.function.clone(),
            backend: running.backend.clone(),
            session_id: Some("thread-1".into()),
            kind: ApprovalKind::FileChange,
            summary: "src/lib.rs".into(),
            details: json!({"changes": [{"path": "src/lib.rs", "kind": "update", "diff": "-a\n+b\n"}]}),
            item_id: Some("item-7".into()),
            grant_key: None,
            status: ApprovalStatus::Pending,
            for_session: false,
            requested_at,
            expires_at: requested_at + Duration::from_secs(300),
            decided_by: None,
            decided_at: None,
            note: None,
            answers: None,
        };
        let change = store.create_approval(approval, None).await.expect("create approval");
        (asking, change.execution, change.approval)
    };

    let store = open(&path);
    assert_eq!(store.get_function(&FunctionKey::Id(asking.id)).await.expect("get"), Some(asking));
    assert_eq!(store.get_execution(waiting.id).await.expect("get"), Some(waiting.clone()));
    assert_eq!(store.list_unfinished().await.expect("unfinished"), [waiting], "recovery sees it");
    assert_eq!(store.get_approval(approval.id).await.expect("get"), Some(approval.clone()));
    assert_eq!(store.count_pending_approvals().await.expect("count"), 1);
    let expire = ApprovalDecision::new(ApprovalStatus::Expired, "dashboard");
    let change = store.decide_approval(approval.id, expire, None).await.expect("decide after a reopen");
    assert_eq!(change.execution.status, ExecutionStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_claimed_deliveries_survive_a_reopen_but_the_rules_do_not() {
    let dir = TestDir::new("outbox");
    let path = dir.0.join("dashboard.db");
    let lease = Duration::from_secs(600);
    let all = DeliveryQuery { limit: 10, ..DeliveryQuery::default() };
    let (alpha, fired, claimed) = {
        let store = open(&path);
        store.set_outbox_rules(vec![OutboxRule {
            notification: "ops".into(),
            kinds: vec![EventKind::ScheduleFired],
            functions: None,
        }]);
        let alpha = function(&store, "alpha").await;
        let due = now().replace_nanosecond(0).expect("a whole second");
        let spec = ScheduleSpec {
            function: "alpha".into(),
            cron: "* * * * *".into(),
            timezone: "UTC".into(),
            input: json!({"n": 1}),
            overlap: Overlap::Queue,
            enabled: true,
        };
        let schedule = Schedule::create(ScheduleId::generate(), spec, Some(due), now());
        let schedule = store.create_schedule(schedule).await.expect("create schedule").value;
        let execution = NewExecution { triggered_by: Some(schedule.trigger_name()), ..trigger(&alpha, None) };
        let fire = ScheduleFire {
            id: schedule.id,
            due,
            next: Some(due + Duration::from_secs(60)),
            action: FireAction::Run(execution),
        };
        let fired = store.fire_schedule(fire).await.expect("fire").expect("the schedule was due");
        let claimed = store.claim_deliveries("a", "ops", lease, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1, "one delivery of schedule.fired: {claimed:?}");
        (alpha, fired, claimed[0].clone())
    };

    let store = open(&path);
    assert_eq!(store.get_schedule(fired.schedule.id).await.expect("get"), Some(fired.schedule.clone()));
    assert_eq!(store.list_deliveries(&all).await.expect("list"), std::slice::from_ref(&claimed));
    assert!(
        store.claim_deliveries("b", "ops", lease, 10).await.expect("claim").is_empty(),
        "the lease is in the file"
    );
    let delivered = DeliveryOutcome::Delivered { response_status: 200 };
    let finished = store.finish_delivery(claimed.id, "a", delivered).await.expect("finish");
    let finished = finished.expect("the claim of `a` survived the reopen");
    assert_eq!(finished.delivery.status, DeliveryStatus::Delivered);

    // The rules are the process's, set by whoever opens the store: none were set since the reopen, so this
    // `schedule.fired` goes nowhere.
    let execution =
        NewExecution { triggered_by: Some(fired.schedule.trigger_name()), ..trigger(&alpha, None) };
    let fire = ScheduleFire {
        id: fired.schedule.id,
        due: fired.schedule.next_run_at.expect("a next due time"),
        next: None,
        action: FireAction::Run(execution),
    };
    let again = store.fire_schedule(fire).await.expect("fire").expect("the schedule was due");
    assert_eq!(again.events.last().map(|event| event.kind), Some(EventKind::ScheduleFired));
    let deliveries = store.list_deliveries(&all).await.expect("list");
    assert_eq!(deliveries, [finished.delivery], "no rules, no delivery");
}

#[test]
fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
    let dir = TestDir::new("twice");
    let path = dir.0.join("dashboard.db");
    let first = open(&path);
    let error = SqliteStore::open(&path).expect_err("two stores on one file");
    assert!(error.to_string().contains("in use by another Agent Dashboard"), "{error}");
    drop(first);
    drop(open(&path));
}

/// The POSIX record locks (SQLite's own) this process holds on the file at `path`, as Linux lists them in
/// `/proc/locks`; `None` where there is no such list.
fn posix_locks_held(path: &std::path::Path) -> Option<usize> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let inode = format!(":{}", std::fs::metadata(path).ok()?.ino());
    let pid = std::process::id().to_string();
    let held = locks.lines().filter(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"POSIX")
            && fields.get(4) == Some(&pid.as_str())
            && fields.get(5).is_some_and(|file| file.ends_with(&inode))
    });
    Some(held.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_in_this_process_is_refused_by_any_name_without_disturbing_the_first() {
    let dir = TestDir::new("links");
    let path = dir.0.join("dashboard.db");
    let first = open(&path);
    let alpha = function(&first, "alpha").await;
    let symlink = dir.0.join("symlink.db");
    std::os::unix::fs::symlink(&path, &symlink).expect("a symlink");
    let hard_link = dir.0.join("elsewhere").join("hard-link.db");
    std::fs::create_dir_all(hard_link.parent().expect("a folder")).expect("another folder");
    std::fs::hard_link(&path, &hard_link).expect("a hard link");
    let locks_before = posix_locks_held(&path);

    for other_name in [&path, &symlink, &hard_link] {
        let error = SqliteStore::open(other_name).expect_err("a second store on the same file");
        assert!(error.to_string().contains("in use by another Agent Dashboard"), "{error}");
    }
    // A refused open never opened (and closed) the file: that would have dropped SQLite's locks on it.
    assert_eq!(posix_locks_held(&path), locks_before, "SQLite's locks on the file");
    let execution =
        first.create_execution(trigger(&alpha, None)).await.expect("the first store still writes");
    assert_eq!(first.get_execution(execution.value.id).await.expect("read"), Some(execution.value));

    drop(first);
    drop(open(&hard_link));
    drop(open(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_version_is_recorded_and_a_newer_one_refused() {
    let dir = TestDir::new("schema");
    let path = dir.0.join("dashboard.db");
    drop(open(&path));
    let connection = rusqlite::Connection::open(&path).expect("open the file directly");
    let version: u32 =
        connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("the version");
    assert_eq!(version, SqliteStore::schema_version());
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0)).expect("the mode");
    assert_eq!(mode, "wal");
    connection
        .execute_batch(&format!("PRAGMA user_version = {}", version + 1))
        .expect("pretend a newer build");
    drop(connection);

    let error = SqliteStore::open(&path).expect_err("a newer schema must be refused");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("newer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_changes_in_a_group_do_not_spoil_the_others() {
    let store: Arc<dyn DashboardStore> = Arc::new(SqliteStore::open_temporary().expect("a store"));
    let alpha = function(&*store, "alpha").await;
    // Many concurrent writers, so that they share groups; every third reuses one idempotency key, and half of the
    // log appends name an execution that does not exist.
    let tasks: Vec<_> = (0..150)
        .map(|n| {
            let (store, alpha) = (Arc::clone(&store), alpha.clone());
            tokio::spawn(async move {
                let key = (n % 3 == 0).then_some("shared-key");
                let created = store.create_execution(trigger(&alpha, key)).await;
                let target = if n % 2 == 0 { created.as_ref().ok().map(|c| c.value.id) } else { None };
                let target = target.unwrap_or_else(ExecutionId::generate);
                let appended = store.append_logs(target, vec![NewLogLine::new(LogStream::Stdout, "x")]).await;
                (created.map(|recorded| recorded.value.id), appended)
            })
        })
        .collect();
    let mut created = Vec::new();
    let (mut key_reused, mut not_found) = (0, 0);
    for task in tasks {
        let (execution, appended) = task.await.expect("a writer task");
        match execution {
            Ok(id) => created.push(id),
            Err(StoreError::IdempotencyKeyExists { .. }) => key_reused += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
        match appended {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => not_found += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((created.len(), key_reused), (101, 49), "100 without a key and one with the shared key");
    assert!(not_found >= 75, "appends to unknown executions are refused: {not_found}");
    let listed = store.list_executions(&ExecutionQuery { limit: 500, ..ExecutionQuery::default() }).await;
    assert_eq!(listed.expect("list").items.len(), 101, "every accepted change is committed");
    let events = store.list_events(0, 1000).await.expect("events");
    assert_eq!(events.len(), 102, "one event per function and execution, none for refused changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_another_process_is_an_error_then_writes_resume() {
    let dir = TestDir::new("locked");
    let path = dir.0.join("dashboard.db");
    let options = SqliteOptions { busy_timeout: Duration::from_millis(100), ..SqliteOptions::default() };
    let store = SqliteStore::open_with(&path, options).expect("the store opens");
    let alpha = function(&store, "alpha").await;

    let intruder =
        rusqlite::Connection::open(&path).expect("a second connection, as an sqlite3 shell would be");
    intruder.execute_batch("BEGIN IMMEDIATE").expect("the intruder takes the write lock");
    let error = store.create_execution(trigger(&alpha, None)).await.expect_err("the file is locked");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("locked"), "{error}");
    assert!(store.get_function(&FunctionKey::Id(alpha.id)).await.expect("reads go on").is_some());
    let error = store.ping().await.expect_err("a store that cannot write is not healthy");
    assert!(error.to_string().contains("locked"), "{error}");

    intruder.execute_batch("ROLLBACK").expect("the intruder lets go");
    store.create_execution(trigger(&alpha, None)).await.expect("writes resume");
    store.ping().await.expect("the store is healthy again");
}
