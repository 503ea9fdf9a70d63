//! Approvals: the gate each run's backend asks through (the function's policy, grants for the session, a person while
//! the execution is `waiting`, expiry), decisions from the API, and the approvals a run leaves pending when it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Action, ApprovalAnswer, ApprovalGate, ApprovalRequest, Principal};
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalPolicy, ApprovalStatus, CoreError,
    Decision, EventKind, ExecutionId, ItemBody, ItemStatus, MAX_APPROVAL_DETAILS_BYTES,
    MAX_APPROVAL_NOTE_CHARS, NewItem, approval_summary, now,
};
use dashboard_store::{ApprovalChange, ApprovalQuery};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::inner::Inner;
use crate::json_size::json_len_up_to;
use crate::run::RunHandle;
use crate::{BusMessage, Dashboard, EngineError};

/// Who decided, when it was not a person.
pub const DECIDED_BY_POLICY: &str = "policy";
/// Who decided when an earlier `approve_for_session` of the same session answered.
pub const DECIDED_BY_SESSION_GRANT: &str = "session grant";
/// Who decided when nobody did in time, or the run ended first.
pub const DECIDED_BY_DASHBOARD: &str = "dashboard";

/// How many pending approvals of one execution are expired in one read when its run ends.
const EXPIRE_PAGE: usize = 100;

/// What a person decides on an approval (`POST /api/approvals/{id}`).
#[derive(Clone, Debug, PartialEq)]
pub struct DecideRequest {
    /// Approve, approve for the session, or decline.
    pub decision: Decision,
    /// A note for the record (and for the agent where it can hear it).
    pub note: Option<String>,
    /// A question's answers: `{"<question id>": ["<answer>", …]}`; required for a `question`, refused otherwise.
    pub answers: Option<Value>,
}

/// The transcript item of an approval: its id in the execution's transcript.
pub fn approval_item_id(id: ApprovalId) -> String {
    format!("approval-{id}")
}

/// The approval's own transcript item, in the status the approval's status gives it.
fn approval_item(approval: &Approval) -> NewItem {
    let status = match approval.status {
        ApprovalStatus::Pending => ItemStatus::InProgress,
        ApprovalStatus::Approved => ItemStatus::Completed,
        ApprovalStatus::Declined | ApprovalStatus::Expired => ItemStatus::Declined,
    };
    NewItem {
        id: approval_item_id(approval.id),
        status,
        body: ItemBody::Approval { approval_id: approval.id.to_string() },
    }
}

/// A waiting backend's side of a pending approval: where its answer goes, and whose it is.
#[derive(Debug)]
pub(crate) struct Waiter {
    execution_id: ExecutionId,
    answer: oneshot::Sender<ApprovalAnswer>,
}

impl Dashboard {
    /// Decides a pending approval for `principal`, who needs `trigger` on the execution's backend; the decision is
    /// recorded with the principal's name as `decided_by`, and the waiting agent receives it at once. When it was the
    /// execution's last pending approval, the execution runs again (`execution.resumed`).
    ///
    /// Errors: [`EngineError::NotFound`] (entity `approval`); [`EngineError::Forbidden`];
    /// [`EngineError::ApprovalDecided`] when it was decided or expired already; [`EngineError::Invalid`] naming
    /// `answers` (a question without answers, answers that are not lists of text, answers to anything but a
    /// question) or `note` (longer than 2,000 characters).
    pub async fn decide_approval(
        &self,
        principal: &Principal,
        id: ApprovalId,
        request: DecideRequest,
    ) -> Result<Approval, EngineError> {
        let inner = &self.inner;
        let approval =
            inner.store.get_approval(id).await?.ok_or_else(|| EngineError::approval_not_found(id))?;
        inner.backends.authorize(principal, &approval.backend, Action::Trigger).map_err(|error| {
            EngineError::Forbidden { backend: approval.backend.clone(), reason: error.to_string() }
        })?;
        if !approval.is_pending() {
            return Err(EngineError::ApprovalDecided { id, status: approval.status });
        }
        check_request(&approval, &request)?;
        let decided_by = principal.name.clone().unwrap_or_else(|| "anonymous".to_owned());
        let decision = ApprovalDecision {
            status: request.decision.status(),
            for_session: request.decision == Decision::ApproveForSession,
            decided_by: Some(decided_by.clone()),
            note: request.note.clone(),
            answers: request.answers.clone(),
            session_id: None,
        };
        // One task stores the decision and hands it to the waiting agent, so that a request dropped half-way (a
        // closed tab) never leaves a stored decision untold.
        let answer = ApprovalAnswer {
            decision: request.decision,
            decided_by,
            note: request.note,
            answers: request.answers,
        };
        let inner = Arc::clone(inner);
        let decided = self.inner.runtime.spawn(async move {
            let change = inner.decide(&approval, decision).await?;
            if !inner.answer(id, answer) {
                // No backend waits for it here: in a cluster, the instance whose run waits hears of it.
                inner.announce_decision(id).await;
            }
            Ok::<_, EngineError>(change.approval)
        });
        decided.await.map_err(|error| {
            EngineError::StoreUnavailable(dashboard_store::StoreError::Unavailable {
                message: format!("the decision's task failed: {error}"),
                source: None,
            })
        })?
    }
}

