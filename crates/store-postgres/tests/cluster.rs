//! `PostgresStore` as a [`Cluster`]: two stores on one database stand for two instances. Claims are exactly once and
//! keep `max_concurrency` across both, leases end and are renewed, cancels and decisions reach the other instance,
//! the listener comes back by itself, and logins and the secret are shared.
//!
//! Each test makes its own database on the server named by `DASHBOARD_TEST_POSTGRES`, and skips (saying why) without
//! one, as the conformance tests do.

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{
    ApprovalId, Execution, ExecutionId, ExecutionStatus, Function, FunctionSpec, LogStream, NewLogLine, now,
};
use dashboard_store::{
    Cluster, DashboardStore, ExecutionUpdate, LoginRecord, NewExecution, Signal, StoreError,
};
use dashboard_store_postgres::{PostgresStore, testing};
use serde_json::json;
use tokio::sync::mpsc;

/// A lease that outlives every test.
const LEASE: Duration = Duration::from_secs(300);

/// How long a signal may take to arrive before the test gives up on it: a safety net against a hang, far above what
/// delivery takes (milliseconds), never a measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// One database and a store on it per instance.
struct Instances {
    url: String,
    a: Arc<PostgresStore>,
    b: Arc<PostgresStore>,
}

/// Two instances on a fresh database, or `None` (the test skips) without a test server.
async fn instances(prefix: &str) -> Option<Instances> {
    let url = testing::database(prefix).await?;
    let a = Arc::new(testing::store(&url).await);
    let b = Arc::new(testing::store(&url).await);
    Some(Instances { url, a, b })
}

async fn function(store: &PostgresStore, name: &str, max_concurrency: Option<u32>) -> Function {
    let mut spec = FunctionSpec::new(name, "demo");
    spec.max_concurrency = max_concurrency;
    let function = Function::create(spec).expect("a valid spec");
    store.create_function(function).await.expect("creating a function").value
}

async fn queue(store: &PostgresStore, function: &Function, n: usize) -> Vec<ExecutionId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let execution = NewExecution::of(function, json!({}));
        ids.push(store.create_execution(execution).await.expect("queueing an execution").value.id);
    }
    ids
}

async fn advance(store: &PostgresStore, id: ExecutionId, from: ExecutionStatus, to: ExecutionStatus) {
    store.update_execution(id, ExecutionUpdate::new(from, to)).await.expect("a legal status change");
}

fn ids(executions: &[Execution]) -> Vec<ExecutionId> {
    executions.iter().map(|execution| execution.id).collect()
}

/// Makes the leases `owner` holds end an hour ago, as if it had died then.
async fn leases_ended(url: &str, owner: &str) {
    testing::plain_connection(url)
        .await
        .execute(
            "UPDATE executions SET lease_expires_at = now() - interval '1 hour' WHERE lease_owner = $1",
            &[&owner],
        )
        .await
        .expect("ending the leases");
}

