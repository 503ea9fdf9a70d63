//! Backends: the things that actually run an execution — a simulated agent, a local program, Codex, an HTTP agent
//! server, an OpenAI-compatible model server.
//!
//! A backend gets a [`RunContext`] (the execution, its rendered prompt, a log sink, a cancellation token, the
//! deadline) and answers with a [`RunOutcome`]. It never touches the store or the execution's status: the engine
//! owns both. It knows nothing of HTTP servers or SQL either, so a backend can be written, tested and used anywhere.
//! [`BackendRegistry`] holds the configured backends by name and is the single place that decides who may use which.

mod codex;
mod command;
mod context;
mod demo;
mod error;
mod http;
mod http_client;
mod limits;
mod openai;
mod process;
mod registry;

pub use codex::{CodexBackend, CodexConfig};
pub use command::{CommandBackend, CommandConfig};
pub use context::{Callback, LogSink, RunContext, log_channel};
pub use demo::DemoBackend;
pub use error::BackendError;
pub use http::{HttpBackend, HttpConfig};
pub use openai::{OpenAiApi, OpenAiBackend, OpenAiConfig};
pub use registry::{Action, BackendRegistry, Principal, Scope};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

/// An adapter that runs executions somewhere.
///
/// Contract:
/// - `trigger` runs one execution to its end and says how it ended; it writes logs only through `run.log`.
/// - When `run.cancel` fires (cancel, timeout or shutdown), it stops what it started — processes killed, requests
///   dropped — and returns promptly, with any outcome: the engine has already decided the status.
/// - It is called concurrently for different executions and must not assume it runs alone.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The kind of backend (`demo`, `command`, `codex`, `http`, `openai`, or your own).
    fn kind(&self) -> &'static str;

    /// Whether the backend can run executions now, and a word on why; shown on the backends page. Never
    /// includes a secret.
    async fn check(&self) -> Readiness;

    /// Runs one execution.
    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError>;
}

/// Whether a backend is ready, for the backends page and `GET /api/backends`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Readiness {
    /// Whether it can run executions now.
    pub ready: bool,
    /// A short human note: a version, an address, or what is missing.
    pub detail: String,
}

impl Readiness {
    /// Ready, with a note.
    pub fn ready(detail: impl Into<String>) -> Self {
        Self { ready: true, detail: detail.into() }
    }

    /// Not ready, with the reason.
    pub fn not_ready(detail: impl Into<String>) -> Self {
        Self { ready: false, detail: detail.into() }
    }
}

/// How a run ended, as the backend sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// It finished with an output and, if the backend reports it, usage figures.
    Succeeded {
        /// The result.
        output: Value,
        /// Token counts and the like.
        usage: Option<Value>,
    },
    /// It finished without a result.
    Failed {
        /// What went wrong, in a sentence the user can act on.
        error: String,
    },
    /// A remote agent took the work and will report through the callback endpoints; the engine waits for them (the
    /// timeout still applies).
    Detached,
}
