//! `GET /api/backends`: each configured backend, its kind and whether it is ready; never a secret.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::common::BackendView;
use crate::state::State;

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
