//! Several engines on one shared store (`SharedMemory`), as instances of a cluster share one PostgreSQL database
//! (DESIGN.md §13): each execution runs exactly once, a function's `max_concurrency` holds across instances, cancels,
//! decisions and a remote agent's report work from any instance, the work of an instance that died is ended within its
//! lease, and every instance's bus carries the others' events in order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Principal, Readiness, RunContext, RunOutcome, Scope};
use dashboard_backends::DemoBackend;
use dashboard_core::{
    ApprovalPolicy, Decision, EventKind, Execution, ExecutionId, ExecutionStatus, FunctionSpec, LogStream,
    ScheduleSpec,
};
use dashboard_engine::{
    BusMessage, ClusterSettings, Dashboard, DecideRequest, INSTANCE_STOPPED_ERROR, StatusReport,
    TriggerRequest,
};
use dashboard_store::{ApprovalQuery, Cluster, MemoryStore, SharedMemory};
use serde_json::{Value, json};

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// A short lease, so that the work of a dead instance is found soon; long enough that heartbeats (every sixth of it,
/// each renewing for five sixths) held up a while on a loaded machine do not lose a live instance its work.
const LEASE: Duration = Duration::from_secs(1);

/// What the demo runs of all instances did: how many ran at once at most, and which executions ran.
#[derive(Default)]
struct Tally {
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    runs: Mutex<Vec<ExecutionId>>,
}

/// Counts a run as running until it is dropped, even when its future is dropped before it ends.
struct Running<'a>(&'a Tally);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The demo backend, counted in a tally that every instance shares.
struct Counted(Arc<Tally>);

#[async_trait]
impl Backend for Counted {
    fn kind(&self) -> &'static str {
        "demo"
    }

    async fn check(&self) -> Readiness {
        DemoBackend.check().await
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let tally = &self.0;
        tally.runs.lock().expect("runs lock").push(run.execution_id);
        let now = tally.running.fetch_add(1, Ordering::SeqCst) + 1;
        tally.most_at_once.fetch_max(now, Ordering::SeqCst);
        let _running = Running(tally);
        DemoBackend.trigger(run).await
    }
}

/// A remote agent's backend: it hands the work over and detaches; the agent reports through the callbacks.
struct Detaching;

#[async_trait]
impl Backend for Detaching {
    fn kind(&self) -> &'static str {
        "remote"
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("detaches at once")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        run.log(LogStream::Agent, "handed over to the remote agent").await;
        Ok(RunOutcome::Detached)
    }
}

/// Instances on one shared store, with one tally of their runs.
#[derive(Default)]
struct Instances {
    shared: Arc<SharedMemory>,
    tally: Arc<Tally>,
}

impl Instances {
    /// A new instance named `name` that runs at most `max_running` executions at once, recovered as at its start.
    async fn start(&self, name: &str, max_running: usize) -> Dashboard {
        let secret = self.shared.shared_secret().await.expect("the secret");
        let dashboard = Dashboard::builder()
            .store(self.shared.clone())
            .backend("demo", Counted(Arc::clone(&self.tally)))
            .backend("remote", Detaching)
            .instance_id(Some(name.to_owned()))
            .max_concurrency(max_running)
            .cluster(ClusterSettings { cluster: self.shared.clone(), lease: LEASE, secret })
            .build();
        dashboard.recover().await.expect("recovery");
        dashboard
    }

    fn runs(&self) -> Vec<ExecutionId> {
        self.tally.runs.lock().expect("runs lock").clone()
    }
}

fn alice() -> Principal {
    Principal::token("alice", Scope::Trigger, None)
}

async fn create(dashboard: &Dashboard, spec: FunctionSpec) {
    let admin = Principal::token("admin", Scope::Admin, None);
    dashboard.create_function(&admin, spec).await.expect("a function");
}