impl Dashboard {
    /// Asks for a decision for a running execution's agent that asks the dashboard itself (Claude Code's permission
    /// prompt tool, served by the dashboard and authorized by the execution's callback token), and waits for it, as
    /// the backend's own `run.ask_approval` does: the function's policy, a grant for the session, or a person.
    ///
    /// Errors: [`EngineError::NotFound`] for an unknown execution; [`EngineError::StatusChanged`] when it is not
    /// running on this engine (queued, finished, or run by another instance).
    pub async fn ask_approval(
        &self,
        id: ExecutionId,
        request: ApprovalRequest,
    ) -> Result<ApprovalAnswer, EngineError> {
        let gate = self
            .inner
            .run_handle(id)
            .and_then(|handle| handle.gate.lock().expect("gate lock poisoned").clone());
        let Some(gate) = gate else {
            let execution = self.execution(id).await?;
            return Err(EngineError::StatusChanged { actual: execution.status });
        };
        Ok(gate.ask(request).await)
    }
}

/// Checks a decision's note and answers against the approval it decides.
fn check_request(approval: &Approval, request: &DecideRequest) -> Result<(), CoreError> {
    if request.note.as_ref().is_some_and(|note| note.chars().count() > MAX_APPROVAL_NOTE_CHARS) {
        return Err(CoreError::invalid_field(
            "note",
            format!("is longer than {MAX_APPROVAL_NOTE_CHARS} characters"),
        ));
    }
    let is_question = approval.kind == ApprovalKind::Question;
    match &request.answers {
        None if is_question && request.decision != Decision::Decline => Err(CoreError::invalid_field(
            "answers",
            "a question needs answers: {\"<question id>\": [\"<answer>\", …]}",
        )),
        Some(_) if !is_question => {
            Err(CoreError::invalid_field("answers", "only a question approval takes answers"))
        }
        Some(answers) => {
            let is_shaped = answers.as_object().is_some_and(|answers| {
                answers.len() <= 64
                    && answers.values().all(|list| {
                        list.as_array().is_some_and(|list| {
                            list.len() <= 64
                                && list.iter().all(|answer| {
                                    answer
                                        .as_str()
                                        .is_some_and(|text| text.len() <= MAX_APPROVAL_DETAILS_BYTES / 64)
                                })
                        })
                    })
            });
            if is_shaped {
                Ok(())
            } else {
                Err(CoreError::invalid_field(
                    "answers",
                    "must be an object of at most 64 questions, each a list of at most 64 texts of at most 4 KiB",
                ))
            }
        }
        None => Ok(()),
    }
}

impl Inner {
    /// Stores a decision on a pending approval (with its item), publishes what it caused, and keeps the run's idea
    /// of its status in step. Holds the run's status lock, so that the run's own end never races it.
    pub(crate) async fn decide(
        &self,
        approval: &Approval,
        decision: ApprovalDecision,
    ) -> Result<ApprovalChange, EngineError> {
        let mut decision = decision;
        if approval.session_id.is_none() && decision.session_id.is_none() {
            // The agent may have reported its session after it asked: a grant for the session needs it.
            let execution = self.store.get_execution(approval.execution_id).await?;
            decision.session_id = execution.and_then(|execution| execution.session_id);
        }
        let item = approval_item(&decision.apply(approval, now()));
        let handle = self.run_handle(approval.execution_id);
        let mut status = match &handle {
            Some(handle) => Some(handle.status.lock().await),
            None => None,
        };
        if let Some(status) = &status
            && status.is_terminal()
            && decision.status != ApprovalStatus::Expired
        {
            // The run ended while this decision waited for it: nobody will hear it, and its end expires the approval.
            return Err(EngineError::ApprovalDecided { id: approval.id, status: ApprovalStatus::Expired });
        }
        let change = self.observe(self.store.decide_approval(approval.id, decision, Some(item)).await)?;
        if let Some(status) = status.as_mut() {
            **status = change.execution.status;
        }
        drop(status);
        self.publish_approval_change(&change);
        Ok(change)
    }

