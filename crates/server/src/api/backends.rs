//! `GET /api/backends`: each configured backend, its kind and whether it is ready; never a secret.

use std::time::Duration;

use actix_web::HttpResponse;
use dashboard_backend_api::Readiness;
use serde::Serialize;

use crate::state::State;

/// How long one readiness check may take before the backend is shown as not answering.
const CHECK_LIMIT: Duration = Duration::from_secs(2);

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

/// Every backend with a fresh readiness check, the checks run concurrently.
pub(crate) async fn views(state: &State) -> Vec<BackendView> {
    let checks = state.dashboard.backends().iter().map(|(name, backend)| {
        let (name, backend) = (name.to_owned(), backend.clone());
        tokio::spawn(async move {
            let readiness = tokio::time::timeout(CHECK_LIMIT, backend.check())
                .await
                .unwrap_or_else(|_| Readiness::not_ready("the readiness check did not answer within 2 s"));
            BackendView { name, kind: backend.kind(), ready: readiness.ready, detail: readiness.detail }
        })
    });
    let mut views = Vec::new();
    for check in checks.collect::<Vec<_>>() {
        if let Ok(view) = check.await {
            views.push(view);
        }
    }
    views
}

/// `GET /api/backends`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BackendList {
    /// Sorted by name.
    items: Vec<BackendView>,
}

pub(crate) async fn list(state: State) -> HttpResponse {
    HttpResponse::Ok().json(BackendList { items: views(&state).await })
}
