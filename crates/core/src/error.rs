//! `CoreError`: a broken domain rule, named precisely enough for the caller to tell the user which field is wrong.

use crate::ExecutionStatus;

/// A domain rule that a value breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A field of a function or request has a value the rules do not allow.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field, as a dotted path (`name`, `input_schema`, `timeout_secs`).
        field: String,
        /// One sentence on what is wrong.
        message: String,
    },
    /// The input of a trigger does not satisfy the function's input schema.
    #[error("input{path}: {message}")]
    InputRejected {
        /// A JSON pointer to the failing part of the input (`/issue_url`), empty for the whole input.
        path: String,
        /// What the schema wanted.
        message: String,
    },
    /// The status machine does not allow this change.
    #[error("an execution cannot go from {from} to {to}")]
    IllegalTransition {
        /// The current status.
        from: ExecutionStatus,
        /// The status asked for.
        to: ExecutionStatus,
    },
}

/// An error and every cause under it, as one line: `outer: cause: root cause`. Libraries such as tera keep the
/// useful part (which variable, which line) in the causes, which `to_string` alone drops.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl CoreError {
    /// An [`CoreError::InvalidField`] for `field`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), message: message.into() }
    }
}
