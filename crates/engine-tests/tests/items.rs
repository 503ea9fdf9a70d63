//! Transcript items through the engine, from a scripted backend: the order they are stored in with the lines, the
//! bounds the engine applies to every item it admits, and what becomes of items left open when a run ends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Principal, Readiness, RunContext, RunOutcome};
use dashboard_core::{
    ExecutionId, ExecutionStatus, FunctionSpec, Item, ItemBody, ItemStatus, LogStream, MAX_ITEM_BYTES,
    MAX_ITEM_ID_BYTES, MessageRole, NewItem,
};
use dashboard_engine::{BusMessage, Dashboard, DashboardBuilder, TriggerRequest};
use dashboard_store_sqlite::SqliteStore;
use serde_json::json;
use tokio::sync::Semaphore;

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// One thing a scripted backend does.
#[derive(Clone)]
enum Step {
    Item(NewItem),
    Line(&'static str),
    /// Waits until the test opens the gate; a cancel ends the run.
    Gate,
    /// Ends the run as failed.
    Fail(&'static str),
}

/// A backend that does its steps in order, then succeeds.
#[derive(Clone)]
struct Scripted {
    steps: Vec<Step>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Backend for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("a script")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        for step in &self.steps {
            match step {
                Step::Item(item) => run.item(item.clone()).await,
                Step::Line(line) => run.log(LogStream::Stdout, line).await,
                Step::Gate => {
                    let permit = tokio::select! {
                        permit = self.gate.acquire() => permit,
                        () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
                    };
                    permit.map_err(|_| BackendError::Cancelled)?.forget();
                }
                Step::Fail(error) => return Ok(RunOutcome::Failed { error: (*error).into() }),
            }
        }
        Ok(RunOutcome::Succeeded { output: json!(null), usage: None })
    }
}

/// A dashboard on SQLite running `steps`, built further by `build`, and its gate.
fn dashboard(
    steps: Vec<Step>,
    build: impl FnOnce(DashboardBuilder) -> DashboardBuilder,
) -> (Dashboard, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(SqliteStore::open_temporary().expect("a store"));
    let backend = Scripted { steps, gate: gate.clone() };
    (build(Dashboard::builder().store(store).backend("scripted", backend)).build(), gate)
}

/// Starts an execution of the scripted backend.
async fn trigger(dashboard: &Dashboard) -> ExecutionId {
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("agent", "scripted"))
        .await
        .expect("a function");
    let request =
        TriggerRequest { function: "agent".into(), input: json!({}), backend: None, idempotency_key: None };
    dashboard.trigger(&Principal::anonymous(), request).await.expect("a trigger").execution.id
}

/// Runs `steps` to the end; the dashboard and the execution.
async fn run(
    steps: Vec<Step>,
    build: impl FnOnce(DashboardBuilder) -> DashboardBuilder,
) -> (Dashboard, ExecutionId) {
    let (dashboard, _gate) = dashboard(steps, build);
    let id = trigger(&dashboard).await;
    wait_for_end(&dashboard, id).await;
    (dashboard, id)
}

