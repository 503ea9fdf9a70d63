//! `ClientError`: what can go wrong talking to a dashboard — the API's own error answers, kept as they came, and the
//! failures on the way (connecting, reading, a stream that never came back).

use serde::Deserialize;
use serde_json::Value;

/// An error answer of the JSON API: `{"error": {"code", "message", "details"}}` (docs/api.md, "Errors").
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ApiError {
    /// The stable kebab-case code (`not-found`, `execution-finished`, `invalid-input`…).
    pub code: String,
    /// One sentence for a person.
    pub message: String,
    /// What the code is about (`field`, `entity`, `key`…); `null` when the error has none.
    #[serde(default)]
    pub details: Value,
}

/// What went wrong talking to a dashboard.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL cannot be used.
    #[error("{url:?} is not a dashboard URL: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The dashboard answered with an error of the API.
    #[error("{method} {path}: {status} {}: {}", error.code, error.message)]
    Api {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The error as the API told it.
        error: ApiError,
    },
    /// The dashboard answered with an error status but without the API's JSON error (a proxy in between, or not a
    /// dashboard at all).
    #[error("{method} {path}: {status} with no API error in the answer: {body}")]
    Status {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The request could not be sent or its answer not read: the server is down, unreachable, or went away.
    #[error("{method} {url}: {source}")]
    Transport {
        /// The request's method.
        method: &'static str,
        /// The whole URL.
        url: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// A success answer that is not the JSON expected.
    #[error("{method} {path}: the answer is not what the API sends: {source}")]
    Decode {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A log stream that dropped could not be opened again within the follow's reconnect window.
    #[error(
        "the log stream of {execution_id} could not be resumed after line {after} for {seconds} s: {last}"
    )]
    StreamLost {
        /// The execution followed.
        execution_id: String,
        /// The last line seen.
        after: u64,
        /// How long it tried.
        seconds: u64,
        /// The last failure.
        #[source]
        last: Box<ClientError>,
    },
    /// The HTTP client could not be built (its TLS setup).
    #[error("could not build an HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl ClientError {
    /// The API's error, when the dashboard answered with one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of an error answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying the same request again later may succeed: the server could not be reached or read, or it
    /// answered 5xx (a restart, a store outage, `too-many-streams`).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Api { status, .. } | Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// The body of an error answer: `{"error": {...}}`.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ApiError,
}
