//! Executions and the status machine that every change of an execution's status is checked against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CoreError, EventKind, ExecutionId, FunctionId, Timestamp};

/// Where an execution is in its life.
///
/// `queued → running → succeeded | failed | timed_out | cancelled`, `queued → cancelled`, `queued → failed` (it could
/// not start), and `running → waiting → running` while the agent waits for a person's approval, with `waiting →
/// cancelled | timed_out | failed`. Terminal statuses never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Accepted and waiting for a free slot.
    Queued,
    /// Handed to its backend.
    Running,
    /// Its agent is blocked on a person: an approval is pending. Its timeout keeps counting.
    Waiting,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error, or could not start.
    Failed,
    /// Stopped because it ran past its timeout.
    TimedOut,
    /// Stopped on request.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in life order.
    pub const ALL: [ExecutionStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Waiting,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
    ];

    /// The status as it appears in the API (`timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the execution has ended; a terminal status never changes again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running | Self::Waiting)
    }

    /// Whether the status machine allows going from `self` to `next`.
    pub fn can_become(self, next: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled | Failed)
                | (Running, Succeeded | Failed | TimedOut | Cancelled | Waiting)
                | (Waiting, Running | Failed | TimedOut | Cancelled)
        )
    }

    /// Checks a change against the status machine.
    pub fn check_transition(self, next: ExecutionStatus) -> Result<(), CoreError> {
        if self.can_become(next) {
            Ok(())
        } else {
            Err(CoreError::IllegalTransition { from: self, to: next })
        }
    }

    /// The activity event recorded when an execution reaches this status (`running` again after `waiting` is
    /// `execution.resumed`: see [`NewEvent::for_change`](crate::NewEvent::for_change)).
    pub fn event_kind(self) -> EventKind {
        match self {
            Self::Queued => EventKind::ExecutionQueued,
            Self::Running => EventKind::ExecutionStarted,
            Self::Waiting => EventKind::ExecutionWaiting,
            Self::Succeeded => EventKind::ExecutionSucceeded,
            Self::Failed => EventKind::ExecutionFailed,
            Self::TimedOut => EventKind::ExecutionTimedOut,
            Self::Cancelled => EventKind::ExecutionCancelled,
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == text).ok_or_else(|| {
            CoreError::invalid_field(
                "status",
                format!(
                    "unknown status {text:?}; expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                ),
            )
        })
    }
}

/// One run of a function on a backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    /// Its id (UUID v7).
    pub id: ExecutionId,
    /// The name the function had when this was triggered.
    pub function: String,
    /// The function's id.
    pub function_id: FunctionId,
    /// The function's version when this was triggered.
    pub function_version: u32,
    /// The backend it runs on.
    pub backend: String,
    /// The input it was triggered with; it satisfied the function's input schema.
    pub input: Value,
    /// Where it is in its life.
    pub status: ExecutionStatus,
    /// The result, once `succeeded`.
    pub output: Option<Value>,
    /// What went wrong, once `failed`, `timed_out` or `cancelled`.
    pub error: Option<String>,
    /// Token counts and the like, when the backend reports them.
    pub usage: Option<Value>,
    /// 1 for a first run, then +1 for each retry.
    pub attempt: u32,
    /// The execution this one retries.
    pub retry_of: Option<ExecutionId>,
    /// The client's key that makes repeating a trigger safe.
    pub idempotency_key: Option<String>,
    /// Who triggered it (a token's name), when auth is on.
    pub triggered_by: Option<String>,
    /// The agent's own id of the conversation this run is a turn of (a Codex thread, a Claude Code session), once
    /// its backend has reported it; a continue of this execution resumes it.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The execution this one follows as the next turn of its session (`POST /api/executions/{id}/continue`).
    #[serde(default)]
    pub continues: Option<ExecutionId>,
    /// A follow-up turn's prompt, as the caller wrote it; `None` for a first turn, whose prompt is the function's
    /// template rendered with the input.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The id of the dashboard instance that ran it (`DASHBOARD_INSTANCE_ID`), set when it starts; `None` while it
    /// is queued, and for executions stored before instances were recorded.
    #[serde(default)]
    pub instance: Option<String>,
    /// When it was accepted.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// When it started running.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal status.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
}

impl Execution {
    /// How long it ran, once started: until it finished, or until `now` while it still runs.
    pub fn duration(&self, now: Timestamp) -> Option<time::Duration> {
        let started_at = self.started_at?;
        Some(self.finished_at.unwrap_or(now) - started_at)
    }
}

#[cfg(test)]
mod tests {
    use super::ExecutionStatus::{self, *};

    /// Every pair the status machine allows; all other pairs must be refused.
    const LEGAL: [(ExecutionStatus, ExecutionStatus); 12] = [
        (Queued, Running),
        (Queued, Cancelled),
        (Queued, Failed),
        (Running, Succeeded),
        (Running, Failed),
        (Running, TimedOut),
        (Running, Cancelled),
        (Running, Waiting),
        (Waiting, Running),
        (Waiting, Failed),
        (Waiting, TimedOut),
        (Waiting, Cancelled),
    ];

    #[test]
    fn every_legal_transition_is_allowed() {
        for (from, to) in LEGAL {
            assert!(from.check_transition(to).is_ok(), "{from} → {to} must be allowed");
        }
    }

    #[test]
    fn every_other_transition_is_refused() {
        for from in ExecutionStatus::ALL {
            for to in ExecutionStatus::ALL {
                if LEGAL.contains(&(from, to)) {
                    continue;
                }
                let error = from.check_transition(to).expect_err("illegal transition accepted");
                assert_eq!(error.to_string(), format!("an execution cannot go from {from} to {to}"));
            }
        }
    }

    #[test]
    fn terminal_statuses_never_change() {
        for from in ExecutionStatus::ALL.into_iter().filter(|status| status.is_terminal()) {
            assert!(ExecutionStatus::ALL.into_iter().all(|to| !from.can_become(to)), "{from} changed");
        }
        assert!(!Queued.is_terminal() && !Running.is_terminal());
    }

    #[test]
    fn statuses_parse_and_print_alike() {
        for status in ExecutionStatus::ALL {
            assert_eq!(status.as_str().parse::<ExecutionStatus>().ok(), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        let error = "done".parse::<ExecutionStatus>().expect_err("unknown status parsed");
        assert!(error.to_string().contains("queued, running"), "{error}");
    }
}