    /// Tells the bus of an approval change: its items, then its events in order.
    fn publish_approval_change(&self, change: &ApprovalChange) {
        self.publish_stored_items(change.execution.id, change.items.clone());
        for event in &change.events {
            if event.kind == EventKind::ExecutionWaiting {
                // Counted as it reaches `waiting`; `running` again is no new start.
                self.metrics.record(&change.execution);
            }
            // No receiver is fine: the bus only wakes listeners.
            let _ = self.bus.send(BusMessage::Event(event.clone()));
        }
    }

    /// Hands a decision to the backend waiting for it here, if one still is; whether one was.
    pub(crate) fn answer(&self, id: ApprovalId, answer: ApprovalAnswer) -> bool {
        let waiter = self.approval_waiters.lock().expect("approval waiters lock poisoned").remove(&id);
        match waiter {
            Some(waiter) => {
                // The backend may have stopped waiting (its run ended): nobody to tell.
                let _ = waiter.answer.send(answer);
                true
            }
            None => false,
        }
    }

    /// Tells the other instances of a cluster that approval `id` was decided here, for the one whose backend waits for
    /// it. A failure is logged: that backend still hears the decision at its instance's next heartbeat, which reads the
    /// approvals its runs wait for ([`recheck_waiters`](Self::recheck_waiters)).
    async fn announce_decision(&self, id: ApprovalId) {
        let Some(membership) = &self.cluster else { return };
        if let Err(error) = membership.settings.cluster.announce_decision(id).await {
            log::warn!("approval {id}: could not tell the other instances of its decision: {error}");
        }
    }

    /// Hands a decision stored by another instance to the backend waiting for it here, if one is and the approval is
    /// no longer pending: the run's idea of its status first (the decision may have made it `running` again), then
    /// the answer, made from the approval as stored.
    pub(crate) async fn hear_decision(&self, id: ApprovalId) {
        let execution_id = {
            let waiters = self.approval_waiters.lock().expect("approval waiters lock poisoned");
            match waiters.get(&id) {
                Some(waiter) => waiter.execution_id,
                None => return,
            }
        };
        let approval = match self.store.get_approval(id).await {
            Ok(Some(approval)) if !approval.is_pending() => approval,
            Ok(_) => return,
            Err(error) => {
                log::warn!("approval {id}: could not read the decision made on another instance: {error}");
                return;
            }
        };
        self.refresh_run_status(execution_id).await;
        self.answer(id, answer_of(&approval));
    }

    /// Looks at every approval a backend here waits for, and hands over those decided elsewhere: the backstop for a
    /// `Signal::Decided` that was lost.
    pub(crate) async fn recheck_waiters(&self) {
        let waited: Vec<ApprovalId> =
            self.approval_waiters.lock().expect("approval waiters lock poisoned").keys().copied().collect();
        for id in waited {
            self.hear_decision(id).await;
        }
    }

    /// Brings a run's idea of its status in line with the store after a change made behind its back (a decision on
    /// another instance). Holds the run's status lock, as every change of it does; a run that has ended is left alone.
    async fn refresh_run_status(&self, execution_id: ExecutionId) {
        let Some(handle) = self.run_handle(execution_id) else { return };
        let mut status = handle.status.lock().await;
        if status.is_terminal() {
            return;
        }
        match self.store.get_execution(execution_id).await {
            Ok(Some(execution)) if !execution.status.is_terminal() => *status = execution.status,
            Ok(_) => {}
            Err(error) => log::warn!("execution {execution_id}: could not read its status: {error}"),
        }
    }

    /// Expires the pending approvals of an execution whose run has ended (or that recovery found after a restart):
    /// nobody waits for them any more. Their items are closed as declined. A failure is logged: the approvals stay
    /// pending until the next start's recovery expires them.
    pub(crate) async fn expire_approvals_of(&self, execution_id: ExecutionId, why: &str) {
        self.approval_waiters
            .lock()
            .expect("approval waiters lock poisoned")
            .retain(|_, waiter| waiter.execution_id != execution_id);
        let query = ApprovalQuery { pending_only: true, execution: Some(execution_id), limit: EXPIRE_PAGE };
        loop {
            let pending = match self.store.list_approvals(&query).await {
                Ok(pending) => pending,
                Err(error) => {
                    log::warn!("execution {execution_id}: could not read its pending approvals: {error}");
                    return;
                }
            };
            let is_last = pending.len() < EXPIRE_PAGE;
            for approval in pending {
                if let Err(error) = self.decide(&approval, expiry(why)).await
                    && !matches!(error, EngineError::ApprovalDecided { .. })
                {
                    log::warn!("approval {}: could not expire it: {error}", approval.id);
                    return;
                }
            }
            if is_last {
                return;
            }
        }
    }
}

