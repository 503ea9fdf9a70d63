//! `GET /healthz`: 200 when the store takes reads and writes, else 503 with the reason (a full disk, a file made
//! read-only, executions holding changes the store refuses).

use actix_web::HttpResponse;
use serde::Serialize;

use crate::state::State;

/// `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

pub(crate) async fn healthz(state: State) -> HttpResponse {
    match state.dashboard.check_store().await {
        Ok(()) => HttpResponse::Ok().json(Health { status: "ok", detail: None }),
        Err(error) => {
            // The engine logs the start and the end of an episode of failing writes; a check that sees one is quiet.
            log::debug!("health check: {error}");
            HttpResponse::ServiceUnavailable()
                .json(Health { status: "unavailable", detail: Some(error.to_string()) })
        }
    }
}
