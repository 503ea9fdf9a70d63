//! `import_sqlite` (`agent-dashboard migrate-store`): a SQLite store's file, made through the SQLite store's own API,
//! reads back the same through `PostgresStore` after the import — functions, executions in every status, their logs,
//! items, diff and approvals, events with their ids, schedules, notification deliveries — and the files and targets it
//! must refuse are refused.
//!
//! Each test makes its own database on the server named by `DASHBOARD_TEST_POSTGRES`, and skips (saying why) without
//! one, as the conformance tests do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, CoreError, Delivery, Event,
    EventKind, Execution, ExecutionStatus, Function, FunctionSpec, Item, ItemBody, ItemStatus, LogLine,
    LogStream, MessageRole, NewItem, NewLogLine, Overlap, Schedule, ScheduleId, ScheduleSpec, now,
};
use dashboard_store::{
    ApprovalQuery, Cluster, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionQuery, ExecutionUpdate,
    FireAction, NewExecution, OutboxRule, ScheduleFire, StoreError,
};
use dashboard_store_postgres::{
    ImportReport, PostgresOptions, PostgresStore, SQLITE_SCHEMA_VERSION, import_sqlite, testing,
};
use dashboard_store_sqlite::SqliteStore;
use serde_json::json;

/// A directory of its own for one test, removed at the end even when the test fails.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("agent-dashboard-import-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a test directory");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn target(prefix: &str) -> Option<PostgresStore> {
    let url = testing::database(prefix).await?;
    Some(PostgresStore::connect(PostgresOptions::new(url)).await.expect("connecting to the test database"))
}

/// An execution's log lines, items, diff and approvals.
type Details = (Vec<LogLine>, Vec<Item>, Option<String>, Vec<Approval>);

/// Everything a store shows of its data, read through `DashboardStore`.
#[derive(Debug, PartialEq)]
struct Contents {
    functions: Vec<Function>,
    executions: Vec<Execution>,
    /// Per execution (in the order above): its log lines, items, diff and approvals.
    details: Vec<Details>,
    events: Vec<Event>,
    pending_approvals: Vec<Approval>,
    schedules: Vec<Schedule>,
    deliveries: Vec<Delivery>,
}

async fn contents(store: &dyn DashboardStore) -> Contents {
    let functions = store.list_functions().await.expect("the functions");
    let query = ExecutionQuery { limit: 10_000, ..ExecutionQuery::default() };
    let executions = store.list_executions(&query).await.expect("the executions").items;
    let mut details = Vec::new();
    for execution in &executions {
        let fetched = store.get_execution(execution.id).await.expect("an execution");
        assert_eq!(fetched.as_ref(), Some(execution), "get agrees with list");
        let logs = store.read_logs(execution.id, 0, 10_000).await.expect("its logs");
        let items = store.list_items(execution.id, 0, 10_000).await.expect("its items");
        let diff = store.get_diff(execution.id).await.expect("its diff");
        let approvals = ApprovalQuery { pending_only: false, execution: Some(execution.id), limit: 100 };
        let approvals = store.list_approvals(&approvals).await.expect("its approvals");
        details.push((logs, items, diff, approvals));
    }
    let events = store.list_events(0, 10_000).await.expect("the events");
    let pending = ApprovalQuery { pending_only: true, execution: None, limit: 100 };
    let pending_approvals = store.list_approvals(&pending).await.expect("the pending approvals");
    let schedules = store.list_schedules().await.expect("the schedules");
    let all = DeliveryQuery { limit: 1_000, ..DeliveryQuery::default() };
    let deliveries = store.list_deliveries(&all).await.expect("the deliveries");
    Contents { functions, executions, details, events, pending_approvals, schedules, deliveries }
}

/// What `fill` made, for the checks after the import.
struct Made {
    queued: Execution,
    running: Execution,
    waiting: Execution,
    /// The failed execution's delivery, pending under a claim of the file's server.
    claimed_delivery: Delivery,
}

/// The outbox's rules of the file's server: the failures and the cancels go to `ops`.
fn outbox_rules() -> Vec<OutboxRule> {
    let kinds = vec![EventKind::ExecutionFailed, EventKind::ExecutionCancelled];
    vec![OutboxRule { notification: "ops".into(), kinds, functions: None }]
}

