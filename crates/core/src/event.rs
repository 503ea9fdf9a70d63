//! Activity events: one for every change worth telling, each with a global, strictly increasing id (the cursor).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Approval, ApprovalStatus, Delivery, Execution, ExecutionId, ExecutionStatus, Function, Schedule,
    ScheduleId, Timestamp,
};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// A function was registered.
    #[serde(rename = "function.created")]
    FunctionCreated,
    /// A function was replaced by a new version.
    #[serde(rename = "function.updated")]
    FunctionUpdated,
    /// A function was deleted (its executions are kept).
    #[serde(rename = "function.deleted")]
    FunctionDeleted,
    /// An execution was accepted.
    #[serde(rename = "execution.queued")]
    ExecutionQueued,
    /// An execution began running.
    #[serde(rename = "execution.started")]
    ExecutionStarted,
    /// An execution succeeded.
    #[serde(rename = "execution.succeeded")]
    ExecutionSucceeded,
    /// An execution failed.
    #[serde(rename = "execution.failed")]
    ExecutionFailed,
    /// An execution ran past its timeout.
    #[serde(rename = "execution.timed_out")]
    ExecutionTimedOut,
    /// An execution was cancelled.
    #[serde(rename = "execution.cancelled")]
    ExecutionCancelled,
    /// An execution's agent waits for a person: an approval is pending.
    #[serde(rename = "execution.waiting")]
    ExecutionWaiting,
    /// An execution runs again: its last pending approval was decided.
    #[serde(rename = "execution.resumed")]
    ExecutionResumed,
    /// An agent asked for an approval.
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    /// An approval was decided: approved, declined or expired.
    #[serde(rename = "approval.decided")]
    ApprovalDecided,
    /// A schedule was created.
    #[serde(rename = "schedule.created")]
    ScheduleCreated,
    /// A schedule was changed.
    #[serde(rename = "schedule.updated")]
    ScheduleUpdated,
    /// A schedule was deleted (its executions are kept).
    #[serde(rename = "schedule.deleted")]
    ScheduleDeleted,
    /// A schedule fired: it queued an execution.
    #[serde(rename = "schedule.fired")]
    ScheduleFired,
    /// A schedule's fire was skipped: no execution (the previous one still ran, or the function refused it).
    #[serde(rename = "schedule.skipped")]
    ScheduleSkipped,
    /// A notification could not be delivered for the whole retry period and was given up.
    #[serde(rename = "notification.failed")]
    NotificationFailed,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 19] = [
        Self::FunctionCreated,
        Self::FunctionUpdated,
        Self::FunctionDeleted,
        Self::ExecutionQueued,
        Self::ExecutionStarted,
        Self::ExecutionSucceeded,
        Self::ExecutionFailed,
        Self::ExecutionTimedOut,
        Self::ExecutionCancelled,
        Self::ExecutionWaiting,
        Self::ExecutionResumed,
        Self::ApprovalRequested,
        Self::ApprovalDecided,
        Self::ScheduleCreated,
        Self::ScheduleUpdated,
        Self::ScheduleDeleted,
        Self::ScheduleFired,
        Self::ScheduleSkipped,
        Self::NotificationFailed,
    ];

    /// The kind as it appears in the API (`execution.succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FunctionCreated => "function.created",
            Self::FunctionUpdated => "function.updated",
            Self::FunctionDeleted => "function.deleted",
            Self::ExecutionQueued => "execution.queued",
            Self::ExecutionStarted => "execution.started",
            Self::ExecutionSucceeded => "execution.succeeded",
            Self::ExecutionFailed => "execution.failed",
            Self::ExecutionTimedOut => "execution.timed_out",
            Self::ExecutionCancelled => "execution.cancelled",
            Self::ExecutionWaiting => "execution.waiting",
            Self::ExecutionResumed => "execution.resumed",
            Self::ApprovalRequested => "approval.requested",
            Self::ApprovalDecided => "approval.decided",
            Self::ScheduleCreated => "schedule.created",
            Self::ScheduleUpdated => "schedule.updated",
            Self::ScheduleDeleted => "schedule.deleted",
            Self::ScheduleFired => "schedule.fired",
            Self::ScheduleSkipped => "schedule.skipped",
            Self::NotificationFailed => "notification.failed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded event of the activity feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Global and strictly increasing: the cursor of the feed.
    pub id: u64,
    /// When it was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The execution it is about, if any.
    pub execution_id: Option<ExecutionId>,
    /// The function it is about, by name.
    pub function: Option<String>,
    /// The backend involved, if any.
    pub backend: Option<String>,
    /// One human sentence.
    pub message: String,
    /// Details (the new status, the error, the version…).
    pub data: Value,
}

