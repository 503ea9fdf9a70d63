//! The seam between the engine and the things that run executions: the [`Backend`] trait, the [`RunContext`] a
//! backend gets for one run (the execution, its rendered prompt, a log sink, a cancellation token, the deadline), the
//! [`RunOutcome`] it answers with, and the [`BackendRegistry`] that holds the configured backends by name and is the
//! single place that decides who ([`Principal`]) may do what ([`Action`]) with which.
//!
//! The crate exists so that the engine, and anyone who writes a backend of their own, compile only this contract —
//! not the built-in adapters (`dashboard-backends`) and what they pull in. It must never depend on an HTTP client,
//! TLS, process or signal code, or a template engine (no reqwest, rustls, nix or tera): `cargo tree -p
//! dashboard-backend-api` lists none. A backend never touches the store or an execution's status: the engine owns
//! both.

mod approval;
mod context;
mod error;
mod registry;

pub use approval::{ApprovalAnswer, ApprovalGate, ApprovalRequest, ApproveAll};
pub use context::{
    Callback, DIFF_CUT_MARKER, LogSink, MAX_DIFF_BYTES, NoMeter, RunContext, RunEntry, UsageMeter,
    bound_diff, log_channel,
};
pub use error::BackendError;
pub use registry::{Action, BackendRegistry, Principal, Scope};

use async_trait::async_trait;
use dashboard_core::ApprovalPolicy;
use serde::Serialize;
use serde_json::Value;

/// An adapter that runs executions somewhere.
///
/// Contract:
/// - `trigger` runs one execution to its end and says how it ended; it writes logs only through `run.log`, and
///   reports transcript items (what the agent did, structured) only through `run.item`.
/// - When `run.cancel` fires (cancel, timeout or shutdown), it stops what it started — processes killed, requests
///   dropped — and returns promptly, with any outcome: the engine has already decided the status.
/// - It is called concurrently for different executions and must not assume it runs alone.
/// - When its agent asks permission, it asks through `run.ask_approval` (which applies the function's policy and may
///   wait for a person) and tells the agent the answer; it never decides by itself.
/// - An agent with conversations reports its session id through `run.session` as soon as it knows it, and its diff
///   through `run.diff`. If it says it [`can_continue`](Backend::can_continue), a run with `run.resume` set is a new
///   turn of that session, with `run.prompt` the new turn's prompt.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The kind of backend, shown on the backends page: a built-in adapter's (`dashboard-backends`), or a name of
    /// your own.
    fn kind(&self) -> &'static str;

    /// Whether whoever may trigger on this backend can make the machine run programs of their choosing (a local
    /// command, a coding agent): the server warns at start when such a backend is reachable without a token. The
    /// default is no.
    fn runs_local_programs(&self) -> bool {
        false
    }

    /// Whether the backend can run a follow-up turn of a session it reported (`run.resume`): the engine refuses a
    /// continue on a backend that cannot. The default is no.
    fn can_continue(&self) -> bool {
        false
    }

    /// Why a function with approval policy `policy` cannot run on this backend, if it cannot: a backend set up so
    /// that its agent never asks (Codex with `approval = "never"`) refuses `ask` and `deny`, which would never apply.
    /// The engine refuses such a function at create/update and such a run at start, with this reason. The default is
    /// none.
    fn refuses_approval_policy(&self, policy: ApprovalPolicy) -> Option<String> {
        let _ = policy;
        None
    }

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
