//! `/activity`: the activity feed, newest first, paged backwards with an "older" link; live on its first page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::newest_events;
use super::view::EventView;
use crate::common::Caller;
use crate::common::html::error_page;
use crate::error::ApiError;
use crate::state::State;

/// How many events one page shows.
const PAGE_SIZE: usize = 50;

#[derive(Deserialize)]
pub(crate) struct ActivityQuery {
    /// Show events older than this id.
    before: Option<String>,
}

pub(crate) async fn show(state: State, caller: Caller, query: web::Query<ActivityQuery>) -> HttpResponse {
    let before = match query.before.as_deref().filter(|before| !before.is_empty()).map(str::parse::<u64>) {
        None => None,
        Some(Ok(before)) => Some(before),
        Some(Err(_)) => return error_page(&state, &ApiError::bad_query("before", "is not an event id")),
    };
    render(&state, &caller, before).await.unwrap_or_else(|error| error_page(&state, &error))
}

async fn render(state: &State, caller: &Caller, before: Option<u64>) -> Result<HttpResponse, ApiError> {
    let store = state.dashboard.store();
    let last_event_id = store.last_event_id().await?;
    let newest = match before {
        Some(before) => before.saturating_sub(1).min(last_event_id),
        None => last_event_id,
    };
    let page = newest_events(&store, newest, PAGE_SIZE).await?;

    let mut context = super::page_context(state, caller, "activity", "Activity").await;
    context.insert("events", &page.events.iter().map(EventView::new).collect::<Vec<_>>());
    context.insert("older_before", &page.older_before);
    // Only the first page follows new events: an older page is a look at the past.
    context.insert("is_live", &before.is_none());
    context.insert("last_event_id", &last_event_id);
    context.insert("feed_size", &PAGE_SIZE);
    Ok(state.render(StatusCode::OK, "activity.html", &context))
}
