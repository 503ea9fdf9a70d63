//! The values that go in and out of a store: keys, queries, pages, updates and recorded changes.

use std::collections::BTreeMap;
use std::fmt;

use dashboard_core::{
    Approval, Delivery, DeliveryId, DeliveryStatus, Event, EventKind, Execution, ExecutionId,
    ExecutionStatus, Function, FunctionId, Item, Schedule, ScheduleId, Timestamp, now,
};
use serde::Serialize;
use serde_json::Value;

/// How a function is named in a lookup: by id or by name. Parsing text tries an id first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionKey {
    /// By id.
    Id(FunctionId),
    /// By name.
    Name(String),
}

impl FunctionKey {
    /// A key from URL text: a UUID is an id, anything else a name.
    pub fn parse(text: &str) -> Self {
        text.parse::<FunctionId>().map(Self::Id).unwrap_or_else(|_| Self::Name(text.to_owned()))
    }
}

impl fmt::Display for FunctionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(name) => name.fmt(f),
        }
    }
}

/// A change together with the event recorded for it in the same atomic step.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<T> {
    /// The stored value after the change.
    pub value: T,
    /// The event that records the change.
    pub event: Event,
}

/// A status change stored together with log lines and transcript items in one atomic step (see
/// [`DashboardStore::update_execution_with_logs`](crate::DashboardStore::update_execution_with_logs)).
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedUpdate {
    /// The changed execution and the event of its new status.
    pub recorded: Recorded<Execution>,
    /// The seq of the execution's last stored log line after the append (0 when it has none).
    pub last_seq: u64,
    /// The items as stored, one per id in the order of first mention (empty when none were given).
    pub items: Vec<Item>,
}

/// What a trigger stores: a new execution, always `queued`, attempt, retry link and session as given.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExecution {
    /// Its id (UUID v7).
    pub id: ExecutionId,
    /// The function's name.
    pub function: String,
    /// The function's id.
    pub function_id: FunctionId,
    /// The function's version.
    pub function_version: u32,
    /// The backend it will run on.
    pub backend: String,
    /// The validated input.
    pub input: Value,
    /// 1, or the retried execution's attempt + 1.
    pub attempt: u32,
    /// The retried execution.
    pub retry_of: Option<ExecutionId>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// Who triggered it.
    pub triggered_by: Option<String>,
    /// The execution it continues, for a follow-up turn.
    pub continues: Option<ExecutionId>,
    /// The agent's session, known at once for a follow-up turn (the continued execution's).
    pub session_id: Option<String>,
    /// A follow-up turn's prompt.
    pub prompt: Option<String>,
}

impl NewExecution {
    /// A first attempt of `function` (its current version) with `input`, on the function's own backend, with no
    /// retry link, idempotency key or caller: override the fields that differ.
    pub fn of(function: &Function, input: Value) -> Self {
        Self {
            id: ExecutionId::generate(),
            function: function.name.clone(),
            function_id: function.id,
            function_version: function.version,
            backend: function.backend.clone(),
            input,
            attempt: 1,
            retry_of: None,
            idempotency_key: None,
            triggered_by: None,
            continues: None,
            session_id: None,
            prompt: None,
        }
    }

    /// The execution as stored: `queued`, created now.
    pub fn into_execution(self, created_at: Timestamp) -> Execution {
        Execution {
            id: self.id,
            function: self.function,
            function_id: self.function_id,
            function_version: self.function_version,
            backend: self.backend,
            input: self.input,
            status: ExecutionStatus::Queued,
            output: None,
            error: None,
            usage: None,
            attempt: self.attempt,
            retry_of: self.retry_of,
            idempotency_key: self.idempotency_key,
            triggered_by: self.triggered_by,
            session_id: self.session_id,
            continues: self.continues,
            prompt: self.prompt,
            instance: None,
            created_at,
            started_at: None,
            finished_at: None,
        }
    }
}

/// A compare-and-set change of an execution's status.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionUpdate {
    /// The status the caller believes the execution is in.
    pub from: ExecutionStatus,
    /// The new status.
    pub to: ExecutionStatus,
    /// The output (on `succeeded`).
    pub output: Option<Value>,
    /// The error (on `failed`, `timed_out`, `cancelled`).
    pub error: Option<String>,
    /// Usage figures reported by the backend.
    pub usage: Option<Value>,
    /// The run's unified diff, when its backend reported one: stored beside the execution, not in it (see
    /// [`DashboardStore::get_diff`](crate::DashboardStore::get_diff)), so lists of executions stay small.
    pub diff: Option<String>,
    /// The instance that runs it (set with `running`): stored on the execution as `instance`; `None` keeps the one
    /// stored.
    pub instance: Option<String>,
}

impl ExecutionUpdate {
    /// A change from `from` to `to` with nothing else set.
    pub fn new(from: ExecutionStatus, to: ExecutionStatus) -> Self {
        Self { from, to, output: None, error: None, usage: None, diff: None, instance: None }
    }

