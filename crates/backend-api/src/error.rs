//! `BackendError`: why a backend could not run an execution to a normal end.

/// An error of a backend. A run that ends badly in an expected way (a program exiting non-zero, an agent reporting
/// failure) is a [`crate::RunOutcome::Failed`], not an error; errors are for runs that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend is misconfigured or cannot be reached (binary missing, server down).
    #[error("{0}")]
    Unavailable(String),
    /// The input or the function's config does not fit what the backend needs.
    #[error("{0}")]
    InvalidInput(String),
    /// The run stopped because the cancellation token fired.
    #[error("stopped")]
    Cancelled,
    /// Anything else, with its cause.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The caller may not do this with this backend.
    #[error("{reason}")]
    Forbidden {
        /// The backend.
        backend: String,
        /// Why, as a sentence naming the token and what it lacks.
        reason: String,
    },
}
