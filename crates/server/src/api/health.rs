//! `GET /healthz`: 200 when the store answers, else 503.

use actix_web::HttpResponse;
use serde_json::json;

use crate::state::State;

pub(crate) async fn healthz(state: State) -> HttpResponse {
    match state.dashboard.store().ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(error) => {
            log::warn!("health check: {error}");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "detail": "the store does not answer"}))
        }
    }
}
