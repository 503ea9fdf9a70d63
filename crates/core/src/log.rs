//! Log lines: what an execution printed or said, numbered 1, 2, 3… with no gaps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Timestamp};

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// A program's standard output.
    #[default]
    Stdout,
    /// A program's standard error.
    Stderr,
    /// What an agent said or did (messages, tool calls, reasoning).
    Agent,
    /// What the dashboard itself noted (started, retried, cancelled).
    System,
}

impl LogStream {
    /// Every stream.
    pub const ALL: [LogStream; 4] = [Self::Stdout, Self::Stderr, Self::Agent, Self::System];

    /// The stream as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Agent => "agent",
            Self::System => "system",
        }
    }
}

impl fmt::Display for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogStream {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|stream| stream.as_str() == text).ok_or_else(|| {
            CoreError::invalid_field(
                "stream",
                format!("unknown stream {text:?}; expected stdout, stderr, agent or system"),
            )
        })
    }
}

/// A log line not yet stored: the store gives it its number and time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLogLine {
    /// Where it came from.
    pub stream: LogStream,
    /// The text, one line, without its line break.
    pub message: String,
}

impl NewLogLine {
    /// A line on `stream`.
    pub fn new(stream: LogStream, message: impl Into<String>) -> Self {
        Self { stream, message: message.into() }
    }
}

/// A stored log line of one execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// 1 for the first line of the execution, then +1 for each line, with no gaps.
    pub seq: u64,
    /// When it was stored.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub ts: Timestamp,
    /// Where it came from.
    pub stream: LogStream,
    /// The text.
    pub message: String,
}
