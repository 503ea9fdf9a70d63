//! A backend as the API and the backends page show it: its name, kind and readiness, never a secret.

use dashboard_engine::BackendReadiness;
use serde::Serialize;

/// A backend as the API and the backends page show it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Backend)]
pub(crate) struct BackendView {
    /// The name functions and triggers use.
    pub(crate) name: String,
    /// `demo`, `command`, `codex`, `http` or `openai`.
    pub(crate) kind: &'static str,
    /// Whether its readiness check passed.
    pub(crate) ready: bool,
    /// What the check found, in a sentence.
    pub(crate) detail: String,
}

impl From<BackendReadiness> for BackendView {
    fn from(backend: BackendReadiness) -> Self {
        let BackendReadiness { name, kind, readiness } = backend;
        Self { name, kind, ready: readiness.ready, detail: readiness.detail }
    }
}