/// A store with something of everything: three functions (one updated, one deleted), executions queued, running,
/// waiting on an approval, succeeded (with output, usage, logs, items and a diff), failed and cancelled, a schedule
/// whose first due time was skipped, and (with [`outbox_rules`] set) the deliveries of the failure and the cancel:
/// one delivered, one pending under a claim.
async fn fill(store: &dyn DashboardStore) -> Made {
    let mut spec = FunctionSpec::new("review", "codex");
    spec.description = "Reviews a pull request".into();
    spec.prompt = Some("Review {{ url }}".into());
    spec.max_concurrency = Some(2);
    spec.timeout_secs = Some(600);
    spec.max_cost_usd = Some(1.25);
    spec.daily_tokens = Some(1_000_000);
    spec.tags = vec!["ci".into(), "review".into()];
    spec.metadata.insert("team".into(), json!("platform"));
    let review =
        store.create_function(Function::create(spec.clone()).expect("a spec")).await.expect("a function");
    spec.description = "Reviews a pull request, carefully".into();
    let review = store.update_function(review.value.id, spec, Some(1)).await.expect("an update").value;
    let other = Function::create(FunctionSpec::new("other", "demo")).expect("a spec");
    let other = store.create_function(other).await.expect("a function").value;
    let gone = Function::create(FunctionSpec::new("gone", "demo")).expect("a spec");
    let gone = store.create_function(gone).await.expect("a function").value;

    let create = |function: &Function, input: serde_json::Value, key: Option<&str>| {
        let mut execution = NewExecution::of(function, input);
        execution.idempotency_key = key.map(str::to_owned);
        execution.triggered_by = Some("ci-bot".into());
        execution
    };
    let run = |id, from, to| store.update_execution(id, ExecutionUpdate::new(from, to).instance("i-old"));

    let succeeded = store
        .create_execution(create(&review, json!({"url": "https://x/1"}), Some("k-1")))
        .await
        .expect("created");
    let succeeded = succeeded.value.id;
    run(succeeded, ExecutionStatus::Queued, ExecutionStatus::Running).await.expect("running");
    let lines = vec![
        NewLogLine::new(LogStream::Stdout, "cloning"),
        NewLogLine::new(LogStream::Stderr, "warning: a nul \0 here"),
        NewLogLine::new(LogStream::Agent, "done ✓"),
    ];
    let items = vec![
        NewItem::new(
            "msg-1",
            ItemStatus::Completed,
            ItemBody::Message { role: MessageRole::Agent, text: "Looks good".into() },
        )
        .expect("an item"),
        NewItem::new(
            "cmd-1",
            ItemStatus::Completed,
            ItemBody::Command {
                command: "cargo test".into(),
                cwd: Some("/work".into()),
                output: "ok".into(),
                exit_code: Some(0),
            },
        )
        .expect("an item"),
    ];
    let finish = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded)
        .output(json!({"verdict": "approve", "score": 0.5, "nested": {"z": 1, "a": [1, 2]}}))
        .usage(Some(json!({"cost_usd": 0.0123, "input_tokens": 100, "output_tokens": 20})))
        .diff(Some("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n".into()));
    store.update_execution_with_logs(succeeded, finish, lines, items).await.expect("succeeded");

    let failed = store.create_execution(create(&other, json!({}), None)).await.expect("created").value.id;
    run(failed, ExecutionStatus::Queued, ExecutionStatus::Running).await.expect("running");
    let fail = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Failed).error("exit code 2");
    store.update_execution(failed, fail).await.expect("failed");

    let cancelled =
        store.create_execution(create(&gone, json!({"n": 1}), None)).await.expect("created").value.id;
    store
        .update_execution(
            cancelled,
            ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Cancelled),
        )
        .await
        .expect("cancelled");
    store.delete_function(gone.id).await.expect("deleted");

    let running =
        store.create_execution(create(&other, json!({"n": 2}), None)).await.expect("created").value.id;
    run(running, ExecutionStatus::Queued, ExecutionStatus::Running).await.expect("running");
    store.set_session_id(running, "thread-7").await.expect("a session");
    // More lines than one batch of the import holds.
    let lines =
        (1..=2500).map(|n| NewLogLine::new(LogStream::Stdout, format!("still going ({n})"))).collect();
    store.append_logs(running, lines).await.expect("lines");

    let waiting = store.create_execution(create(&review, json!({"url": "https://x/2"}), Some("k-2"))).await;
    let waiting = waiting.expect("created").value;
    let waiting =
        run(waiting.id, ExecutionStatus::Queued, ExecutionStatus::Running).await.expect("running").value;
    let asked = approval(&waiting, "rm -rf target");
    let approved =
        ApprovalDecision::new(ApprovalStatus::Approved, "alice").apply(&approval(&waiting, "ls"), now());
    store.create_approval(approved, None).await.expect("an approval decided by the policy");
    let item = NewItem::new(
        format!("approval-{}", asked.id),
        ItemStatus::InProgress,
        ItemBody::Approval { approval_id: asked.id.to_string() },
    )
    .expect("an item");
    store.create_approval(asked, Some(item)).await.expect("a pending approval");

    let queued = store.create_execution(create(&other, json!({"n": 3}), None)).await.expect("created").value;

    let spec = ScheduleSpec {
        function: "review".into(),
        cron: "0 3 * * *".into(),
        timezone: "Europe/Paris".into(),
        input: json!({"url": "https://x/nightly"}),
        overlap: Overlap::Queue,
        enabled: true,
    };
    let due = now().replace_nanosecond(0).expect("a whole second");
    let schedule = Schedule::create(ScheduleId::generate(), spec, Some(due), now());
    let schedule = store.create_schedule(schedule).await.expect("a schedule").value;
    let skip = FireAction::Skip { reason: "the previous run still runs".into() };
    let fire =
        ScheduleFire { id: schedule.id, due, next: Some(due + Duration::from_secs(86_400)), action: skip };
    store.fire_schedule(fire).await.expect("a fire").expect("the schedule was due");

    let claimed =
        store.claim_deliveries("i-old", "ops", Duration::from_secs(3600), 10).await.expect("a claim");
    let kind = |delivery: &Delivery| delivery.event.kind;
    let Some(of_the_cancel) = claimed.iter().find(|delivery| kind(delivery) == EventKind::ExecutionCancelled)
    else {
        panic!("the cancel's delivery: {claimed:?}")
    };
    let delivered = DeliveryOutcome::Delivered { response_status: 204 };
    let finished = store.finish_delivery(of_the_cancel.id, "i-old", delivered).await.expect("a finish");
    assert!(finished.is_some(), "i-old holds its claim");
    let Some(claimed_delivery) =
        claimed.into_iter().find(|delivery| kind(delivery) == EventKind::ExecutionFailed)
    else {
        panic!("the failure's delivery")
    };

    let get = |id| async move { store.get_execution(id).await.expect("a read").expect("the execution") };
    Made { queued, running: get(running).await, waiting: get(waiting.id).await, claimed_delivery }
}