async fn trigger(dashboard: &Dashboard, function: &str, input: Value) -> ExecutionId {
    let request = TriggerRequest { function: function.into(), input, backend: None, idempotency_key: None };
    dashboard.trigger(&alice(), request).await.expect("the trigger is accepted").execution.id
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(found) = check().await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

async fn execution(dashboard: &Dashboard, id: ExecutionId) -> Execution {
    dashboard.store().get_execution(id).await.expect("read").expect("it exists")
}

async fn wait_for_status(dashboard: &Dashboard, id: ExecutionId, wanted: ExecutionStatus) -> Execution {
    wait_for(&format!("{id} to be {wanted}"), async || {
        Some(execution(dashboard, id).await).filter(|execution| execution.status == wanted)
    })
    .await
}

async fn wait_until_terminal(dashboard: &Dashboard, id: ExecutionId) -> Execution {
    wait_for(&format!("the end of {id}"), async || {
        Some(execution(dashboard, id).await).filter(|execution| execution.status.is_terminal())
    })
    .await
}

/// The instance among `instances` that runs execution `id` (once it has started), and one that does not.
async fn runner_and_other(instances: &[Dashboard], id: ExecutionId) -> (&Dashboard, &Dashboard) {
    let runner_id =
        wait_for("the start of the run", async || execution(&instances[0], id).await.instance).await;
    let runner =
        instances.iter().find(|dashboard| dashboard.instance_id() == runner_id).expect("one of them");
    let other = instances.iter().find(|dashboard| dashboard.instance_id() != runner_id).expect("another");
    (runner, other)
}

async fn event_kinds(dashboard: &Dashboard, id: ExecutionId) -> Vec<String> {
    let events = dashboard.store().list_events(0, 10_000).await.expect("read");
    events
        .into_iter()
        .filter(|event| event.execution_id == Some(id))
        .map(|event| event.kind.to_string())
        .collect()
}

async fn logs(dashboard: &Dashboard, id: ExecutionId) -> Vec<String> {
    let lines = dashboard.store().read_logs(id, 0, 1000).await.expect("read");
    lines.into_iter().map(|line| line.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_execution_triggered_on_any_instance_runs_exactly_once() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await, cluster.start("c", 8).await];
    create(&instances[0], FunctionSpec::new("f", "demo")).await;

    let mut triggered = Vec::new();
    for n in 0..100 {
        triggered.push(trigger(&instances[n % 3], "f", json!({"steps": 1, "delay_ms": 1})).await);
    }
    for id in &triggered {
        let ended = wait_until_terminal(&instances[0], *id).await;
        assert_eq!(ended.status, ExecutionStatus::Succeeded, "{ended:?}");
        assert!(matches!(ended.instance.as_deref(), Some("a" | "b" | "c")), "{:?}", ended.instance);
    }

    let runs = cluster.runs();
    assert_eq!(runs.len(), 100, "each execution's backend ran once");
    assert_eq!(runs.iter().collect::<HashSet<_>>(), triggered.iter().collect::<HashSet<_>>());
    for id in &triggered {
        let kinds = event_kinds(&instances[0], *id).await;
        assert_eq!(kinds, ["execution.queued", "execution.started", "execution.succeeded"], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functions_max_concurrency_holds_across_instances() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await, cluster.start("c", 8).await];
    create(&instances[0], FunctionSpec { max_concurrency: Some(2), ..FunctionSpec::new("f", "demo") }).await;

    let mut triggered = Vec::new();
    for n in 0..12 {
        triggered.push(trigger(&instances[n % 3], "f", json!({"steps": 2, "delay_ms": 20})).await);
    }
    for id in triggered {
        assert_eq!(wait_until_terminal(&instances[0], id).await.status, ExecutionStatus::Succeeded);
    }
    let most = cluster.tally.most_at_once.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "at most 2 ran at once across the instances, but {most} did");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_instance_stops_a_run_on_another() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await];
    create(&instances[0], FunctionSpec::new("f", "demo")).await;
    let id = trigger(&instances[0], "f", json!({"hang": true})).await;
    let (runner, other) = runner_and_other(&instances, id).await;

    let answered = other.cancel(&alice(), id).await.expect("the cancel is taken");
    assert_eq!(answered.status, ExecutionStatus::Running, "answered at once, as it is");
    let ended = wait_until_terminal(other, id).await;
    assert_eq!(
        (ended.status, ended.error.as_deref()),
        (ExecutionStatus::Cancelled, Some("cancelled by alice"))
    );
    wait_for("the run to end on its instance", async || (runner.running_count() == 0).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_asked_on_one_instance_is_decided_on_another() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await];
    let spec = FunctionSpec { approval_policy: ApprovalPolicy::Ask, ..FunctionSpec::new("f", "demo") };
    create(&instances[0], spec).await;
    let id = trigger(&instances[1], "f", json!({"steps": 0, "approvals": 1})).await;
    let (_, other) = runner_and_other(&instances, id).await;
    let approval = wait_for("a pending approval", async || {
        let query = ApprovalQuery { pending_only: true, execution: Some(id), limit: 10 };
        other.store().list_approvals(&query).await.expect("read").into_iter().next()
    })
    .await;

    let request = DecideRequest { decision: Decision::Approve, note: None, answers: None };
    other.decide_approval(&alice(), approval.id, request).await.expect("decided");
    let ended = wait_until_terminal(other, id).await;
    assert_eq!(ended.status, ExecutionStatus::Succeeded, "{ended:?}");
    assert_eq!(
        ended.output.expect("an output")["decisions"],
        json!(["approve"]),
        "the agent heard the decision"
    );
    assert!(logs(other, id).await.contains(&"approval 1: approve by alice".to_owned()));
    assert_eq!(
        event_kinds(other, id).await,
        [
            "execution.queued",
            "execution.started",
            "approval.requested",
            "execution.waiting",
            "approval.decided",
            "execution.resumed",
            "execution.succeeded"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_work_of_an_instance_that_died_is_failed_as_interrupted_by_another() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await];
    create(&instances[0], FunctionSpec::new("f", "demo")).await;
    let id = trigger(&instances[0], "f", json!({"hang": true})).await;
    let (runner, other) = runner_and_other(&instances, id).await;

    // While its instance lives, its heartbeats keep the lease: neither a new instance's recovery nor the lease's
    // length ends it.
    let newcomer = cluster.start("c", 8).await;
    tokio::time::sleep(LEASE * 2).await;
    assert_eq!(execution(&newcomer, id).await.status, ExecutionStatus::Running);

    // The runner loses the store: its heartbeats stop, and it is gone as far as the others can tell.
    cluster.shared.cut_off(runner.instance_id());
    let ended = wait_until_terminal(other, id).await;
    assert_eq!(
        (ended.status, ended.error.as_deref()),
        (ExecutionStatus::Failed, Some(INSTANCE_STOPPED_ERROR))
    );
    let kinds = event_kinds(other, id).await;
    assert_eq!(kinds, ["execution.queued", "execution.started", "execution.failed"], "ended once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_under_its_id_ends_what_it_left_running_at_once() {
    let cluster = Instances::default();
    let before = cluster.start("a", 8).await;
    create(&before, FunctionSpec::new("f", "demo")).await;
    let id = trigger(&before, "f", json!({"hang": true})).await;
    wait_for_status(&before, id, ExecutionStatus::Running).await;

    // The same id again: a restart, whose leftovers are its own to end, lease or no lease.
    let after = cluster.start("a", 8).await;
    let ended = execution(&after, id).await;
    assert_eq!(
        (ended.status, ended.error.as_deref()),
        (ExecutionStatus::Failed, Some(INSTANCE_STOPPED_ERROR))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_instances_runs_reach_the_bus_of_another_in_order() {
    let cluster = Instances::default();
    // `b` is busy with a run that hangs and has room for no other, so `a` runs everything that follows.
    let busy = cluster.start("b", 1).await;
    create(&busy, FunctionSpec::new("f", "demo")).await;
    let hanging = trigger(&busy, "f", json!({"hang": true})).await;
    wait_for_status(&busy, hanging, ExecutionStatus::Running).await;
    let runner = cluster.start("a", 8).await;

    let after = busy.store().list_events(0, 10_000).await.expect("read").last().map_or(0, |event| event.id);
    let mut bus = busy.subscribe();
    let mut triggered = Vec::new();
    for _ in 0..5 {
        triggered.push(trigger(&runner, "f", json!({"steps": 2, "delay_ms": 1})).await);
    }
    for id in &triggered {
        let ended = wait_until_terminal(&runner, *id).await;
        assert_eq!((ended.status, ended.instance.as_deref()), (ExecutionStatus::Succeeded, Some("a")));
    }
    let stored: Vec<(u64, EventKind)> = runner
        .store()
        .list_events(after, 10_000)
        .await
        .expect("read")
        .into_iter()
        .map(|event| (event.id, event.kind))
        .collect();
    assert_eq!(stored.len(), 15, "queued, started and succeeded of each: {stored:?}");

    let mut heard = Vec::new();
    let mut logged = HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while heard.len() < stored.len() {
            match bus.recv().await.expect("the bus keeps up") {
                BusMessage::Event(event) if event.id > after => heard.push((event.id, event.kind)),
                BusMessage::Logs { execution_id, .. } => {
                    logged.insert(execution_id);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the other instance's events reach the bus");
    assert_eq!(heard, stored, "every event once, in order");
    assert!(
        triggered.iter().all(|id| logged.contains(id)),
        "the log lines stored by `a` are told on b's bus"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agents_report_to_another_instance_ends_the_run_that_waits_for_it() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await];
    create(&instances[0], FunctionSpec::new("agent", "remote")).await;
    let id = trigger(&instances[0], "agent", json!({})).await;
    let (runner, other) = runner_and_other(&instances, id).await;
    assert!(other.verify_callback_token(id, &runner.callback_token(id)), "every instance knows the token");

    let report = StatusReport {
        status: ExecutionStatus::Succeeded,
        output: Some(json!({"answer": 42})),
        error: None,
        usage: None,
    };
    let reported = other.report_status(id, report).await.expect("the report is taken");
    assert_eq!((reported.status, reported.output), (ExecutionStatus::Succeeded, Some(json!({"answer": 42}))));
    wait_for("the waiting run to end", async || (runner.running_count() == 0).then_some(())).await;
    let lines = logs(other, id).await;
    assert_eq!(lines.first().map(String::as_str), Some("running on backend remote (attempt 1)"));
    assert_eq!(lines.last().map(String::as_str), Some("finished"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_leaves_the_cluster_to_the_others() {
    let cluster = Instances::default();
    let (leaving, staying) = (cluster.start("a", 8).await, cluster.start("b", 8).await);
    create(&staying, FunctionSpec::new("f", "demo")).await;
    let names = |instances: Vec<dashboard_store::InstanceInfo>| -> Vec<String> {
        instances.into_iter().map(|instance| instance.id).collect()
    };
    assert_eq!(names(staying.instances().await.expect("instances")), ["a", "b"]);

    leaving.shutdown(Duration::from_secs(5)).await;
    assert_eq!(names(staying.instances().await.expect("instances")), ["b"]);
    let id = trigger(&staying, "f", json!({"steps": 0})).await;
    let ended = wait_until_terminal(&staying, id).await;
    assert_eq!((ended.status, ended.instance.as_deref()), (ExecutionStatus::Succeeded, Some("b")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_names_the_instance_that_ran_it_without_a_cluster_too() {
    let dashboard = Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("demo", DemoBackend)
        .instance_id(Some("solo".into()))
        .build();
    create(&dashboard, FunctionSpec::new("f", "demo")).await;
    let id = trigger(&dashboard, "f", json!({"steps": 0})).await;
    let ended = wait_until_terminal(&dashboard, id).await;
    assert_eq!((ended.status, ended.instance.as_deref()), (ExecutionStatus::Succeeded, Some("solo")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_each_due_time_once_whichever_instances_look() {
    let cluster = Instances::default();
    let instances = [cluster.start("a", 8).await, cluster.start("b", 8).await, cluster.start("c", 8).await];
    create(&instances[0], FunctionSpec::new("f", "demo")).await;
    let admin = Principal::token("admin", Scope::Admin, None);
    let spec: ScheduleSpec = serde_json::from_value(
        json!({"function": "f", "cron": "* * * * * *", "input": {"steps": 1, "delay_ms": 1}, "overlap": "queue"}),
    )
    .expect("a spec");
    let schedule = instances[1].create_schedule(&admin, spec).await.expect("a schedule");
    // Every instance fires due schedules at once, over and over, for a few due times.
    let end = tokio::time::Instant::now() + Duration::from_millis(3500);
    let firing = instances.iter().map(|instance| {
        let instance = instance.clone();
        tokio::spawn(async move {
            let mut fired = 0;
            while tokio::time::Instant::now() < end {
                fired += instance.fire_due_schedules().await.expect("the store answers");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            fired
        })
    });
    let mut fires = 0;
    for fired in firing.collect::<Vec<_>>() {
        fires += fired.await.expect("no panic");
    }

    let events = instances[2].store().list_events(0, 10_000).await.expect("events");
    let dues: Vec<String> = events
        .iter()
        .filter(|event| event.kind == EventKind::ScheduleFired)
        .map(|event| event.data["due"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(dues.len() >= 3, "three due times in 3.5 s: {dues:?}");
    assert_eq!(dues.iter().collect::<HashSet<_>>().len(), dues.len(), "a due time fired twice: {dues:?}");
    assert_eq!(fires, dues.len(), "each stored fire counted by the instance that made it");
    let stored = instances[0].schedule(schedule.id).await.expect("the schedule");
    let executions = dues.len();
    let page = instances[0]
        .store()
        .list_executions(&dashboard_store::ExecutionQuery {
            function: Some("f".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("executions");
    assert_eq!(page.items.len(), executions);
    let trigger = format!("schedule:{}", schedule.id);
    assert!(page.items.iter().all(|execution| execution.triggered_by.as_deref() == Some(trigger.as_str())));
    assert_eq!(stored.last_execution, page.items.first().map(|execution| execution.id));
}
