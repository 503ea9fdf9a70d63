//! `EngineError`: why the engine refused or could not do what it was asked, in variants the server maps to answers.

use dashboard_core::{ApprovalId, ApprovalStatus, CoreError, ExecutionId, ExecutionStatus};
use dashboard_store::StoreError;

/// An error of a [`crate::Dashboard`] operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The function or execution named does not exist.
    #[error("{entity} {key} not found")]
    NotFound {
        /// `function` or `execution`.
        entity: &'static str,
        /// The id or name asked for.
        key: String,
    },
    /// A value breaks a rule; the error names the field.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// Another function has this name.
    #[error("a function named {name:?} already exists")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An update expected another version.
    #[error("the function is at version {actual}, not {expected}")]
    VersionMismatch {
        /// Expected by the caller.
        expected: u32,
        /// Stored.
        actual: u32,
    },
    /// The execution has finished; it can no longer be cancelled.
    #[error("execution {id} has already finished ({status})")]
    AlreadyFinished {
        /// The execution.
        id: ExecutionId,
        /// Its terminal status.
        status: ExecutionStatus,
    },
    /// The execution has not finished; it cannot be retried yet.
    #[error("execution {id} has not finished yet ({status}); cancel it first or wait")]
    NotFinished {
        /// The execution.
        id: ExecutionId,
        /// Its status.
        status: ExecutionStatus,
    },
    /// A continue of an execution whose backend never reported a session: there is no conversation to go on with.
    #[error("execution {id} has no session to continue: its backend reported none")]
    NoSession {
        /// The execution.
        id: ExecutionId,
    },
    /// A continue on a backend that cannot run a follow-up turn (`Backend::can_continue`).
    #[error("backend {backend:?} cannot continue a session")]
    CannotContinue {
        /// The backend.
        backend: String,
    },
    /// The approval was decided already, or expired: a decision comes too late.
    #[error("approval {id} is {status} already; it can no longer be decided")]
    ApprovalDecided {
        /// The approval.
        id: ApprovalId,
        /// How it ended.
        status: ApprovalStatus,
    },
    /// A budget is spent: the trigger, retry or continue would spend more.
    #[error("budget exhausted: {} spent today", crate::budgets::describe(budget, *spent, *limit))]
    BudgetExhausted {
        /// Which budget (`daily_cost_usd of function triage`).
        budget: String,
        /// What was spent.
        spent: f64,
        /// The limit.
        limit: f64,
    },
    /// The idempotency key was used before with another request.
    #[error("idempotency key {key:?} was already used for another request (execution {existing})")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The execution created by the first request.
        existing: ExecutionId,
    },
    /// The caller may not do this with this backend (its scope or its list of backends).
    #[error("{reason}")]
    Forbidden {
        /// The backend.
        backend: String,
        /// Why, naming the token and what it lacks.
        reason: String,
    },
    /// The engine is shutting down and takes no new work.
    #[error("the dashboard is shutting down and takes no new executions")]
    ShuttingDown,
    /// The execution's status changed meanwhile (another change came first): the change asked for was not made.
    #[error("the execution changed status meanwhile: it is {actual} now")]
    StatusChanged {
        /// The status it has now.
        actual: ExecutionStatus,
    },
    /// The store cannot be reached, or refuses writes (a full disk, a read-only file); worth trying again later.
    #[error(transparent)]
    StoreUnavailable(StoreError),
    /// The store failed otherwise.
    #[error(transparent)]
    Store(StoreError),
}

impl EngineError {
    pub(crate) fn execution_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "execution", key: id.to_string() }
    }

    pub(crate) fn approval_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "approval", key: id.to_string() }
    }

    pub(crate) fn schedule_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "schedule", key: id.to_string() }
    }

    pub(crate) fn function_not_found(key: impl ToString) -> Self {
        Self::NotFound { entity: "function", key: key.to_string() }
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { entity, key } => Self::NotFound { entity, key },
            StoreError::DuplicateName { name } => Self::DuplicateName { name },
            StoreError::VersionMismatch { expected, actual } => Self::VersionMismatch { expected, actual },
            StoreError::Invalid(error) => Self::Invalid(error),
            StoreError::StatusMismatch { actual, .. } => Self::StatusChanged { actual },
            StoreError::AlreadyDecided { existing } => {
                Self::ApprovalDecided { id: existing.id, status: existing.status }
            }
            error @ StoreError::Unavailable { .. } => Self::StoreUnavailable(error),
            other => Self::Store(other),
        }
    }
}
