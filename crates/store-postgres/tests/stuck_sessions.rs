//! What another database session can do to the store, and what the data can: a session that holds the event
//! counter's row (an instance frozen in the middle of a write) makes writes and the health probe answer `Unavailable`
//! within the lock timeout — never a hang — and they work again once it lets go; a claim never waits for the claim
//! lock another holds; and a grant key of any length (a whole command line) is stored and found. Each test skips,
//! saying why, without a test server (see `dashboard_store_postgres::testing`).

use std::time::Duration;

use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, ExecutionId, ExecutionStatus,
    Function, FunctionSpec, now,
};
use dashboard_store::{Cluster, DashboardStore, ExecutionUpdate, NewExecution, StoreError};
use dashboard_store_postgres::{PostgresStore, testing};
use serde_json::json;

/// The key of the store's claim lock (`CLAIM_LOCK` in src/cluster.rs, "dashclam" in ASCII).
const CLAIM_LOCK: i64 = 0x6461_7368_636c_616d;

/// A lease that outlives every test.
const LEASE: Duration = Duration::from_secs(300);

/// How long an answer may take before the test calls it a hang: far above the store's 5 s lock timeout, so it
/// measures nothing but that an answer comes.
const HANG: Duration = Duration::from_secs(60);

async fn function(store: &PostgresStore, name: &str) -> Function {
    let function = Function::create(FunctionSpec::new(name, "demo")).expect("a valid spec");
    store.create_function(function).await.expect("a new function").value
}

/// The answer of `operation`, failing the test if none comes within [`HANG`].
async fn answer<T>(what: &str, operation: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, operation).await.unwrap_or_else(|_| panic!("{what} hung instead of answering"))
}

/// The message of an `Unavailable`, failing the test on anything else.
fn unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable { message, .. }) => message,
        other => panic!("{what} must be Unavailable, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_event_counter_makes_writes_and_the_probe_unavailable_until_it_is_let_go() {
    let Some(url) = testing::database("store_stuck_counter").await else { return };
    let store = testing::store(&url).await;
    let alpha = function(&store, "alpha").await;
    let holder = testing::plain_connection(&url).await;
    holder
        .batch_execute("BEGIN; SELECT last_id FROM event_counter FOR UPDATE")
        .await
        .expect("the counter's row held, and the transaction left open");

    let created = answer("a write", store.create_execution(NewExecution::of(&alpha, json!({})))).await;
    let message = unavailable("a write behind a held counter", created);
    assert!(message.contains("event_counter") && message.contains("lock timeout"), "{message}");
    let message = unavailable("the probe of a held counter", answer("the probe", store.ping()).await);
    assert!(message.contains("event_counter"), "{message}");
    assert_eq!(
        store.count_by_status().await.expect("reads go on").total(),
        0,
        "the refused write left nothing"
    );

    holder.batch_execute("ROLLBACK").await.expect("the counter let go");
    store.create_execution(NewExecution::of(&alpha, json!({}))).await.expect("writes go through again");
    store.ping().await.expect("the probe passes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_while_another_holds_the_claim_lock_claims_nothing_rather_than_wait() {
    let Some(url) = testing::database("store_stuck_claim").await else { return };
    let store = testing::store(&url).await;
    let alpha = function(&store, "alpha").await;
    let mut queued = Vec::new();
    for _ in 0..2 {
        queued.push(
            store.create_execution(NewExecution::of(&alpha, json!({}))).await.expect("queued").value.id,
        );
    }
    let holder = testing::plain_connection(&url).await;
    holder.execute("SELECT pg_advisory_lock($1)", &[&CLAIM_LOCK]).await.expect("the claim lock held");

    let claimed = answer("a claim", store.claim("a", 5, LEASE)).await.expect("a claim");
    assert!(claimed.is_empty(), "claimed under another's lock: {claimed:?}");

    holder.execute("SELECT pg_advisory_unlock($1)", &[&CLAIM_LOCK]).await.expect("the claim lock let go");
    let claimed = store.claim("a", 5, LEASE).await.expect("a claim");
    assert_eq!(claimed.iter().map(|execution| execution.id).collect::<Vec<ExecutionId>>(), queued);
}

/// About 10 kB of a command line that compression cannot shrink under a btree's 2.7 kB limit: random hex digits.
fn long_command() -> String {
    let mut random = [0u8; 5_000];
    getrandom::fill(&mut random).expect("random bytes");
    let digits: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("echo {digits}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_for_the_session_of_a_10_kb_command_is_stored_and_found() {
    let Some(url) = testing::database("store_long_grant").await else { return };
    let store = testing::store(&url).await;
    let alpha = function(&store, "alpha").await;
    let execution = store.create_execution(NewExecution::of(&alpha, json!({}))).await.expect("queued").value;
    let start = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
    store.update_execution(execution.id, start).await.expect("running");

    let command = long_command();
    assert!(command.len() > 10_000, "{} bytes", command.len());
    let requested_at = now();
    let asked = Approval {
        id: ApprovalId::generate(),
        execution_id: execution.id,
        function: execution.function.clone(),
        backend: execution.backend.clone(),
        session_id: Some("thread-1".to_owned()),
        kind: ApprovalKind::Command,
        summary: command.clone(),
        details: json!({ "command": command }),
        item_id: None,
        grant_key: Some(command.clone()),
        status: ApprovalStatus::Pending,
        for_session: false,
        requested_at,
        expires_at: requested_at + Duration::from_secs(3600),
        decided_by: None,
        decided_at: None,
        note: None,
        answers: None,
    };
    store.create_approval(asked.clone(), None).await.expect("the approval asked");
    let decision =
        ApprovalDecision { for_session: true, ..ApprovalDecision::new(ApprovalStatus::Approved, "alice") };
    let decided = store.decide_approval(asked.id, decision, None).await.expect("approved for the session");

    let found = store.session_grant("thread-1", ApprovalKind::Command, &command).await.expect("a lookup");
    assert_eq!(found, Some(decided.approval), "the grant is found by its whole key");
    let shorter = &command[..command.len() - 1];
    let found = store.session_grant("thread-1", ApprovalKind::Command, shorter).await.expect("a lookup");
    assert_eq!(found, None, "another key finds nothing");
}