    /// With the instance that runs it.
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// With an output.
    pub fn output(mut self, output: Value) -> Self {
        self.output = Some(output);
        self
    }

    /// With an error.
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// With usage figures.
    pub fn usage(mut self, usage: Option<Value>) -> Self {
        self.usage = usage;
        self
    }

    /// With the run's diff, when there is one.
    pub fn diff(mut self, diff: Option<String>) -> Self {
        self.diff = diff;
        self
    }

    /// Applies the change to `execution` (already checked by the caller), setting the times it implies. The diff is
    /// not part of the execution: the store keeps it apart.
    pub fn apply_to(self, execution: &mut Execution) {
        let at = now();
        execution.status = self.to;
        // `running` again after `waiting` keeps the time it first started.
        if self.to == ExecutionStatus::Running && self.from == ExecutionStatus::Queued {
            execution.started_at = Some(at);
        }
        if self.to.is_terminal() {
            execution.finished_at = Some(at);
        }
        if self.output.is_some() {
            execution.output = self.output;
        }
        if self.error.is_some() {
            execution.error = self.error;
        }
        if self.usage.is_some() {
            execution.usage = self.usage;
        }
        if self.instance.is_some() {
            execution.instance = self.instance;
        }
    }
}

/// A change of an approval, stored with what it causes in one atomic step (see
/// [`DashboardStore::create_approval`](crate::DashboardStore::create_approval) and
/// [`DashboardStore::decide_approval`](crate::DashboardStore::decide_approval)).
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalChange {
    /// The approval as stored after the change.
    pub approval: Approval,
    /// Its execution as stored after the change (`waiting` or `running` again, when the change moved it).
    pub execution: Execution,
    /// The events recorded, in id order: `approval.requested` or `approval.decided` (both, for an approval stored
    /// already decided), and `execution.waiting` or `execution.resumed` when the execution moved.
    pub events: Vec<Event>,
    /// The transcript item stored with the change, if one was given.
    pub items: Vec<Item>,
}

/// Which approvals [`DashboardStore::list_approvals`](crate::DashboardStore::list_approvals) returns.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ApprovalQuery {
    /// Only pending ones (oldest first); otherwise all of them, newest first.
    pub pending_only: bool,
    /// Only this execution's.
    pub execution: Option<ExecutionId>,
    /// At most this many (at least 1).
    pub limit: usize,
}

/// Whose spending [`DashboardStore::spend_since`](crate::DashboardStore::spend_since) sums.
#[derive(Clone, Debug, PartialEq)]
pub struct SpendQuery {
    /// Executions created at or after this time.
    pub since: Timestamp,
    /// Only this function's (by name).
    pub function: Option<String>,
    /// Only those triggered by this token (by name).
    pub triggered_by: Option<String>,
}

/// What a set of executions spent, summed from their stored usage.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize)]
pub struct Spend {
    /// The sum of their `usage.cost_usd`.
    pub cost_usd: f64,
    /// The sum of their tokens: `usage.total_tokens`, else `input_tokens + output_tokens`.
    pub tokens: u64,
    /// How many executions were summed (those without usage included).
    pub executions: u64,
}

/// What one function's executions created on one UTC day spent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailySpend {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The function, by name.
    pub function: String,
    /// What its executions of that day spent.
    pub spend: Spend,
}

/// Filters and a page of the executions list.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExecutionQuery {
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only this function (by name).
    pub function: Option<String>,
    /// Only this backend.
    pub backend: Option<String>,
    /// Only executions whose input, as JSON text, contains this text (case-insensitive).
    pub text: Option<String>,
    /// Only the turns of this agent session (`Execution::session_id`).
    pub session_id: Option<String>,
    /// Only executions older than this one (the cursor).
    pub before: Option<ExecutionId>,
    /// At most this many (at least 1).
    pub limit: usize,
}

/// A page of executions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecutionPage {
    /// Newest first.
    pub items: Vec<Execution>,
    /// The cursor of the next page, `None` on the last one.
    pub next_cursor: Option<ExecutionId>,
}

/// How many executions are in each status; statuses with none are 0.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct StatusCounts(pub BTreeMap<ExecutionStatus, u64>);

impl StatusCounts {
    /// The count of one status.
    pub fn get(&self, status: ExecutionStatus) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }

    /// The count of all executions.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// A schedule's fire, as [`DashboardStore::fire_schedule`](crate::DashboardStore::fire_schedule) stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleFire {
    /// The schedule.
    pub id: ScheduleId,
    /// The due time being fired: the schedule's `next_run_at` exactly as the store returned it.
    pub due: Timestamp,
    /// The next due time after this fire (`None`: the expression has no later time).
    pub next: Option<Timestamp>,
    /// What the fire does.
    pub action: FireAction,
}