/// The decision that expires an approval, noting why.
fn expiry(why: &str) -> ApprovalDecision {
    ApprovalDecision {
        note: Some(why.to_owned()),
        ..ApprovalDecision::new(ApprovalStatus::Expired, DECIDED_BY_DASHBOARD)
    }
}

/// The gate of one run: what its backend's approval requests go through.
pub(crate) struct RunGate {
    pub(crate) inner: Arc<Inner>,
    pub(crate) execution_id: ExecutionId,
    pub(crate) function: String,
    pub(crate) backend: String,
    pub(crate) policy: ApprovalPolicy,
    pub(crate) timeout: Duration,
    pub(crate) handle: Arc<RunHandle>,
    pub(crate) cancel: CancellationToken,
}

impl std::fmt::Debug for RunGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunGate")
            .field("execution_id", &self.execution_id)
            .field("policy", &self.policy)
            .finish()
    }
}

#[async_trait]
impl ApprovalGate for RunGate {
    async fn ask(&self, request: ApprovalRequest) -> ApprovalAnswer {
        match self.ask_or_fail(request).await {
            Ok(answer) => answer,
            Err(error) => {
                log::warn!(
                    "execution {}: an approval request could not be recorded: {error}",
                    self.execution_id
                );
                let mut answer = ApprovalAnswer::new(Decision::Decline, DECIDED_BY_DASHBOARD);
                answer.note = Some(format!("the dashboard could not record the request: {error}"));
                answer
            }
        }
    }
}

impl RunGate {
    async fn ask_or_fail(&self, request: ApprovalRequest) -> Result<ApprovalAnswer, EngineError> {
        let inner = &self.inner;
        // What the agent did before it asked (the command it wants to run) comes first in the transcript.
        self.handle.flush_logs().await;
        let session_id =
            inner.store.get_execution(self.execution_id).await?.and_then(|execution| execution.session_id);
        let grant_key = request.grant_key.clone().unwrap_or_default();
        let requested_at = now();
        let mut approval = Approval {
            id: ApprovalId::generate(),
            execution_id: self.execution_id,
            function: self.function.clone(),
            backend: self.backend.clone(),
            session_id: session_id.clone(),
            kind: request.kind,
            summary: approval_summary(&request.summary),
            details: bounded_details(request.details),
            item_id: request.item_id,
            grant_key: Some(grant_key.clone()),
            status: ApprovalStatus::Pending,
            for_session: false,
            requested_at,
            expires_at: requested_at + self.timeout,
            decided_by: None,
            decided_at: None,
            note: None,
            answers: None,
        };
        // Decided at once: by the policy, or by a grant for the session that an earlier turn was given.
        let decided_at_once = match self.policy {
            ApprovalPolicy::Auto => Some((Decision::Approve, DECIDED_BY_POLICY, None)),
            ApprovalPolicy::Deny => Some((Decision::Decline, DECIDED_BY_POLICY, None)),
            ApprovalPolicy::Ask => match &session_id {
                Some(session_id) => {
                    inner.store.session_grant(session_id, request.kind, &grant_key).await?.map(|grant| {
                        (
                            Decision::Approve,
                            DECIDED_BY_SESSION_GRANT,
                            Some(format!("granted by approval {}", grant.id)),
                        )
                    })
                }
                None => None,
            },
        };
        if let Some((decision, decided_by, note)) = decided_at_once {
            approval.status = decision.status();
            approval.decided_by = Some(decided_by.to_owned());
            approval.decided_at = Some(requested_at);
            approval.note = note.clone();
            let item = approval_item(&approval);
            let change = inner.observe(inner.store.create_approval(approval, Some(item)).await)?;
            inner.publish_approval_change(&change);
            let mut answer = ApprovalAnswer::new(decision, decided_by);
            answer.note = note;
            return Ok(answer);
        }

        let id = approval.id;
        let (sender, mut receiver) = oneshot::channel();
        inner
            .approval_waiters
            .lock()
            .expect("approval waiters lock poisoned")
            .insert(id, Waiter { execution_id: self.execution_id, answer: sender });
        let item = approval_item(&approval);
        self.handle.has_asked.store(true, Ordering::SeqCst);
        // Should the backend stop waiting (the agent withdrew its request) — even while the approval is being stored —
        // the approval expires (the store's writer takes that after the approval itself).
        let withdrawn = Withdrawn { gate: self, approval: Some(approval.clone()) };
        let created = {
            let mut status = self.handle.status.lock().await;
            let created = inner.observe(inner.store.create_approval(approval, Some(item)).await);
            if let Ok(change) = &created {
                *status = change.execution.status;
            }
            created
        };
        let change = match created {
            Ok(change) => change,
            Err(error) => {
                withdrawn.disarm();
                inner.approval_waiters.lock().expect("approval waiters lock poisoned").remove(&id);
                return Err(error.into());
            }
        };
        inner.publish_approval_change(&change);
        let expires_in = self.timeout;
        let answer = tokio::select! {
            answer = &mut receiver => Ok(answer.unwrap_or_else(|_| stopped())),
            () = self.cancel.cancelled() => Ok(stopped()),
            () = tokio::time::sleep(expires_in) => {
                let why = format!("nobody decided within {} s", expires_in.as_secs());
                match inner.decide(&change.approval, expiry(&why)).await {
                    Ok(_) => {
                        inner.approval_waiters.lock().expect("approval waiters lock poisoned").remove(&id);
                        let mut answer = ApprovalAnswer::new(Decision::Decline, DECIDED_BY_DASHBOARD);
                        answer.note = Some(why);
                        Ok(answer)
                    }
                    // Decided meanwhile: the stored decision is the answer (its bearer may never arrive, if the
                    // request that stored it was dropped before it could hand it over).
                    Err(EngineError::ApprovalDecided { .. }) => {
                        inner.approval_waiters.lock().expect("approval waiters lock poisoned").remove(&id);
                        // Decided on another instance, maybe: the store may have made the execution `running` again.
                        inner.refresh_run_status(self.execution_id).await;
                        let stored = inner.store.get_approval(id).await?;
                        Ok(stored.map_or_else(stopped, |stored| answer_of(&stored)))
                    }
                    // Not expired (the store refused): the guard tries again as it is dropped.
                    Err(error) => return Err(error),
                }
            }
        };
        withdrawn.disarm();
        answer
    }
}

