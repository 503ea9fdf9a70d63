//! `StoreError`: what went wrong in a store, classified where it happens so callers can act on it.

use dashboard_core::{Approval, CoreError, Execution, ExecutionStatus};

/// An error of a store operation. Expected outcomes of lookups are `Option`s, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The function or execution the operation is about does not exist.
    #[error("{entity} {key} not found")]
    NotFound {
        /// `function` or `execution`.
        entity: &'static str,
        /// The id or name that was looked up.
        key: String,
    },
    /// Another function already has this name.
    #[error("a function named {name:?} already exists")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// An update said which version it expected, and the stored one is another.
    #[error("the function is at version {actual}, not {expected}")]
    VersionMismatch {
        /// The version the caller expected.
        expected: u32,
        /// The stored version.
        actual: u32,
    },
    /// A compare-and-set on an execution's status found another status than expected.
    #[error("the execution is {actual}, not {expected}")]
    StatusMismatch {
        /// The status the caller expected.
        expected: ExecutionStatus,
        /// The stored status.
        actual: ExecutionStatus,
    },
    /// The approval was decided already (or expired); nothing was written.
    #[error("the approval is {}, no longer pending", .existing.status)]
    AlreadyDecided {
        /// The approval as stored.
        existing: Box<Approval>,
    },
    /// An execution with this idempotency key exists already; nothing was written.
    #[error("an execution with this idempotency key exists already")]
    IdempotencyKeyExists {
        /// The execution created by the first request with that key.
        existing: Box<Execution>,
    },
    /// The change breaks a domain rule.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The store cannot do its work (disk, database, lost connection); nothing the caller sent is at fault.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, for the operator's log.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A [`StoreError::NotFound`] for an execution.
    pub fn execution_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "execution", key: id.to_string() }
    }

    /// A [`StoreError::NotFound`] for an approval.
    pub fn approval_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "approval", key: id.to_string() }
    }

    /// A [`StoreError::NotFound`] for a schedule.
    pub fn schedule_not_found(id: impl ToString) -> Self {
        Self::NotFound { entity: "schedule", key: id.to_string() }
    }

    /// A [`StoreError::NotFound`] for a function.
    pub fn function_not_found(key: impl ToString) -> Self {
        Self::NotFound { entity: "function", key: key.to_string() }
    }

    /// A [`StoreError::Unavailable`] wrapping `source`.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable { message: message.into(), source: Some(Box::new(source)) }
    }
}
