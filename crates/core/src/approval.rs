//! Approvals: an agent asking a person's permission (to run a command, change files, widen its permissions) or a
//! question, the function's policy for such requests, and the decision the agent receives.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ApprovalId, CoreError, ExecutionId, Timestamp};

/// How long an approval stays pending when the function does not say: an hour.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 3600;
/// The longest an approval's summary may be, in bytes; a longer one is cut.
pub const MAX_APPROVAL_SUMMARY_BYTES: usize = 512;
/// The most bytes of JSON an approval's details may hold; larger details are replaced by a note saying so.
pub const MAX_APPROVAL_DETAILS_BYTES: usize = 256 * 1024;
/// The longest a decision's note may be, in characters.
pub const MAX_APPROVAL_NOTE_CHARS: usize = 2000;

/// What a function's executions do when their agent asks permission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// The agent's own sandbox policy decides; requests that still arrive are approved, and recorded.
    #[default]
    Auto,
    /// A person decides: the execution is `waiting` until someone does, or the approval expires.
    Ask,
    /// Every request is declined at once, and recorded.
    Deny,
}

impl ApprovalPolicy {
    /// Whether this is the default, `auto`.
    pub fn is_auto(&self) -> bool {
        *self == Self::Auto
    }

    /// The policy as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Ask => "ask",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for ApprovalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an approval is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// Running a command.
    Command,
    /// Changing files.
    FileChange,
    /// Widening the agent's permissions (network, paths).
    Permission,
    /// A question the agent asks the user; the decision carries the answers.
    Question,
}

impl ApprovalKind {
    /// Every kind.
    pub const ALL: [ApprovalKind; 4] = [Self::Command, Self::FileChange, Self::Permission, Self::Question];

    /// The kind as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::FileChange => "file_change",
            Self::Permission => "permission",
            Self::Question => "question",
        }
    }
}

impl FromStr for ApprovalKind {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| CoreError::invalid_field("kind", format!("unknown approval kind {text:?}")))
    }
}

/// Where an approval is in its life: `pending`, then once `approved`, `declined` or `expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Nobody has decided yet; the agent waits.
    Pending,
    /// Approved: the agent goes ahead.
    Approved,
    /// Declined: the agent is told no.
    Declined,
    /// Nobody decided in time, or the execution ended first; the agent was told no.
    Expired,
}

impl ApprovalStatus {
    /// Every status.
    pub const ALL: [ApprovalStatus; 4] = [Self::Pending, Self::Approved, Self::Declined, Self::Expired];

    /// The status as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Expired => "expired",
        }
    }

    /// Whether the agent got a yes.
    pub fn is_approved(self) -> bool {
        self == Self::Approved
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalStatus {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| CoreError::invalid_field("status", format!("unknown approval status {text:?}")))
    }
}

/// What a person decides on a pending approval (`POST /api/approvals/{id}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Yes, this once.
    Approve,
    /// Yes, and the same request again in this session needs no asking (the agent is told so, and the dashboard
    /// answers it itself in the session's later turns).
    ApproveForSession,
    /// No: the agent is told, and goes on or ends as it decides.
    Decline,
}

impl Decision {
    /// The decision as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::ApproveForSession => "approve_for_session",
            Self::Decline => "decline",
        }
    }

    /// The approval's status after this decision.
    pub fn status(self) -> ApprovalStatus {
        match self {
            Self::Approve | Self::ApproveForSession => ApprovalStatus::Approved,
            Self::Decline => ApprovalStatus::Declined,
        }
    }
}

impl FromStr for Decision {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Approve, Self::ApproveForSession, Self::Decline]
            .into_iter()
            .find(|decision| decision.as_str() == text)
            .ok_or_else(|| {
                CoreError::invalid_field(
                    "decision",
                    format!("unknown decision {text:?}; expected approve, approve_for_session or decline"),
                )
            })
    }
}