/// Expires a pending approval whose backend stopped waiting for it before it was answered — unless the run is being
/// stopped, whose end expires it (and must not see it `running` again first).
struct Withdrawn<'a> {
    gate: &'a RunGate,
    approval: Option<Approval>,
}

impl Withdrawn<'_> {
    fn disarm(mut self) {
        self.approval = None;
    }
}

impl Drop for Withdrawn<'_> {
    fn drop(&mut self) {
        let Some(approval) = self.approval.take() else { return };
        if self.gate.cancel.is_cancelled() {
            return;
        }
        self.gate.inner.approval_waiters.lock().expect("approval waiters lock poisoned").remove(&approval.id);
        let inner = Arc::clone(&self.gate.inner);
        inner.runtime.clone().spawn(async move {
            match inner.decide(&approval, expiry("the agent withdrew its request")).await {
                Ok(_) | Err(EngineError::ApprovalDecided { .. }) => {}
                Err(error) => log::warn!("approval {}: could not expire it: {error}", approval.id),
            }
        });
    }
}

/// What the agent is told of a decided approval, from the approval as stored.
fn answer_of(approval: &Approval) -> ApprovalAnswer {
    let decision = match (approval.status, approval.for_session) {
        (ApprovalStatus::Approved, true) => Decision::ApproveForSession,
        (ApprovalStatus::Approved, false) => Decision::Approve,
        _ => Decision::Decline,
    };
    ApprovalAnswer {
        decision,
        decided_by: approval.decided_by.clone().unwrap_or_else(|| DECIDED_BY_DASHBOARD.to_owned()),
        note: approval.note.clone(),
        answers: approval.answers.clone(),
    }
}

/// The answer when the run stopped while it waited: a decline, which the backend will not get to tell anyway.
fn stopped() -> ApprovalAnswer {
    let mut answer = ApprovalAnswer::new(Decision::Decline, DECIDED_BY_DASHBOARD);
    answer.note = Some("the run was stopped".to_owned());
    answer
}

/// An approval's details, unless they are larger than the dashboard keeps: then a note saying how large they were.
fn bounded_details(details: Value) -> Value {
    let len = json_len_up_to(&details, MAX_APPROVAL_DETAILS_BYTES, false);
    if len > MAX_APPROVAL_DETAILS_BYTES {
        json!({"note": format!("the details were larger than {MAX_APPROVAL_DETAILS_BYTES} bytes and were not kept")})
    } else {
        details
    }
}