/// An event not yet recorded: the store gives it its id and time, in the same transaction as the change it describes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The execution it is about, if any.
    pub execution_id: Option<ExecutionId>,
    /// The function it is about, by name.
    pub function: Option<String>,
    /// The backend involved, if any.
    pub backend: Option<String>,
    /// One human sentence.
    pub message: String,
    /// Details.
    pub data: Value,
}

impl NewEvent {
    /// The event for an execution that has just reached its current status. Every store records exactly this, so
    /// the feed reads the same whatever the store.
    pub fn for_execution(execution: &Execution) -> Self {
        let name = &execution.function;
        let short_id = short(execution.id);
        let message = match execution.status {
            ExecutionStatus::Queued if execution.retry_of.is_some() => {
                format!("{name} queued as attempt {} ({short_id})", execution.attempt)
            }
            ExecutionStatus::Queued => format!("{name} queued on {} ({short_id})", execution.backend),
            ExecutionStatus::Running => format!("{name} started on {} ({short_id})", execution.backend),
            ExecutionStatus::Waiting => format!("{name} is waiting for an approval ({short_id})"),
            ExecutionStatus::Succeeded => format!("{name} succeeded ({short_id})"),
            ExecutionStatus::Failed => format!(
                "{name} failed: {} ({short_id})",
                first_line(execution.error.as_deref().unwrap_or("no reason given"))
            ),
            ExecutionStatus::TimedOut => format!("{name} timed out ({short_id})"),
            ExecutionStatus::Cancelled => format!("{name} was cancelled ({short_id})"),
        };
        let mut data = json!({"status": execution.status, "attempt": execution.attempt});
        if let Some(error) = &execution.error {
            data["error"] = json!(error);
        }
        if let Some(retry_of) = execution.retry_of {
            data["retry_of"] = json!(retry_of);
        }
        Self {
            kind: execution.status.event_kind(),
            execution_id: Some(execution.id),
            function: Some(execution.function.clone()),
            backend: Some(execution.backend.clone()),
            message,
            data,
        }
    }

    /// The event for an execution that has just gone from `from` to its current status: as
    /// [`for_execution`](Self::for_execution), except that `running` after `waiting` is `execution.resumed`.
    pub fn for_change(from: ExecutionStatus, execution: &Execution) -> Self {
        let mut event = Self::for_execution(execution);
        if from == ExecutionStatus::Waiting && execution.status == ExecutionStatus::Running {
            event.kind = EventKind::ExecutionResumed;
            event.message = format!("{} resumed ({})", execution.function, short(execution.id));
        }
        event
    }

    /// The event for an approval that was just requested or decided (`kind` says which); `decided_by` and the
    /// decision are in the data.
    pub fn for_approval(kind: EventKind, approval: &Approval) -> Self {
        let short_id = short(approval.execution_id);
        let function = &approval.function;
        let summary = first_line(&approval.summary);
        let message = match (kind, approval.status) {
            (EventKind::ApprovalRequested, _) => format!("{function} asks to approve {summary} ({short_id})"),
            (_, ApprovalStatus::Expired) => format!("{function}: approval of {summary} expired ({short_id})"),
            (_, status) => {
                let how = if approval.for_session { " for the session" } else { "" };
                let by = approval.decided_by.as_deref().unwrap_or("nobody");
                format!("{function}: {summary} {status}{how} by {by} ({short_id})")
            }
        };
        let mut data = json!({
            "approval_id": approval.id,
            "kind": approval.kind,
            "status": approval.status,
        });
        if let Some(decided_by) = &approval.decided_by {
            data["decided_by"] = json!(decided_by);
        }
        if approval.for_session {
            data["for_session"] = json!(true);
        }
        Self {
            kind,
            execution_id: Some(approval.execution_id),
            function: Some(function.clone()),
            backend: Some(approval.backend.clone()),
            message,
            data,
        }
    }

