//! Approvals through the engine, on the demo backend: the function's policy (`auto`, `deny`, `ask`), an execution
//! `waiting` while a person decides, what the agent receives for each decision, expiry, a cancel or timeout while it
//! waits, grants for the session in later turns, and who may decide.

use std::sync::Arc;
use std::time::Duration;

use dashboard_backend_api::{Principal, Scope};
use dashboard_backends::DemoBackend;
use dashboard_core::{
    Approval, ApprovalPolicy, ApprovalStatus, Decision, EventKind, ExecutionId, ExecutionStatus,
    FunctionSpec, ItemBody, ItemStatus,
};
use dashboard_engine::{ContinueRequest, Dashboard, DecideRequest, EngineError, TriggerRequest};
use dashboard_store::{ApprovalQuery, FunctionKey, MemoryStore};
use serde_json::{Value, json};

/// How long anything may take on a loaded machine before the test gives up on it (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

fn dashboard() -> Dashboard {
    Dashboard::builder().store(Arc::new(MemoryStore::default())).backend("demo", DemoBackend).build()
}

/// Creates function `f` with `policy` (and the approval timeout, when given) and triggers it with `input`.
async fn trigger(
    dashboard: &Dashboard,
    policy: ApprovalPolicy,
    timeout: Option<u64>,
    input: Value,
) -> ExecutionId {
    let principal = Principal::anonymous();
    let spec = FunctionSpec {
        approval_policy: policy,
        approval_timeout_secs: timeout,
        ..FunctionSpec::new("f", "demo")
    };
    if dashboard.store().get_function(&FunctionKey::parse("f")).await.expect("read").is_none() {
        dashboard.create_function(&principal, spec).await.expect("a function");
    }
    let request = TriggerRequest { function: "f".into(), input, backend: None, idempotency_key: None };
    dashboard.trigger(&principal, request).await.expect("the trigger is accepted").execution.id
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

async fn status(dashboard: &Dashboard, id: ExecutionId) -> ExecutionStatus {
    dashboard.store().get_execution(id).await.expect("read").expect("it exists").status
}

async fn wait_until_terminal(dashboard: &Dashboard, id: ExecutionId) -> ExecutionStatus {
    wait_for("the end of the run", async || {
        Some(status(dashboard, id).await).filter(|status| status.is_terminal())
    })
    .await
}

/// The execution's pending approval, once it is `waiting` for it.
async fn pending(dashboard: &Dashboard, id: ExecutionId) -> Approval {
    wait_for("a pending approval", async || {
        let query = ApprovalQuery { pending_only: true, execution: Some(id), limit: 10 };
        let found = dashboard.store().list_approvals(&query).await.expect("read");
        let waits = status(dashboard, id).await == ExecutionStatus::Waiting;
        found.into_iter().next().filter(|_| waits)
    })
    .await
}

fn decide(decision: Decision) -> DecideRequest {
    DecideRequest { decision, note: None, answers: None }
}

async fn output(dashboard: &Dashboard, id: ExecutionId) -> Value {
    dashboard.store().get_execution(id).await.expect("read").expect("it exists").output.unwrap_or_default()
}

async fn event_kinds(dashboard: &Dashboard, id: ExecutionId) -> Vec<String> {
    let events = dashboard.store().list_events(0, 1000).await.expect("read");
    events
        .into_iter()
        .filter(|event| event.execution_id == Some(id))
        .map(|event| event.kind.to_string())
        .collect()
}

async fn logs(dashboard: &Dashboard, id: ExecutionId) -> Vec<String> {
    dashboard
        .store()
        .read_logs(id, 0, 1000)
        .await
        .expect("read")
        .into_iter()
        .map(|line| line.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ask_the_execution_waits_until_a_person_approves_and_the_agent_hears_who() {
    let dashboard = dashboard();
    let id =
        trigger(&dashboard, ApprovalPolicy::Ask, None, json!({"steps": 0, "approvals": 1, "items": true}))
            .await;
    let approval = pending(&dashboard, id).await;
    assert_eq!((approval.summary.as_str(), approval.kind.as_str()), ("demo --approved-step 1", "command"));
    assert_eq!(approval.details["cwd"], "/demo");
    assert_eq!(dashboard.store().count_pending_approvals().await.expect("read"), 1);

    let alice = Principal::token("alice", Scope::Trigger, None);
    let decided =
        dashboard.decide_approval(&alice, approval.id, decide(Decision::Approve)).await.expect("decided");
    assert_eq!((decided.status, decided.decided_by.as_deref()), (ApprovalStatus::Approved, Some("alice")));
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    assert_eq!(output(&dashboard, id).await["decisions"], json!(["approve"]));
    assert!(logs(&dashboard, id).await.contains(&"approval 1: approve by alice".to_owned()));
    assert_eq!(
        event_kinds(&dashboard, id).await,
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
    let execution = dashboard.store().get_execution(id).await.expect("read").expect("it exists");
    assert!(execution.started_at.is_some_and(|started| started <= approval.requested_at), "start time kept");

    // The transcript: the approval's item, approved, and the command it was about, run.
    let items = dashboard.store().list_items(id, 0, 100).await.expect("read");
    let approval_item =
        items.iter().find(|item| matches!(item.body, ItemBody::Approval { .. })).expect("an item");
    assert_eq!(approval_item.status, ItemStatus::Completed);
    let command = items.iter().find(|item| item.id == "approval-step-1").expect("the command");
    assert!(matches!(command.body, ItemBody::Command { exit_code: Some(0), .. }), "{command:?}");
    assert!(command.seq < approval_item.seq, "the command the agent asks about comes first: {items:?}");

    let again = dashboard.decide_approval(&alice, approval.id, decide(Decision::Decline)).await;
    assert!(
        matches!(again, Err(EngineError::ApprovalDecided { status: ApprovalStatus::Approved, .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_is_what_the_agent_receives_and_the_run_goes_on() {
    let dashboard = dashboard();
    let id =
        trigger(&dashboard, ApprovalPolicy::Ask, None, json!({"steps": 0, "approvals": 2, "items": true}))
            .await;
    let first = pending(&dashboard, id).await;
    let note =
        DecideRequest { decision: Decision::Decline, note: Some("not on a Friday".into()), answers: None };
    dashboard.decide_approval(&Principal::anonymous(), first.id, note).await.expect("declined");
    let second = wait_for("the second approval", async || {
        Some(pending(&dashboard, id).await).filter(|approval| approval.id != first.id)
    })
    .await;
    dashboard
        .decide_approval(&Principal::anonymous(), second.id, decide(Decision::Approve))
        .await
        .expect("approved");
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    assert_eq!(output(&dashboard, id).await["decisions"], json!(["decline", "approve"]));
    assert!(
        logs(&dashboard, id).await.contains(&"approval 1: decline by anonymous (not on a Friday)".to_owned())
    );
    let items = dashboard.store().list_items(id, 0, 100).await.expect("read");
    let declined = items.iter().find(|item| item.id == "approval-step-1").expect("the command");
    assert_eq!(declined.status, ItemStatus::Declined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_approves_and_deny_declines_at_once_and_both_are_recorded() {
    for (policy, decision, status) in [
        (ApprovalPolicy::Auto, "approve", ApprovalStatus::Approved),
        (ApprovalPolicy::Deny, "decline", ApprovalStatus::Declined),
    ] {
        let dashboard = dashboard();
        let id = trigger(&dashboard, policy, None, json!({"steps": 0, "approvals": 1})).await;
        assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
        assert_eq!(output(&dashboard, id).await["decisions"], json!([decision]));
        let query = ApprovalQuery { pending_only: false, execution: Some(id), limit: 10 };
        let recorded = dashboard.store().list_approvals(&query).await.expect("read");
        assert_eq!(recorded.len(), 1, "{policy}");
        assert_eq!((recorded[0].status, recorded[0].decided_by.as_deref()), (status, Some("policy")));
        let kinds = event_kinds(&dashboard, id).await;
        assert!(!kinds.iter().any(|kind| kind == "execution.waiting"), "{policy} never waits: {kinds:?}");
        assert!(kinds.iter().any(|kind| kind == "approval.decided"), "{kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_nobody_decides_expires_as_a_decline_never_an_interrupt() {
    let dashboard = dashboard();
    let id = trigger(&dashboard, ApprovalPolicy::Ask, Some(1), json!({"steps": 0, "approvals": 1})).await;
    let approval = pending(&dashboard, id).await;
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded, "the run goes on");
    assert_eq!(output(&dashboard, id).await["decisions"], json!(["decline"]));
    let expired = dashboard.store().get_approval(approval.id).await.expect("read").expect("it exists");
    assert_eq!((expired.status, expired.decided_by.as_deref()), (ApprovalStatus::Expired, Some("dashboard")));
    assert_eq!(expired.note.as_deref(), Some("nobody decided within 1 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_waiting_cancels_the_run_and_expires_its_approval() {
    let dashboard = dashboard();
    let id =
        trigger(&dashboard, ApprovalPolicy::Ask, None, json!({"steps": 0, "approvals": 1, "items": true}))
            .await;
    let approval = pending(&dashboard, id).await;
    dashboard.cancel(&Principal::anonymous(), id).await.expect("cancelled");
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Cancelled);
    let expired = wait_for("the approval to expire", async || {
        let stored = dashboard.store().get_approval(approval.id).await.expect("read").expect("it exists");
        (!stored.is_pending()).then_some(stored)
    })
    .await;
    assert_eq!(expired.status, ApprovalStatus::Expired);
    let items = dashboard.store().list_items(id, 0, 100).await.expect("read");
    assert!(items.iter().all(|item| !item.status.is_open()), "every item closed: {items:?}");
    let command = items.iter().find(|item| item.id == "approval-step-1").expect("the command");
    assert_eq!(command.status, ItemStatus::Declined);
    let kinds = event_kinds(&dashboard, id).await;
    assert!(!kinds.iter().any(|kind| kind == "execution.resumed"), "a cancel never resumes: {kinds:?}");
    let late =
        dashboard.decide_approval(&Principal::anonymous(), approval.id, decide(Decision::Approve)).await;
    assert!(matches!(late, Err(EngineError::ApprovalDecided { .. })), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_while_waiting_times_the_run_out() {
    let dashboard = dashboard();
    let principal = Principal::anonymous();
    let spec = FunctionSpec {
        approval_policy: ApprovalPolicy::Ask,
        timeout_secs: Some(1),
        ..FunctionSpec::new("slow", "demo")
    };
    dashboard.create_function(&principal, spec).await.expect("created");
    let input = json!({"steps": 0, "approvals": 1});
    let request = TriggerRequest { function: "slow".into(), input, backend: None, idempotency_key: None };
    let id = dashboard.trigger(&principal, request).await.expect("triggered").execution.id;
    pending(&dashboard, id).await;
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_for_session_answers_the_same_request_in_a_later_turn() {
    let dashboard = dashboard();
    let first = trigger(&dashboard, ApprovalPolicy::Ask, None, json!({"steps": 0, "approvals": 1})).await;
    let approval = pending(&dashboard, first).await;
    let anyone = Principal::anonymous();
    dashboard
        .decide_approval(&anyone, approval.id, decide(Decision::ApproveForSession))
        .await
        .expect("granted");
    assert_eq!(wait_until_terminal(&dashboard, first).await, ExecutionStatus::Succeeded);
    assert_eq!(output(&dashboard, first).await["decisions"], json!(["approve_for_session"]));

    let next = ContinueRequest { prompt: "again".into(), input: None };
    let second = dashboard.continue_session(&anyone, first, next).await.expect("continued").id;
    assert_eq!(wait_until_terminal(&dashboard, second).await, ExecutionStatus::Succeeded, "never waits");
    let query = ApprovalQuery { pending_only: false, execution: Some(second), limit: 10 };
    let recorded = dashboard.store().list_approvals(&query).await.expect("read");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].decided_by.as_deref(), Some("session grant"));
    assert!(
        logs(&dashboard, second)
            .await
            .iter()
            .any(|line| line.starts_with("approval 1: approve by session grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deciding_needs_trigger_on_the_backend_and_a_question_needs_answers() {
    let dashboard = dashboard();
    let input = json!({"steps": 0, "approvals": 1, "approval_kind": "question"});
    let id = trigger(&dashboard, ApprovalPolicy::Ask, None, input).await;
    let approval = pending(&dashboard, id).await;
    let reader = Principal::token("reader", Scope::Read, None);
    let refused = dashboard.decide_approval(&reader, approval.id, decide(Decision::Approve)).await;
    assert!(matches!(refused, Err(EngineError::Forbidden { .. })), "{refused:?}");
    let elsewhere = Principal::token("elsewhere", Scope::Trigger, Some(vec!["other".into()]));
    let refused = dashboard.decide_approval(&elsewhere, approval.id, decide(Decision::Approve)).await;
    assert!(matches!(refused, Err(EngineError::Forbidden { .. })), "{refused:?}");
    let unanswered =
        dashboard.decide_approval(&Principal::anonymous(), approval.id, decide(Decision::Approve)).await;
    assert!(
        matches!(unanswered, Err(EngineError::Invalid(ref error)) if error.to_string().contains("answers"))
    );
    let unknown = dashboard
        .decide_approval(
            &Principal::anonymous(),
            dashboard_core::ApprovalId::generate(),
            decide(Decision::Approve),
        )
        .await;
    assert!(matches!(unknown, Err(EngineError::NotFound { entity: "approval", .. })), "{unknown:?}");

    let answers = Some(json!({"colour": ["blue"]}));
    let answered = DecideRequest { decision: Decision::Approve, note: None, answers };
    dashboard.decide_approval(&Principal::anonymous(), approval.id, answered).await.expect("answered");
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    let said = logs(&dashboard, id).await;
    assert!(said.iter().any(|line| line.ends_with(r#"answers {"colour":["blue"]}"#)), "{said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fails_a_waiting_execution_and_expires_its_approval() {
    let store = Arc::new(MemoryStore::default());
    let first = Dashboard::builder().store(store.clone()).backend("demo", DemoBackend).build();
    let id = trigger(&first, ApprovalPolicy::Ask, None, json!({"steps": 0, "approvals": 1})).await;
    let approval = pending(&first, id).await;
    // A second engine on the same store stands for the next start after a crash: the first one's run is unknown to it.
    let second = Dashboard::builder().store(store).backend("demo", DemoBackend).build();
    let report = second.recover().await.expect("recovered");
    assert_eq!(report.interrupted, 1);
    assert_eq!(status(&second, id).await, ExecutionStatus::Failed);
    let expired = second.store().get_approval(approval.id).await.expect("read").expect("it exists");
    assert_eq!(expired.status, ApprovalStatus::Expired);
    let kinds = event_kinds(&second, id).await;
    assert_eq!(kinds.iter().filter(|kind| *kind == EventKind::ApprovalDecided.as_str()).count(), 1);
    first.cancel(&Principal::anonymous(), id).await.ok();
}

/// A backend whose agent never asks (as Codex with `approval = "never"`): it refuses `ask` and `deny`.
struct NeverAsks;

#[async_trait::async_trait]
impl dashboard_backend_api::Backend for NeverAsks {
    fn kind(&self) -> &'static str {
        "never-asks"
    }

    fn refuses_approval_policy(&self, policy: ApprovalPolicy) -> Option<String> {
        (policy != ApprovalPolicy::Auto)
            .then(|| format!("this agent never asks, so {policy:?} would never apply"))
    }

    async fn check(&self) -> dashboard_backend_api::Readiness {
        dashboard_backend_api::Readiness::ready("never asks")
    }

    async fn trigger(
        &self,
        _run: dashboard_backend_api::RunContext,
    ) -> Result<dashboard_backend_api::RunOutcome, dashboard_backend_api::BackendError> {
        Ok(dashboard_backend_api::RunOutcome::Succeeded { output: json!(null), usage: None })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_the_backend_cannot_apply_is_refused_at_create_and_at_start() {
    let dashboard = Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("demo", DemoBackend)
        .backend("never", NeverAsks)
        .build();
    let anyone = Principal::anonymous();
    let spec = FunctionSpec { approval_policy: ApprovalPolicy::Ask, ..FunctionSpec::new("f", "never") };
    let refused = dashboard.create_function(&anyone, spec).await;
    assert!(
        matches!(&refused, Err(EngineError::Invalid(dashboard_core::CoreError::InvalidField { field, .. })) if field == "approval_policy"),
        "{refused:?}"
    );

    // A trigger that sends an `ask` function to that backend fails at start, saying why.
    let id = trigger(&dashboard, ApprovalPolicy::Ask, None, json!({})).await;
    wait_until_terminal(&dashboard, id).await;
    let request = TriggerRequest {
        function: "f".into(),
        input: json!({}),
        backend: Some("never".into()),
        idempotency_key: None,
    };
    let id = dashboard.trigger(&anyone, request).await.expect("accepted").execution.id;
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Failed);
    let error = dashboard.store().get_execution(id).await.expect("read").expect("it exists").error;
    assert_eq!(error.as_deref(), Some("could not start: this agent never asks, so Ask would never apply"));
}

/// A backend whose agent asks, then withdraws its request after 200 ms (as Codex does when a turn moves on), and
/// finishes.
struct Withdraws;

#[async_trait::async_trait]
impl dashboard_backend_api::Backend for Withdraws {
    fn kind(&self) -> &'static str {
        "withdraws"
    }

    async fn check(&self) -> dashboard_backend_api::Readiness {
        dashboard_backend_api::Readiness::ready("withdraws")
    }

    async fn trigger(
        &self,
        run: dashboard_backend_api::RunContext,
    ) -> Result<dashboard_backend_api::RunOutcome, dashboard_backend_api::BackendError> {
        let request = dashboard_backend_api::ApprovalRequest::new(
            dashboard_core::ApprovalKind::Command,
            "make",
            json!({"command": "make"}),
        );
        let answered = tokio::time::timeout(Duration::from_millis(200), run.ask_approval(request)).await;
        Ok(dashboard_backend_api::RunOutcome::Succeeded { output: json!(answered.is_ok()), usage: None })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_agent_withdraws_expires_and_the_run_goes_on() {
    let dashboard =
        Dashboard::builder().store(Arc::new(MemoryStore::default())).backend("withdraws", Withdraws).build();
    let anyone = Principal::anonymous();
    let spec = FunctionSpec { approval_policy: ApprovalPolicy::Ask, ..FunctionSpec::new("f", "withdraws") };
    dashboard.create_function(&anyone, spec).await.expect("created");
    let request =
        TriggerRequest { function: "f".into(), input: json!({}), backend: None, idempotency_key: None };
    let id = dashboard.trigger(&anyone, request).await.expect("accepted").execution.id;
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    assert_eq!(output(&dashboard, id).await, json!(false), "the agent stopped waiting");
    let query = ApprovalQuery { pending_only: false, execution: Some(id), limit: 10 };
    let approvals = dashboard.store().list_approvals(&query).await.expect("read");
    assert_eq!(approvals.len(), 1);
    assert_eq!(
        (approvals[0].status, approvals[0].note.as_deref()),
        (ApprovalStatus::Expired, Some("the agent withdrew its request"))
    );
    assert_eq!(
        event_kinds(&dashboard, id).await,
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
async fn an_agent_that_asks_through_the_dashboard_gets_the_same_gate_as_its_backend() {
    let dashboard = dashboard();
    let id = trigger(&dashboard, ApprovalPolicy::Ask, None, json!({"steps": 0, "hang": true})).await;
    wait_for("the run to start", async || {
        (status(&dashboard, id).await == ExecutionStatus::Running).then_some(())
    })
    .await;
    let request = dashboard_backend_api::ApprovalRequest::new(
        dashboard_core::ApprovalKind::Command,
        "git push",
        json!({"command": "git push"}),
    );
    let asking = tokio::spawn({
        let dashboard = dashboard.clone();
        async move { dashboard.ask_approval(id, request).await }
    });
    let approval = pending(&dashboard, id).await;
    assert_eq!(approval.summary, "git push");
    let bob = Principal::token("bob", Scope::Trigger, None);
    dashboard.decide_approval(&bob, approval.id, decide(Decision::Approve)).await.expect("decided");
    let answer = asking.await.expect("no panic").expect("answered");
    assert_eq!((answer.decision, answer.decided_by.as_str()), (Decision::Approve, "bob"));
    assert_eq!(status(&dashboard, id).await, ExecutionStatus::Running);

    dashboard.cancel(&Principal::anonymous(), id).await.expect("cancelled");
    wait_until_terminal(&dashboard, id).await;
    let request =
        dashboard_backend_api::ApprovalRequest::new(dashboard_core::ApprovalKind::Command, "late", json!({}));
    let late = dashboard.ask_approval(id, request).await;
    assert!(
        matches!(late, Err(EngineError::StatusChanged { actual: ExecutionStatus::Cancelled })),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_stored_but_never_handed_over_reaches_the_agent_at_the_expiry() {
    let dashboard = dashboard();
    let id = trigger(&dashboard, ApprovalPolicy::Ask, Some(1), json!({"steps": 0, "approvals": 1})).await;
    let approval = pending(&dashboard, id).await;
    // Stored behind the engine's back, as when the request that stored a decision was dropped before it could tell
    // the waiting agent.
    let decision = dashboard_core::ApprovalDecision::new(ApprovalStatus::Approved, "carol");
    dashboard.store_for_seeding().decide_approval(approval.id, decision, None).await.expect("stored");
    assert_eq!(wait_until_terminal(&dashboard, id).await, ExecutionStatus::Succeeded);
    assert_eq!(
        output(&dashboard, id).await["decisions"],
        json!(["approve"]),
        "the stored decision, not a decline"
    );
    assert!(logs(&dashboard, id).await.contains(&"approval 1: approve by carol".to_owned()));
}
