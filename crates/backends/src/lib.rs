//! The built-in backends: the things that actually run an execution — a simulated agent (`demo`), a local program
//! (`command`), the Codex CLI (`codex`), Claude Code (`claude`), an HTTP agent server (`http`, also `agentkit`), an
//! OpenAI-compatible model server (`openai`).
//!
//! Each adapter is a module that owns its settings; [`BackendConfig`] is the one list of them, read from a
//! `[[backends]]` entry by its `kind` and built into a backend. Adding a kind is one module and one variant.
//!
//! The contract they implement — `Backend`, `RunContext`, `RunOutcome`, `BackendRegistry` — lives in
//! `dashboard-backend-api`, which the engine and backends of your own depend on without compiling these adapters,
//! their HTTP client, TLS and process code. A backend never touches the store or an execution's status, and knows
//! nothing of HTTP servers or SQL.

mod claude;
mod codex;
mod command;
mod config;
mod demo;
mod http;
mod http_client;
mod limits;
mod openai;
mod process;

pub use claude::{ClaudeBackend, ClaudeConfig};
pub use codex::{CodexApproval, CodexBackend, CodexConfig, CodexMode, CodexSandbox};
pub use command::{CommandBackend, CommandConfig};
pub use config::BackendConfig;
pub use demo::{DemoBackend, DemoConfig};
pub use http::{HttpBackend, HttpConfig};
pub use openai::{OpenAiApi, OpenAiBackend, OpenAiConfig};