    /// The event for a function that was created, updated or deleted (`kind` says which).
    pub fn for_function(kind: EventKind, function: &Function) -> Self {
        let name = &function.name;
        let message = match kind {
            EventKind::FunctionCreated => format!("function {name} was created"),
            EventKind::FunctionUpdated => {
                format!("function {name} was updated to version {}", function.version)
            }
            EventKind::FunctionDeleted => format!("function {name} was deleted"),
            other => format!("function {name}: {other}"),
        };
        Self {
            kind,
            execution_id: None,
            function: Some(name.clone()),
            backend: Some(function.backend.clone()),
            message,
            data: json!({"function_id": function.id, "version": function.version}),
        }
    }

    /// The event for a schedule that was created, updated or deleted (`kind` says which).
    pub fn for_schedule(kind: EventKind, schedule: &Schedule) -> Self {
        let what =
            format!("schedule {} of {} ({})", short_schedule(schedule.id), schedule.function, schedule.cron);
        let message = match kind {
            EventKind::ScheduleCreated => format!("{what} was created"),
            EventKind::ScheduleUpdated if schedule.enabled => format!("{what} was updated"),
            EventKind::ScheduleUpdated => format!("{what} was updated and is disabled"),
            EventKind::ScheduleDeleted => format!("{what} was deleted"),
            other => format!("{what}: {other}"),
        };
        Self {
            kind,
            execution_id: None,
            function: Some(schedule.function.clone()),
            backend: None,
            message,
            data: json!({
                "schedule_id": schedule.id,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "enabled": schedule.enabled,
            }),
        }
    }

    /// The event for a schedule's fire that queued `execution` for the due time `due`.
    pub fn schedule_fired(schedule: &Schedule, execution: &Execution, due: Timestamp) -> Self {
        Self {
            kind: EventKind::ScheduleFired,
            execution_id: Some(execution.id),
            function: Some(schedule.function.clone()),
            backend: Some(execution.backend.clone()),
            message: format!(
                "schedule {} fired {} ({})",
                short_schedule(schedule.id),
                schedule.function,
                short(execution.id)
            ),
            data: json!({"schedule_id": schedule.id, "due": rfc3339(due)}),
        }
    }

    /// The event for a schedule's fire at the due time `due` that was skipped, and why.
    pub fn schedule_skipped(schedule: &Schedule, due: Timestamp, reason: &str) -> Self {
        Self {
            kind: EventKind::ScheduleSkipped,
            execution_id: None,
            function: Some(schedule.function.clone()),
            backend: None,
            message: format!(
                "schedule {} skipped {}: {}",
                short_schedule(schedule.id),
                schedule.function,
                first_line(reason)
            ),
            data: json!({"schedule_id": schedule.id, "due": rfc3339(due), "reason": reason}),
        }
    }

    /// The event for a delivery given up after its last attempt.
    pub fn notification_failed(delivery: &Delivery) -> Self {
        let error = delivery.last_error.as_deref().unwrap_or("no answer");
        Self {
            kind: EventKind::NotificationFailed,
            execution_id: None,
            function: delivery.event.function.clone(),
            backend: None,
            message: format!(
                "notification {} of {} was given up after {} attempts: {}",
                delivery.notification,
                delivery.event.kind,
                delivery.attempts,
                first_line(error)
            ),
            data: json!({
                "delivery_id": delivery.id,
                "notification": delivery.notification,
                "event_id": delivery.event.id,
                "execution_id": delivery.event.execution_id,
                "attempts": delivery.attempts,
                "error": error,
            }),
        }
    }

    /// The recorded event, once the store has given it an id and a time.
    pub fn recorded(self, id: u64, ts: Timestamp) -> Event {
        Event {
            id,
            ts,
            kind: self.kind,
            execution_id: self.execution_id,
            function: self.function,
            backend: self.backend,
            message: self.message,
            data: self.data,
        }
    }
}

/// The random tail of the id: the head of a UUID v7 is a timestamp, the same for every id of the same moment.
fn short(id: ExecutionId) -> String {
    let text = id.to_string();
    text[text.len() - 8..].to_owned()
}

fn short_schedule(id: ScheduleId) -> String {
    let text = id.to_string();
    text[text.len() - 8..].to_owned()
}

fn rfc3339(at: Timestamp) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
