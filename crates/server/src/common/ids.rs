//! Ids taken from a request's path.

use dashboard_core::{ApprovalId, ExecutionId};

use crate::error::ApiError;

/// An execution id from the URL; text that is not an id names no execution.
pub(crate) fn parse_execution_id(text: &str) -> Result<ExecutionId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("execution", text))
}

/// An approval id from the URL; text that is not an id names no approval.
pub(crate) fn parse_approval_id(text: &str) -> Result<ApprovalId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("approval", text))
}
