//! Asking a person: the [`ApprovalRequest`] a backend makes when its agent asks permission (or asks a question), the
//! [`ApprovalAnswer`] it gets back, and the [`ApprovalGate`] the engine answers through — applying the function's
//! policy, holding the execution `waiting` while a person decides, and remembering grants for the session.

use std::fmt;

use async_trait::async_trait;
use dashboard_core::{ApprovalKind, Decision};
use serde_json::Value;

/// What an agent asks to be allowed (or asks the user), as a backend reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRequest {
    /// What it is about.
    pub kind: ApprovalKind,
    /// One line a person reads first: the command, the files, the question (cut to a line by the engine).
    pub summary: String,
    /// Everything a person needs to decide: for a command `{"command", "cwd", "reason"}`, for a file change
    /// `{"changes": [{path, kind, diff}], "reason"}`, for a permission `{"permissions", "reason"}`, for a question
    /// `{"questions": [{"id", "question", "options"?}]}`.
    pub details: Value,
    /// The transcript item the request is about, when the agent named one: the engine links it to the approval.
    pub item_id: Option<String>,
    /// What "the same request" is for a grant for the session: a command's text, or the kind alone when `None`.
    /// Only requests with the same kind and key are answered by an earlier `approve_for_session`.
    pub grant_key: Option<String>,
}

impl ApprovalRequest {
    /// A request of `kind` with a summary and details, about no item, granted for the session by kind alone.
    pub fn new(kind: ApprovalKind, summary: impl Into<String>, details: Value) -> Self {
        Self { kind, summary: summary.into(), details, item_id: None, grant_key: None }
    }
}

/// What the agent is told.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalAnswer {
    /// Yes, yes for the session, or no. An approval that expired, or a run that stopped, is a no.
    pub decision: Decision,
    /// Who decided, for the backend's log line: a token's name, `policy`, `session grant`, `dashboard`.
    pub decided_by: String,
    /// The decider's note.
    pub note: Option<String>,
    /// A question's answers: `{"<question id>": ["<answer>", …]}`.
    pub answers: Option<Value>,
}

impl ApprovalAnswer {
    /// A decision with nothing else said.
    pub fn new(decision: Decision, decided_by: impl Into<String>) -> Self {
        Self { decision, decided_by: decided_by.into(), note: None, answers: None }
    }

    /// Whether the agent may go ahead.
    pub fn is_approved(&self) -> bool {
        self.decision != Decision::Decline
    }
}

/// Where a backend's approval requests go. The engine gives each run its own; it waits as long as the decision takes
/// (a person, the approval's expiry, or the run being stopped — then the answer is a decline), so a backend calls it
/// from a task that may wait without holding up its other work.
#[async_trait]
pub trait ApprovalGate: Send + Sync + fmt::Debug {
    /// Asks, and waits for the answer.
    async fn ask(&self, request: ApprovalRequest) -> ApprovalAnswer;
}

/// The gate of a run outside the engine (a backend's own tests, an embedder that wants no approvals): approves
/// every request, as the `auto` policy does.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApproveAll;

#[async_trait]
impl ApprovalGate for ApproveAll {
    async fn ask(&self, _request: ApprovalRequest) -> ApprovalAnswer {
        ApprovalAnswer::new(Decision::Approve, "policy")
    }
}