/// What a fire does.
#[derive(Clone, Debug, PartialEq)]
// One value per fire, moved once: boxing the execution would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum FireAction {
    /// Queues this execution (as [`DashboardStore::create_execution`](crate::DashboardStore::create_execution)
    /// stores one, with its `execution.queued` event), then records `schedule.fired`.
    Run(NewExecution),
    /// Creates nothing: counts the skip on the schedule and records `schedule.skipped` with the reason.
    Skip {
        /// Why, in one sentence.
        reason: String,
    },
}

/// A fire that was stored.
#[derive(Clone, Debug, PartialEq)]
pub struct FiredSchedule {
    /// The schedule after the fire.
    pub schedule: Schedule,
    /// The execution it queued (a [`FireAction::Run`]).
    pub execution: Option<Execution>,
    /// The events recorded, in id order: `execution.queued` then `schedule.fired`, or `schedule.skipped`.
    pub events: Vec<Event>,
}

/// Which recorded events a `[[notifications]]` entry delivers: the store writes a [`Delivery`] for each event that
/// matches a rule, in the same atomic step as the event (see
/// [`DashboardStore::set_outbox_rules`](crate::DashboardStore::set_outbox_rules)).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRule {
    /// The notification's name.
    pub notification: String,
    /// The kinds of event it delivers.
    pub kinds: Vec<EventKind>,
    /// Only events about these functions (by name); all when `None`.
    pub functions: Option<Vec<String>>,
}

impl OutboxRule {
    /// Whether `event` is one this rule delivers.
    pub fn matches(&self, event: &Event) -> bool {
        self.kinds.contains(&event.kind)
            && match (&self.functions, &event.function) {
                (None, _) => true,
                (Some(functions), Some(function)) => functions.iter().any(|name| name == function),
                (Some(_), None) => false,
            }
    }
}

/// The deliveries that `rules` call for when `events` are recorded at `at`, in event order then rule order: a helper
/// for implementations, so that every store writes the same outbox.
pub fn deliveries_for(rules: &[OutboxRule], events: &[Event], at: Timestamp) -> Vec<Delivery> {
    events
        .iter()
        .flat_map(|event| {
            rules
                .iter()
                .filter(|rule| rule.matches(event))
                .map(|rule| Delivery::new(&rule.notification, event.clone(), at))
        })
        .collect()
}

/// How an attempt to deliver ended, as the sender tells
/// [`DashboardStore::finish_delivery`](crate::DashboardStore::finish_delivery).
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx: the delivery is `delivered`.
    Delivered {
        /// Its status code.
        response_status: u16,
    },
    /// The attempt failed; try again at `at`.
    Retry {
        /// When the next attempt is due.
        at: Timestamp,
        /// What went wrong.
        error: String,
        /// The receiver's status code, if it answered.
        response_status: Option<u16>,
    },
    /// The attempt failed and it was the last: the delivery is `failed`, and `notification.failed` is recorded.
    GiveUp {
        /// What went wrong.
        error: String,
        /// The receiver's status code, if it answered.
        response_status: Option<u16>,
    },
}

impl DeliveryOutcome {
    /// Whether the delivery is given up (and `notification.failed` to be recorded).
    pub fn is_given_up(&self) -> bool {
        matches!(self, Self::GiveUp { .. })
    }

    /// Applies the outcome of an attempt that ended at `at` to `delivery` (checked by the caller to be pending and
    /// held): one more attempt, and the status, error, answer and times the outcome names. A finished delivery keeps
    /// its last `next_attempt_at`; its status says that no attempt follows. A helper for implementations, so that
    /// every store writes the same.
    pub fn apply_to(self, delivery: &mut Delivery, at: Timestamp) {
        delivery.attempts = delivery.attempts.saturating_add(1);
        match self {
            Self::Delivered { response_status } => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.response_status = Some(response_status);
                delivery.finished_at = Some(at);
            }
            Self::Retry { at: next, error, response_status } => {
                delivery.next_attempt_at = Some(next);
                delivery.last_error = Some(error);
                delivery.response_status = response_status;
            }
            Self::GiveUp { error, response_status } => {
                delivery.status = DeliveryStatus::Failed;
                delivery.last_error = Some(error);
                delivery.response_status = response_status;
                delivery.finished_at = Some(at);
            }
        }
    }
}

/// A delivery after [`DashboardStore::finish_delivery`](crate::DashboardStore::finish_delivery).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedDelivery {
    /// The delivery as stored.
    pub delivery: Delivery,
    /// `notification.failed`, when it was given up.
    pub event: Option<Event>,
}

/// Which deliveries [`DashboardStore::list_deliveries`](crate::DashboardStore::list_deliveries) returns: newest
/// first (by id), at most `limit` (a limit of 0 is read as 1).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DeliveryQuery {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this notification's (by name).
    pub notification: Option<String>,
    /// Only deliveries of events about this execution.
    pub execution: Option<ExecutionId>,
    /// Only deliveries older than this one (the cursor).
    pub before: Option<DeliveryId>,
    /// At most this many (at least 1).
    pub limit: usize,
}
