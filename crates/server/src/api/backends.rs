//! `GET /api/backends`: each configured backend, its kind and whether it is ready; never a secret.

use actix_web::HttpResponse;
use dashboard_engine::BackendReadiness;
use serde::Serialize;

use crate::state::State;

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

/// `GET /api/backends`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BackendList {
    /// Sorted by name.
    items: Vec<BackendView>,
}

pub(crate) async fn list(state: State) -> HttpResponse {
    let items = state.dashboard.backend_readiness().await.into_iter().map(BackendView::from).collect();
    HttpResponse::Ok().json(BackendList { items })
}
