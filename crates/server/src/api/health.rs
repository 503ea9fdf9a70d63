//! `GET /healthz`: 200 when the store takes reads and writes, else 503 with the reason (a full disk, a file made
//! read-only, executions holding changes the store refuses).

use actix_web::HttpResponse;
use serde_json::json;

use crate::state::State;

pub(crate) async fn healthz(state: State) -> HttpResponse {
    match state.dashboard.check_store().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(error) => {
            // The engine logs the start and the end of an episode of failing writes; a check that sees one is quiet.
            log::debug!("health check: {error}");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "detail": error.to_string()}))
        }
    }
}
