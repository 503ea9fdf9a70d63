//! The approval gate's asks in flight: each server request that asks for a decision waits for the gate in a task of
//! its own, so that the loop reading the server goes on meanwhile (the wait may last an hour), and several may be
//! pending at once. Dropping the set aborts every ask still waiting.

use std::collections::HashMap;
use std::sync::Arc;

use dashboard_backend_api::{ApprovalAnswer, ApprovalGate, ApprovalRequest};
use dashboard_core::Decision;
use serde_json::Value;
use tokio::task::{AbortHandle, Id, JoinSet};

use super::approvals::Asked;

/// Who declines a request the gate failed to decide (its task panicked).
pub(crate) const DECIDED_BY_DASHBOARD: &str = "dashboard";

/// The asks waiting for the gate's answer.
#[derive(Default)]
pub(crate) struct Asks {
    tasks: JoinSet<ApprovalAnswer>,
    /// The request each task answers.
    pending: HashMap<Id, Pending>,
}

/// A server request waiting for the gate's answer.
struct Pending {
    /// The JSON-RPC id the answer goes under.
    request_id: Value,
    /// What was asked: the shape of the answer.
    asked: Asked,
    /// Stops the ask when Codex withdraws the request.
    abort: AbortHandle,
}

/// An ask the gate answered: the request's JSON-RPC id, what it asked, and the answer.
pub(crate) type Decided = (Value, Asked, ApprovalAnswer);

impl Asks {
    /// Asks `gate` about request `request_id` in a task of its own; [`next`](Self::next) gives the answer.
    pub(crate) fn start(
        &mut self,
        gate: Arc<dyn ApprovalGate>,
        request_id: Value,
        asked: Asked,
        request: ApprovalRequest,
    ) {
        let abort = self.tasks.spawn(async move { gate.ask(request).await });
        self.pending.insert(abort.id(), Pending { request_id, asked, abort });
    }

    /// Whether no ask is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The next ask answered, or `None` once none is left. An ask whose task panicked is answered with a decline;
    /// a withdrawn one is passed over. Cancel-safe: an answer is taken from the set only when it is returned.
    pub(crate) async fn next(&mut self) -> Option<Decided> {
        loop {
            let (task, answer) = match self.tasks.join_next_with_id().await? {
                Ok(done) => done,
                Err(error) if error.is_cancelled() => continue,
                Err(error) => {
                    log::warn!("codex app-server: an approval request could not be decided: {error}");
                    let mut answer = ApprovalAnswer::new(Decision::Decline, DECIDED_BY_DASHBOARD);
                    answer.note = Some("the dashboard could not decide".to_owned());
                    (error.id(), answer)
                }
            };
            if let Some(Pending { request_id, asked, .. }) = self.pending.remove(&task) {
                return Some((request_id, asked, answer));
            }
        }
    }

    /// Stops the ask of request `request_id`, if it is still waiting; whether it was.
    pub(crate) fn withdraw(&mut self, request_id: &Value) -> bool {
        let task =
            self.pending.iter().find(|(_, pending)| &pending.request_id == request_id).map(|(task, _)| *task);
        match task.and_then(|task| self.pending.remove(&task)) {
            Some(pending) => {
                pending.abort.abort();
                true
            }
            None => false,
        }
    }

    /// Stops every ask still waiting.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}
