//! `GET /api/events`: the activity feed, oldest first after a cursor.

use actix_web::{HttpResponse, web};
use dashboard_core::Event;
use serde::{Deserialize, Serialize};

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
    Ok(HttpResponse::Ok().json(EventsPage { items, next_after }))
}

/// `GET /api/events`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventsPage {
    /// Oldest first.
    items: Vec<Event>,
    /// The `after` of the next request.
    next_after: u64,
}
