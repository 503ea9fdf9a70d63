//! `/`: the overview — executions counted by status, the latest executions, the live activity feed, and what the
//! functions' executions cost per day.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use dashboard_core::ExecutionStatus;
use dashboard_store::ExecutionQuery;
use serde::Serialize;

use super::chart;
use super::newest_events;
use super::spend_chart;
use super::view::{EventView, ExecutionRow};
use crate::common::Caller;
use crate::common::html::error_page;
use crate::error::ApiError;
use crate::state::State;

/// How many executions the overview lists.
const RECENT_EXECUTIONS: usize = 10;
/// How many events the overview's feed starts with.
const RECENT_EVENTS: usize = 20;

/// One tile of the counts.
#[derive(Serialize)]
struct StatusCount {
    status: ExecutionStatus,
    count: u64,
}

pub(crate) async fn show(state: State, caller: Caller) -> HttpResponse {
    render(&state, &caller).await.unwrap_or_else(|error| error_page(&state, &error))
}

async fn render(state: &State, caller: &Caller) -> Result<HttpResponse, ApiError> {
    let store = state.dashboard.store();
    let counts = store.count_by_status().await?;
    let recent =
        store.list_executions(&ExecutionQuery { limit: RECENT_EXECUTIONS, ..Default::default() }).await?;
    let last_event_id = store.last_event_id().await?;
    let feed = newest_events(&store, last_event_id, RECENT_EVENTS).await?;

    let mut context = super::page_context(state, caller, "overview", "Overview").await;
    let tiles: Vec<StatusCount> = ExecutionStatus::ALL
        .into_iter()
        .map(|status| StatusCount { status, count: counts.get(status) })
        .collect();
    context.insert("counts", &tiles);
    context.insert("total", &counts.total());
    context.insert("executions", &recent.items.iter().map(ExecutionRow::new).collect::<Vec<_>>());
    context.insert("events", &feed.events.iter().map(EventView::new).collect::<Vec<_>>());
    context.insert("last_event_id", &last_event_id);
    context.insert("feed_size", &RECENT_EVENTS);
    context.insert("function_count", &store.list_functions().await?.len());
    let now = dashboard_core::now();
    let (day, is_cut) = chart::recent_executions(&store, now).await?;
    context.insert("hourly", &chart::hourly(&day, now));
    let durations = chart::durations(&day);
    context.insert("durations_height", &(chart::DURATION_ROW * durations.len() as f64));
    context.insert("durations", &durations);
    context.insert("duration_bar_x", &chart::duration_bar_x());
    context.insert("is_chart_cut", &is_cut);
    context.insert("chart_limit", &chart::MAX_EXECUTIONS);
    let spend = store.daily_spend(spend_chart::since(now)).await?;
    context.insert("spend", &spend_chart::daily(&spend, now));
    context.insert("spend_days", &spend_chart::DAYS);
    context.insert("usage_docs_url", super::usage_view::USAGE_DOCS_URL);
    Ok(state.render(StatusCode::OK, "overview.html", &context))
}