fn approval(execution: &Execution, command: &str) -> Approval {
    let requested_at = now();
    Approval {
        id: ApprovalId::generate(),
        execution_id: execution.id,
        function: execution.function.clone(),
        backend: execution.backend.clone(),
        session_id: execution.session_id.clone(),
        kind: ApprovalKind::Command,
        summary: command.to_owned(),
        details: json!({"command": command, "cwd": "/work/repo"}),
        item_id: Some(format!("call-{command}")),
        grant_key: Some(command.to_owned()),
        status: ApprovalStatus::Pending,
        for_session: true,
        requested_at,
        expires_at: requested_at + Duration::from_secs(3600),
        decided_by: None,
        decided_at: None,
        note: None,
        answers: None,
    }
}

/// Makes a SQLite store's file at `path` with [`fill`], and returns what it holds; the store is closed after.
async fn sqlite_file(path: &Path) -> (Contents, Made) {
    let store = SqliteStore::open(path).expect("a SQLite store");
    store.set_outbox_rules(outbox_rules());
    let made = fill(&store).await;
    let contents = contents(&store).await;
    drop(store);
    (contents, made)
}

#[test]
fn the_sqlite_schema_version_is_the_sqlite_stores() {
    assert_eq!(
        SQLITE_SCHEMA_VERSION,
        SqliteStore::schema_version(),
        "a SQLite migration was added: copy its columns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_in_the_file_reads_back_the_same_from_postgres() {
    let Some(target) = target("import_everything").await else { return };
    let dir = TestDir::new("everything");
    let path = dir.file("dashboard.db");
    let (before, made) = sqlite_file(&path).await;
    // The newest event removed, as retention may: its id must still never be handed out again.
    let pruned_id = before.events.last().expect("events").id;
    let connection = rusqlite::Connection::open(&path).expect("the file");
    connection.execute("DELETE FROM events WHERE id = ?1", [pruned_id]).expect("an event removed");
    drop(connection);
    let mut before = before;
    before.events.pop();
    // PostgreSQL's text has no NUL: it becomes U+FFFD, as PostgresStore stores it (codec.rs).
    let mut with_nul = 0;
    for line in before.details.iter_mut().flat_map(|(logs, ..)| logs) {
        if line.message.contains('\0') {
            line.message = line.message.replace('\0', "\u{FFFD}");
            with_nul += 1;
        }
    }
    assert_eq!(with_nul, 1, "SQLite kept the NUL");

    let report = import_sqlite(&path, &target).await.expect("an import");
    let details_of = |report: &ImportReport| {
        (report.functions, report.executions, report.logs, report.items, report.diffs, report.approvals)
    };
    assert_eq!(details_of(&report), (2, 6, 2503, 3, 1, 2));
    assert_eq!((report.schedules, report.deliveries), (1, 2));
    assert_eq!(report.events, before.events.len() as u64);
    assert_eq!(report.last_event_id, pruned_id);

    let after = contents(&target).await;
    assert_eq!(after.functions, before.functions);
    assert_eq!(after.executions, before.executions);
    assert_eq!(after.details, before.details);
    assert_eq!(after.events, before.events);
    assert_eq!(after.pending_approvals, before.pending_approvals);
    assert_eq!(after.schedules, before.schedules);
    assert_eq!(after.deliveries, before.deliveries);
    assert_eq!(
        after.schedules.iter().map(|schedule| schedule.skipped).collect::<Vec<_>>(),
        [1],
        "the schedule's history came along"
    );
    assert_eq!(
        target.last_event_id().await.expect("the last event id"),
        before.events.last().expect("events").id
    );

    // A new event takes an id above every id the file handed out, the removed one too.
    let created =
        target.create_function(Function::create(FunctionSpec::new("new", "demo")).expect("a spec")).await;
    assert_eq!(created.expect("a function").event.id, pruned_id + 1);

    // The instances carry on: the queued one is claimed, those the file's server left running and waiting are found
    // at once, as that server's restart would have found them.
    assert_eq!(target.claim("i-new", 10, Duration::from_secs(60)).await.expect("a claim"), [made.queued]);
    let orphans = target.expired(None, 10).await.expect("a look");
    assert_eq!(orphans, [made.running, made.waiting]);
    // The pending delivery the file's server had claimed is claimed afresh: its claim was not copied.
    let claimed =
        target.claim_deliveries("i-new", "ops", Duration::from_secs(60), 10).await.expect("a claim");
    assert_eq!(claimed, [made.claimed_delivery]);

    let again = import_sqlite(&path, &target).await;
    assert!(
        matches!(&again, Err(StoreError::Invalid(CoreError::InvalidField { field, .. })) if field == "to"),
        "a second import into the same database: {again:?}"
    );
    assert_eq!(target.list_events(0, 10_000).await.expect("the events").len(), before.events.len() + 1);
}

/// `import_sqlite(path)` must be refused as a wrong `--from`, saying `says`.
async fn check_refused(path: &Path, target: &PostgresStore, says: &str) {
    let refused = import_sqlite(path, target).await;
    match &refused {
        Err(StoreError::Invalid(CoreError::InvalidField { field, message })) if field == "from" => {
            assert!(message.contains(says), "{message:?} does not say {says:?}");
        }
        other => panic!("{} was not refused as it should be: {other:?}", path.display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_a_stopped_dashboards_are_refused() {
    let Some(target) = target("import_refusals").await else { return };
    let dir = TestDir::new("refusals");

    check_refused(&dir.file("missing.db"), &target, "does not exist").await;

    let text = dir.file("notes.txt");
    std::fs::write(&text, "not a database at all, but long enough to have a header of sorts ..........")
        .expect("a file");
    check_refused(&text, &target, "is not an SQLite database").await;

    let other = dir.file("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|connection| {
            connection.execute_batch(&format!(
                "CREATE TABLE notes (text TEXT); PRAGMA user_version = {SQLITE_SCHEMA_VERSION}"
            ))
        })
        .expect("another application's database");
    check_refused(&other, &target, "is not an Agent Dashboard database").await;

    let older = dir.file("older.db");
    drop(SqliteStore::open(&older).expect("a SQLite store"));
    rusqlite::Connection::open(&older)
        .and_then(|connection| {
            connection.execute_batch(&format!("PRAGMA user_version = {}", SQLITE_SCHEMA_VERSION - 1))
        })
        .expect("an older version");
    check_refused(&older, &target, "older than this Agent Dashboard's").await;

    let newer = dir.file("newer.db");
    drop(SqliteStore::open(&newer).expect("a SQLite store"));
    rusqlite::Connection::open(&newer)
        .and_then(|connection| {
            connection.execute_batch(&format!("PRAGMA user_version = {}", SQLITE_SCHEMA_VERSION + 1))
        })
        .expect("a newer version");
    check_refused(&newer, &target, "written by a newer Agent Dashboard").await;

    let in_use = dir.file("in-use.db");
    let running = SqliteStore::open(&in_use).expect("a SQLite store");
    check_refused(&in_use, &target, "in use by a running Agent Dashboard").await;
    drop(running);

    // Nothing of any of them reached the target; a good file still goes in.
    let good = import_sqlite(&in_use, &target).await.expect("an import of an empty dashboard file");
    assert_eq!(good, ImportReport::default());
}