/// An agent's request for a person's decision, and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// Its id (UUID v7).
    pub id: ApprovalId,
    /// The execution whose agent asks.
    pub execution_id: ExecutionId,
    /// The execution's function.
    pub function: String,
    /// The execution's backend: deciding needs `trigger` on it.
    pub backend: String,
    /// The agent's session (a Codex thread), when known: a grant for the session holds in its later turns.
    #[serde(default)]
    pub session_id: Option<String>,
    /// What it is about.
    pub kind: ApprovalKind,
    /// One line: the command, the files, the question.
    pub summary: String,
    /// Everything a person needs to decide: the command and its cwd, the diff, the agent's reason, the questions.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    /// The transcript item it is about, when the agent named one.
    #[serde(default)]
    pub item_id: Option<String>,
    /// What "the same request" means for a grant for the session (the command, for a command).
    #[serde(default)]
    pub grant_key: Option<String>,
    /// Where it is in its life.
    pub status: ApprovalStatus,
    /// Approved for the rest of the session (`approve_for_session`).
    #[serde(default)]
    pub for_session: bool,
    /// When the agent asked.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: Timestamp,
    /// When it expires if nobody decides.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    /// Who decided: a token's name, `policy` (`auto`/`deny`), `session grant`, or `dashboard` (expiry, a run that
    /// ended).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When it was decided.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<Timestamp>,
    /// The decider's note, told to the agent where it can hear it.
    #[serde(default)]
    pub note: Option<String>,
    /// A question's answers: `{"<question id>": ["<answer>", …]}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default)]
    pub answers: Option<Value>,
}

impl Approval {
    /// Whether nobody has decided it yet.
    pub fn is_pending(&self) -> bool {
        self.status == ApprovalStatus::Pending
    }
}

/// How a pending approval was decided: what a store writes onto it (see `DashboardStore::decide_approval`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalDecision {
    /// `approved`, `declined` or `expired`.
    pub status: ApprovalStatus,
    /// Approved for the rest of the session.
    pub for_session: bool,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The decider's note.
    pub note: Option<String>,
    /// A question's answers.
    pub answers: Option<Value>,
    /// The agent's session, written onto an approval that has none yet (the agent reported it after asking), so that
    /// a grant for the session is found in the session's later turns.
    pub session_id: Option<String>,
}

impl ApprovalDecision {
    /// A decision with status `status` by `decided_by`, with no note or answers.
    pub fn new(status: ApprovalStatus, decided_by: impl Into<String>) -> Self {
        Self {
            status,
            for_session: false,
            decided_by: Some(decided_by.into()),
            note: None,
            answers: None,
            session_id: None,
        }
    }

    /// The approval with this decision written onto it at `decided_at`.
    pub fn apply(&self, approval: &Approval, decided_at: Timestamp) -> Approval {
        Approval {
            status: self.status,
            for_session: self.for_session,
            decided_by: self.decided_by.clone(),
            decided_at: Some(decided_at),
            note: self.note.clone(),
            answers: self.answers.clone(),
            session_id: approval.session_id.clone().or_else(|| self.session_id.clone()),
            ..approval.clone()
        }
    }
}

/// `summary` cut to [`MAX_APPROVAL_SUMMARY_BYTES`] on a character boundary, on one line.
pub fn approval_summary(summary: &str) -> String {
    let line = summary.lines().next().unwrap_or("").trim();
    let mut end = line.len().min(MAX_APPROVAL_SUMMARY_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if end < line.len() { format!("{}…", &line[..end]) } else { line.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_one_line_cut_on_a_character_boundary() {
        assert_eq!(approval_summary("  rm -rf build\nsecond line"), "rm -rf build");
        let long = "é".repeat(MAX_APPROVAL_SUMMARY_BYTES);
        let cut = approval_summary(&long);
        assert!(cut.len() <= MAX_APPROVAL_SUMMARY_BYTES + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn decisions_parse_and_map_to_statuses() {
        assert_eq!("approve_for_session".parse::<Decision>().ok(), Some(Decision::ApproveForSession));
        assert_eq!(Decision::ApproveForSession.status(), ApprovalStatus::Approved);
        assert_eq!(Decision::Decline.status(), ApprovalStatus::Declined);
        assert!("cancel".parse::<Decision>().is_err(), "Codex's cancel is never a decision");
        assert_eq!(serde_json::to_value(ApprovalPolicy::default()).ok(), Some(serde_json::json!("auto")));
    }
}