/// Who holds the lease of `id`, and whether it is live.
async fn lease(url: &str, id: ExecutionId) -> (Option<String>, bool) {
    let row = testing::plain_connection(url)
        .await
        .query_one(
            "SELECT lease_owner, COALESCE(lease_expires_at > now(), false) FROM executions WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .expect("the execution's lease");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queued_execution_is_claimed_exactly_once_by_two_instances_at_once() {
    let Some(Instances { a, b, .. }) = instances("cluster_claim_once").await else { return };
    let queued = queue(&a, &function(&a, "busy", None).await, 200).await;

    let claimer = |store: Arc<PostgresStore>, instance: &'static str| {
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store.claim(instance, 7, LEASE).await.expect("a claim");
                if batch.is_empty() {
                    return claimed;
                }
                assert!(batch.windows(2).all(|pair| pair[0].id < pair[1].id), "oldest first");
                assert!(batch.iter().all(|execution| execution.status == ExecutionStatus::Queued));
                claimed.extend(ids(&batch));
            }
        })
    };
    let (by_a, by_b) = tokio::join!(claimer(Arc::clone(&a), "a"), claimer(Arc::clone(&b), "b"));
    let (by_a, by_b) = (by_a.expect("instance a's task"), by_b.expect("instance b's task"));

    let mut all: Vec<ExecutionId> = by_a.iter().chain(&by_b).copied().collect();
    all.sort();
    let mut expected = queued.clone();
    expected.sort();
    assert_eq!(
        all,
        expected,
        "every execution claimed once, none twice ({} by a, {} by b)",
        by_a.len(),
        by_b.len()
    );
    assert!(a.claim("a", 10, LEASE).await.expect("a claim").is_empty(), "nothing is left to claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_instances() {
    let Some(Instances { url, a, b }) = instances("cluster_max_concurrency").await else { return };
    let limited = function(&a, "limited", Some(2)).await;
    let queued = queue(&a, &limited, 10).await;

    // Both claim at once, again and again: never more than two in all.
    let claimer = |store: Arc<PostgresStore>, instance: &'static str| {
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            for _ in 0..20 {
                claimed.extend(ids(&store.claim(instance, 3, LEASE).await.expect("a claim")));
            }
            claimed
        })
    };
    let (by_a, by_b) = tokio::join!(claimer(Arc::clone(&a), "a"), claimer(Arc::clone(&b), "b"));
    let (by_a, by_b) = (by_a.expect("instance a's task"), by_b.expect("instance b's task"));
    let mut claimed: Vec<ExecutionId> = by_a.iter().chain(&by_b).copied().collect();
    claimed.sort();
    assert_eq!(claimed, queued[..2], "the two oldest, and no more (a took {by_a:?}, b {by_b:?})");

    // Running counts as much as claimed: starting them frees nothing.
    for id in &claimed {
        advance(&a, *id, ExecutionStatus::Queued, ExecutionStatus::Running).await;
    }
    assert!(b.claim("b", 5, LEASE).await.expect("a claim").is_empty());
    assert!(a.claim("a", 5, LEASE).await.expect("a claim").is_empty());

    // A function at its limit holds up no other: the free one's execution, queued last, is claimed.
    let free = queue(&a, &function(&a, "free", None).await, 1).await;
    assert_eq!(ids(&b.claim("b", 5, LEASE).await.expect("a claim")), free);

    // One ends: one slot, and it goes to the oldest still queued.
    advance(&a, claimed[0], ExecutionStatus::Running, ExecutionStatus::Succeeded).await;
    assert_eq!(ids(&b.claim("b", 5, LEASE).await.expect("a claim")), [queued[2]]);
    assert!(a.claim("a", 5, LEASE).await.expect("a claim").is_empty());

    // A claim whose lease ended counts no more (its instance died): its slot is free again, and the free
    // function's execution b claimed is claimable too.
    leases_ended(&url, "b").await;
    assert_eq!(ids(&a.claim("a", 5, LEASE).await.expect("a claim")), [queued[2], free[0]]);

    // A deleted function has no limit left: its queued executions are all claimed.
    let doomed = function(&a, "doomed", Some(1)).await;
    let orphaned = queue(&a, &doomed, 2).await;
    a.delete_function(doomed.id).await.expect("deleting the function");
    assert_eq!(ids(&b.claim("b", 5, LEASE).await.expect("a claim")), orphaned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_leases_are_found_and_queued_ones_released() {
    let Some(Instances { url, a, b }) = instances("cluster_expired").await else { return };
    let queued = queue(&a, &function(&a, "work", None).await, 4).await;
    assert_eq!(ids(&a.claim("a", 4, LEASE).await.expect("a claim")), queued);
    advance(&a, queued[0], ExecutionStatus::Queued, ExecutionStatus::Running).await;
    advance(&a, queued[1], ExecutionStatus::Queued, ExecutionStatus::Running).await;
    advance(&a, queued[1], ExecutionStatus::Running, ExecutionStatus::Waiting).await;
    assert!(b.expired(None, 10).await.expect("a look").is_empty(), "a's leases are live");
    assert!(b.claim("b", 10, LEASE).await.expect("a claim").is_empty(), "a holds them all");

    // Instance a dies.
    leases_ended(&url, "a").await;
    assert_eq!(
        ids(&b.expired(None, 1).await.expect("a look")),
        [queued[0]],
        "at most the limit, oldest first"
    );
    let orphans = b.expired(None, 10).await.expect("a look");
    assert_eq!(ids(&orphans), [queued[0], queued[1]]);
    assert_eq!(
        orphans.iter().map(|execution| execution.status).collect::<Vec<_>>(),
        [ExecutionStatus::Running, ExecutionStatus::Waiting]
    );
    for id in &queued[2..] {
        assert_eq!(lease(&url, *id).await, (None, false), "a queued one is released");
    }
    assert_eq!(ids(&b.claim("b", 10, LEASE).await.expect("a claim")), queued[2..]);

    // Instance b restarts under its own id: its executions are its own to end, though their lease is live.
    advance(&b, queued[2], ExecutionStatus::Queued, ExecutionStatus::Running).await;
    assert_eq!(lease(&url, queued[2]).await, (Some("b".to_owned()), true));
    assert_eq!(ids(&b.expired(Some("b"), 10).await.expect("a look")), [queued[0], queued[1], queued[2]]);
    assert_eq!(lease(&url, queued[3]).await, (None, false), "its queued one is released");
    assert_eq!(
        ids(&a.expired(None, 10).await.expect("a look")),
        [queued[0], queued[1]],
        "others see the ended only"
    );

    // Released by hand: only by its holder, only while queued.
    let more = queue(&a, &function(&a, "more", None).await, 1).await;
    assert_eq!(ids(&a.claim("a", 10, LEASE).await.expect("a claim")), [queued[3], more[0]]);
    b.release("b", more[0]).await.expect("a release");
    assert_eq!(lease(&url, more[0]).await, (Some("a".to_owned()), true), "b does not hold it");
    a.release("a", more[0]).await.expect("a release");
    assert_eq!(lease(&url, more[0]).await, (None, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_renews_leases_and_reports_cancels_asked_elsewhere() {
    let Some(Instances { url, a, b }) = instances("cluster_heartbeat").await else { return };
    a.join("a").await.expect("a joins");
    b.join("b").await.expect("b joins");
    let queued = queue(&a, &function(&a, "work", None).await, 3).await;
    assert_eq!(ids(&a.claim("a", 2, LEASE).await.expect("a claim")), queued[..2]);
    advance(&a, queued[0], ExecutionStatus::Queued, ExecutionStatus::Running).await;

    leases_ended(&url, "a").await;
    let heartbeat = a.heartbeat("a", &queued[..2], LEASE).await.expect("a heartbeat");
    assert!(heartbeat.cancel_requested.is_empty());
    assert!(b.expired(None, 10).await.expect("a look").is_empty(), "renewed: nothing has ended");
    assert_eq!(lease(&url, queued[1]).await, (Some("a".to_owned()), true), "a claimed one is renewed too");

    b.request_cancel(queued[0], Some("alice")).await.expect("a cancel asked");
    b.request_cancel(queued[1], Some("bob")).await.expect("a queued one is left alone");
    b.request_cancel(queued[2], None).await.expect("an unclaimed one is left alone");
    b.request_cancel(ExecutionId::generate(), None).await.expect("an unknown one is no error");
    let heartbeat = a.heartbeat("a", &queued[..2], LEASE).await.expect("a heartbeat");
    assert_eq!(heartbeat.cancel_requested, [(queued[0], Some("alice".to_owned()))]);
    assert!(b.heartbeat("b", &[], LEASE).await.expect("a heartbeat").cancel_requested.is_empty(), "not b's");

    let instances = b.list_instances(Duration::from_secs(60)).await.expect("the instances");
    let seen: Vec<(&str, u32)> = instances.iter().map(|info| (info.id.as_str(), info.running)).collect();
    assert_eq!(seen, [("a", 2), ("b", 0)]);

    // A claimed execution the instance does not name (its claim's answer was lost) is not renewed: it runs out.
    leases_ended(&url, "a").await;
    a.heartbeat("a", &queued[..1], LEASE).await.expect("a heartbeat");
    assert_eq!(lease(&url, queued[0]).await, (Some("a".to_owned()), true), "named, so renewed");
    assert_eq!(lease(&url, queued[1]).await, (Some("a".to_owned()), false), "not named, so left to run out");
    assert!(instances.iter().all(|info| info.started_at <= info.heartbeat_at));
    testing::plain_connection(&url)
        .await
        .execute("UPDATE instances SET heartbeat_at = now() - interval '1 hour' WHERE id = 'b'", &[])
        .await
        .expect("b falls silent");
    let alive = a.list_instances(Duration::from_secs(60)).await.expect("the instances");
    assert_eq!(alive.iter().map(|info| info.id.as_str()).collect::<Vec<_>>(), ["a"], "b is silent");

    a.leave("a").await.expect("a leaves");
    assert!(b.list_instances(Duration::from_secs(60)).await.expect("the instances").is_empty());
    assert_eq!(lease(&url, queued[1]).await, (None, false), "what a claimed and never started is free");
    assert_eq!(lease(&url, queued[0]).await, (Some("a".to_owned()), true), "what runs keeps its lease");
}

/// A start (`queued → running`) by `instance`.
fn start_by(instance: &str) -> ExecutionUpdate {
    ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running).instance(instance)
}

/// Whether `result` is the refusal of a start that is not the caller's: queued, and left so.
fn is_refused_start<T>(result: &Result<T, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::StatusMismatch {
            expected: ExecutionStatus::Queued,
            actual: ExecutionStatus::Queued
        })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_needs_a_live_lease_of_its_own_or_none() {
    let Some(Instances { url, a, b }) = instances("cluster_start_lease").await else { return };
    let queued = queue(&a, &function(&a, "work", None).await, 3).await;
    assert_eq!(ids(&a.claim("a", 3, LEASE).await.expect("a claim")), queued);
    let last_event = a.last_event_id().await.expect("the last event");

    let started = b.update_execution(queued[0], start_by("b")).await;
    assert!(is_refused_start(&started), "b started what a holds: {started:?}");

    // a's leases run out (it froze, say): it may start none of them any more.
    leases_ended(&url, "a").await;
    let line = NewLogLine { stream: LogStream::System, message: "running".to_owned() };
    let started = a.update_execution_with_logs(queued[1], start_by("a"), vec![line], Vec::new()).await;
    assert!(is_refused_start(&started), "a started under its ended lease: {started:?}");
    assert!(
        a.read_logs(queued[1], 0, 10).await.expect("the log").is_empty(),
        "the refused start wrote no line"
    );

    // b claims them; a, back, cannot start them under b's lease.
    assert_eq!(ids(&b.claim("b", 3, LEASE).await.expect("a claim")), queued);
    let started = a.update_execution(queued[2], start_by("a")).await;
    assert!(is_refused_start(&started), "a started under b's lease: {started:?}");

    assert_eq!(
        a.last_event_id().await.expect("the last event"),
        last_event,
        "no refused start recorded an event"
    );
    for id in &queued {
        let execution = a.get_execution(*id).await.expect("a read").expect("the execution");
        assert_eq!(execution.status, ExecutionStatus::Queued);
    }
    let started = b.update_execution(queued[0], start_by("b")).await.expect("b starts what it holds").value;
    assert_eq!(started.instance.as_deref(), Some("b"));
    assert_eq!(lease(&url, queued[0]).await, (Some("b".to_owned()), true), "the live lease is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_of_an_unclaimed_execution_takes_its_lease_for_recovery() {
    let Some(Instances { url, a, b }) = instances("cluster_start_free").await else { return };
    let id = queue(&a, &function(&a, "work", None).await, 1).await[0];
    a.update_execution(id, start_by("a")).await.expect("a free execution is started");
    assert_eq!(lease(&url, id).await.0.as_deref(), Some("a"), "its owner is recorded");

    // Its owner's heartbeat renews it; when the owner stops renewing, the others find it.
    a.heartbeat("a", &[id], LEASE).await.expect("a heartbeat");
    assert_eq!(lease(&url, id).await, (Some("a".to_owned()), true));
    assert!(b.expired(None, 10).await.expect("a look").is_empty(), "a renews it");
    leases_ended(&url, "a").await;
    assert_eq!(ids(&b.expired(None, 10).await.expect("a look")), [id], "a stopped renewing it");
}

/// A sink that forwards every signal to a channel.
fn listen(store: &PostgresStore) -> mpsc::UnboundedReceiver<Signal> {
    let (sender, receiver) = mpsc::unbounded_channel();
    store.subscribe(Arc::new(move |signal| {
        let _ = sender.send(signal);
    }));
    receiver
}

/// Waits for a signal that `wanted` accepts, passing over others; panics after [`PATIENCE`].
async fn expect_signal(
    receiver: &mut mpsc::UnboundedReceiver<Signal>,
    what: &str,
    wanted: impl Fn(&Signal) -> bool,
) {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(signal) = receiver.recv().await {
            if wanted(&signal) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{what} never arrived");
}

/// Waits until `listener`'s store hears what `sender` signals: its listener connects in the background, and a signal
/// sent before it listens is lost (as the contract allows).
async fn until_listening(sender: &PostgresStore, receiver: &mut mpsc::UnboundedReceiver<Signal>) {
    let probe = ApprovalId::generate();
    let heard = tokio::time::timeout(PATIENCE, async {
        loop {
            sender.announce_decision(probe).await.expect("a probe");
            let wait = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(signal) = receiver.recv().await {
                    if signal == (Signal::Decided { approval_id: probe }) {
                        return;
                    }
                }
            });
            if wait.await.is_ok() {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the listener never heard a probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_of_one_instance_reach_the_other() {
    let Some(Instances { a, b, .. }) = instances("cluster_signals").await else { return };
    let mut heard_by_b = listen(&b);
    until_listening(&a, &mut heard_by_b).await;

    let created =
        a.create_function(Function::create(FunctionSpec::new("work", "demo")).expect("a spec")).await;
    let event_id = created.expect("creating a function").event.id;
    expect_signal(
        &mut heard_by_b,
        "the event of a create",
        |signal| matches!(signal, Signal::Events { last_id } if *last_id >= event_id),
    )
    .await;

    let function = a.get_function(&dashboard_store::FunctionKey::Name("work".into())).await;
    let function = function.expect("a read").expect("the function");
    let running = queue(&a, &function, 1).await[0];
    advance(&a, running, ExecutionStatus::Queued, ExecutionStatus::Running).await;
    a.request_cancel(running, Some("alice smith")).await.expect("a cancel asked");
    expect_signal(&mut heard_by_b, "a cancel", |signal| {
        *signal == Signal::Cancel { execution_id: running, by: Some("alice smith".to_owned()) }
    })
    .await;

    let approval_id = ApprovalId::generate();
    a.announce_decision(approval_id).await.expect("a decision announced");
    expect_signal(&mut heard_by_b, "a decision", |signal| *signal == Signal::Decided { approval_id }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_its_connection_is_killed() {
    let Some(url) = testing::database("cluster_listener").await else { return };
    let store = testing::store(&url).await;
    let mut heard = listen(&store);
    until_listening(&store, &mut heard).await;

    let killed: i64 = testing::plain_connection(&url)
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'dashboard-listener' AND datname = current_database()) AS killed",
            &[],
        )
        .await
        .expect("killing the listener's connection")
        .get(0);
    assert_eq!(killed, 1, "one listener on this database");

    expect_signal(&mut heard, "Reconnected", |signal| *signal == Signal::Reconnected).await;
    let approval_id = ApprovalId::generate();
    store.announce_decision(approval_id).await.expect("a decision announced");
    expect_signal(&mut heard, "a decision after the reconnect", |signal| {
        *signal == Signal::Decided { approval_id }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_shared_kept_at_100_per_token_and_expire() {
    let Some(Instances { url, a, b }) = instances("cluster_logins").await else { return };
    let login = |n: usize, token: &str, expires_in: time::Duration| LoginRecord {
        id_hash: format!("{token}-{n:03}"),
        token_name: token.to_owned(),
        csrf: format!("csrf-{n}"),
        expires_at: now() + expires_in,
    };
    let hour = time::Duration::hours(1);

    let first = login(0, "alice", hour);
    a.create_login(&first).await.expect("a login");
    assert_eq!(b.get_login(&first.id_hash).await.expect("a read"), Some(first.clone()), "seen by the other");
    assert_eq!(b.get_login("nobody").await.expect("a read"), None);

    let stale = login(0, "bob", -hour);
    a.create_login(&stale).await.expect("an expired login");
    assert_eq!(b.get_login(&stale.id_hash).await.expect("a read"), None, "an expired login is no login");

    for n in 1..=100 {
        a.create_login(&login(n, "alice", hour)).await.expect("a login");
    }
    assert_eq!(b.get_login(&first.id_hash).await.expect("a read"), None, "the oldest made room");
    assert!(b.get_login("alice-001").await.expect("a read").is_some());
    assert!(b.get_login("alice-100").await.expect("a read").is_some());
    let rows: i64 = testing::plain_connection(&url)
        .await
        .query_one("SELECT count(*) FROM logins", &[])
        .await
        .expect("a count")
        .get(0);
    assert_eq!(rows, 100, "alice's 100, and bob's expired one swept out");

    b.delete_login("alice-100").await.expect("a logout");
    assert_eq!(a.get_login("alice-100").await.expect("a read"), None);
    b.delete_login("alice-100").await.expect("a second logout is no error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_secret_is_made_once_for_every_instance() {
    let Some(Instances { url, a, b }) = instances("cluster_secret").await else { return };
    let (from_a, from_b) = tokio::join!(a.shared_secret(), b.shared_secret());
    let (from_a, from_b) = (from_a.expect("a's secret"), from_b.expect("b's secret"));
    assert_eq!(from_a, from_b);
    assert_ne!(from_a, [0; 32]);
    assert_eq!(a.shared_secret().await.expect("a's secret again"), from_a);
    let c = testing::store(&url).await;
    assert_eq!(c.shared_secret().await.expect("a third instance's secret"), from_a);
}
