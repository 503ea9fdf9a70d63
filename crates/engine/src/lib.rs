//! The embeddable control plane of Agent Dashboard: [`Dashboard`].
//!
//! The engine is the only writer of execution status. Every change goes through it, is checked against the status
//! machine of `dashboard-core`, is stored together with its activity event by the store in one atomic step, and is
//! then published on the event bus. It runs executions on their backends with a global and a per-function concurrency
//! limit, stops them on cancel, timeout and shutdown, and recovers after a restart. It knows nothing of HTTP, so
//! another Rust service can embed it: `Dashboard::builder().store(...).backend("demo", ...).build()`.

mod approvals;
mod budgets;
mod builder;
mod bus;
mod callbacks;
mod cluster;
mod compiled;
mod dashboard;
mod error;
mod functions;
mod health;
mod inner;
mod json_size;
mod metrics;
mod outbox;
mod prompt;
mod reader;
mod retention;
mod run;
mod scheduler;
mod schedules;

pub use approvals::{
    DECIDED_BY_DASHBOARD, DECIDED_BY_POLICY, DECIDED_BY_SESSION_GRANT, DecideRequest, approval_item_id,
};
pub use budgets::{Exhausted, Price};
pub use builder::DashboardBuilder;
pub use bus::BusMessage;
pub use callbacks::StatusReport;
pub use cluster::{ClusterSettings, DEFAULT_LEASE};
pub use dashboard::{
    BackendReadiness, ContinueRequest, Dashboard, READINESS_CHECK_LIMIT, RecoveryReport, TriggerRequest,
    Triggered,
};
pub use error::EngineError;
pub use metrics::{DURATION_SECONDS_BOUNDS, EngineMetrics, StatusCount};
pub use prompt::{
    MAX_BRACKET_DEPTH, MAX_LOOP_ITERATIONS, MAX_NESTING, MAX_OPERATORS_PER_TAG, MAX_PROMPT_BYTES,
    MAX_RENDER_TIME, MAX_VALUE_BYTES, MAX_VALUES_PER_EXPRESSION,
};
pub use reader::StoreReader;
pub use retention::RetentionPolicy;
pub use schedules::Ensured;

/// The error of an execution that was running when the server stopped.
pub const INTERRUPTED_ERROR: &str = "interrupted: the server stopped while this execution was running";

/// The error of an execution whose instance stopped renewing its lease (it died, or lost the store) while it ran: another
/// instance, or the same one restarted under its id, ends it so (DESIGN.md §13).
pub const INSTANCE_STOPPED_ERROR: &str = "interrupted: the instance running this execution stopped";
