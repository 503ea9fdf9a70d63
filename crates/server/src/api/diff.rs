//! `GET /api/executions/{id}/diff`: the unified diff of an execution's run, as its backend last reported it, stored
//! with its final status (`text/x-diff`; 204 when it has none).

use actix_web::{HttpResponse, web};

use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

/// The media type of a unified diff.
pub(crate) const DIFF_MEDIA_TYPE: &str = "text/x-diff; charset=utf-8";

pub(crate) async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    let store = state.dashboard.store();
    if store.get_execution(id).await?.is_none() {
        return Err(ApiError::not_found("execution", &id.to_string()));
    }
    Ok(match store.get_diff(id).await? {
        Some(diff) => HttpResponse::Ok().content_type(DIFF_MEDIA_TYPE).body(diff),
        // No diff is not an error: most runs change no file, and a run still going has not stored its diff yet.
        None => HttpResponse::NoContent().finish(),
    })
}
