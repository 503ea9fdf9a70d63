//! `/backends`: every configured backend, its kind, and whether it is ready now (each checked concurrently, 2 s at
//! most each — the same checks as `GET /api/backends`).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use crate::common::BackendView;
use crate::common::Caller;
use crate::state::State;

pub(crate) async fn show(state: State, caller: Caller) -> HttpResponse {
    let backends: Vec<BackendView> =
        state.dashboard.backend_readiness().await.into_iter().map(BackendView::from).collect();
    let mut context = super::page_context(&state, &caller, "backends", "Backends").await;
    context.insert("backends", &backends);
    state.render(StatusCode::OK, "backends.html", &context)
}