async fn wait_for_end(dashboard: &Dashboard, id: ExecutionId) -> ExecutionStatus {
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            let execution = dashboard.store().get_execution(id).await.expect("reads go on").expect("exists");
            if execution.status.is_terminal() {
                return execution.status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ended.expect("the run ends")
}

async fn items(dashboard: &Dashboard, id: ExecutionId) -> Vec<Item> {
    dashboard.store().list_items(id, 0, 1000).await.expect("reads go on")
}

fn message(id: &str, text: &str) -> NewItem {
    NewItem::new(id, ItemStatus::Completed, ItemBody::Message { role: MessageRole::Agent, text: text.into() })
        .expect("an item")
}

fn command(id: &str, status: ItemStatus) -> NewItem {
    let body =
        ItemBody::Command { command: "make".into(), cwd: None, output: String::new(), exit_code: None };
    NewItem::new(id, status, body).expect("an item")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_reported_before_a_line_is_stored_before_it() {
    let steps = vec![Step::Item(message("a", "first")), Step::Line("after the item"), Step::Gate];
    let (dashboard, gate) = dashboard(steps, |builder| builder);
    let mut receiver = dashboard.subscribe();
    let id = trigger(&dashboard).await;
    // The opening line is seq 1; the backend's line is seq 2.
    let heard = tokio::time::timeout(PATIENCE, async {
        let mut heard = Vec::new();
        while heard.len() < 2 {
            match receiver.recv().await.expect("the bus is open") {
                BusMessage::Items { execution_id, .. } if execution_id == id => heard.push("item"),
                BusMessage::Logs { execution_id, last_seq } if execution_id == id && last_seq >= 2 => {
                    heard.push("line")
                }
                _ => {}
            }
        }
        heard
    })
    .await
    .expect("both are stored");
    assert_eq!(heard, ["item", "line"], "stored in the order they were reported");
    gate.add_permits(1);
    assert_eq!(wait_for_end(&dashboard, id).await, ExecutionStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_bounds_an_item_a_backend_built_by_hand() {
    // The fields are public: a backend may build an item without NewItem::new and its limits.
    let huge = NewItem {
        id: "x".repeat(10 * MAX_ITEM_ID_BYTES),
        status: ItemStatus::Completed,
        body: ItemBody::Message { role: MessageRole::Agent, text: "y".repeat(4 * MAX_ITEM_BYTES) },
    };
    let empty_id = NewItem { id: String::new(), ..message("unused", "no id") };
    let (dashboard, id) = run(vec![Step::Item(huge), Step::Item(empty_id)], |builder| builder).await;
    let items = items(&dashboard, id).await;
    assert_eq!(items.len(), 1, "the item without an id is dropped");
    assert!(items[0].id.len() <= MAX_ITEM_ID_BYTES, "{}", items[0].id.len());
    assert!(items[0].body.text_bytes() <= MAX_ITEM_BYTES, "{}", items[0].body.text_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_item_byte_limit_new_items_are_dropped_with_one_marker() {
    let steps = vec![
        Step::Item(command("c", ItemStatus::InProgress)),
        Step::Item(message("m1", &"a".repeat(60))),
        Step::Item(message("m2", &"b".repeat(60))),
        Step::Item(message("m3", "c")),
        Step::Item(command("c", ItemStatus::Completed)),
    ];
    let (dashboard, id) = run(steps, |builder| builder.max_item_bytes(100)).await;
    let kept: Vec<(String, ItemStatus)> =
        items(&dashboard, id).await.into_iter().map(|item| (item.id, item.status)).collect();
    assert_eq!(kept, [("c".into(), ItemStatus::Completed), ("m1".into(), ItemStatus::Completed)]);
    let lines = dashboard.store().read_logs(id, 0, 100).await.expect("reads go on");
    let marker = "item limit of 100 bytes reached: later new items of this execution are dropped";
    assert_eq!(lines.iter().filter(|line| line.message == marker).count(), 1, "{lines:?}");
}

/// The status of each item once a run of `steps` has ended, by id, and how the run ended; `cancel` cancels it once its
/// first item is stored.
async fn statuses_at_the_end(steps: Vec<Step>, cancel: bool) -> (ExecutionStatus, Vec<(String, ItemStatus)>) {
    let (dashboard, _gate) = dashboard(steps, |builder| builder);
    let id = trigger(&dashboard).await;
    if cancel {
        let stored = tokio::time::timeout(PATIENCE, async {
            while items(&dashboard, id).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        stored.await.expect("the first item is stored");
        dashboard.cancel(&Principal::anonymous(), id).await.expect("a cancel");
    }
    let status = wait_for_end(&dashboard, id).await;
    let items = items(&dashboard, id).await.into_iter().map(|item| (item.id, item.status)).collect();
    (status, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_left_open_are_declined_when_the_run_is_cancelled() {
    let steps = vec![
        Step::Item(command("stored", ItemStatus::InProgress)),
        Step::Item(command("done", ItemStatus::Completed)),
        Step::Gate,
    ];
    let (status, items) = statuses_at_the_end(steps, true).await;
    assert_eq!(status, ExecutionStatus::Cancelled);
    assert_eq!(items, [("stored".into(), ItemStatus::Declined), ("done".into(), ItemStatus::Completed)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_left_open_fail_with_the_run() {
    let steps = vec![
        Step::Item(command("early", ItemStatus::InProgress)),
        Step::Line("a line between"),
        Step::Item(command("late", ItemStatus::InProgress)),
        Step::Fail("the agent gave up"),
    ];
    let (status, items) = statuses_at_the_end(steps, false).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert_eq!(items, [("early".into(), ItemStatus::Failed), ("late".into(), ItemStatus::Failed)]);

    // A run that succeeds leaves its items as the agent reported them.
    let (status, items) =
        statuses_at_the_end(vec![Step::Item(command("open", ItemStatus::InProgress))], false).await;
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(items, [("open".into(), ItemStatus::InProgress)]);
}
