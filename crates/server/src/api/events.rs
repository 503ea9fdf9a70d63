//! `GET /api/events`: the activity feed, oldest first after a cursor.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::limit;
use crate::error::ApiError;
use crate::state::State;

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct EventsQuery {
    /// The `next_after` of the previous answer: events after this id (default 0, from the first).
    after: Option<u64>,
    /// How many events at most (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

pub(crate) async fn list(state: State, query: web::Query<EventsQuery>) -> Result<HttpResponse, ApiError> {
    let after = query.after.unwrap_or(0);
    let limit = limit(query.limit, 100, 1000)?;
    let items = state.dashboard.store().list_events(after, limit).await?;
    let next_after = items.last().map_or(after, |event| event.id);
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_after": next_after})))
}
