//! The HTML pages (server-rendered with tera, usable without JavaScript) and the form posts behind them.
//!
//! Every handler reads through the engine's store or acts through the engine, turns what it gets into plain view
//! structs (times and durations already formatted, see `view.rs`), and renders one template. Forms answer
//! 303 See Other to the page they lead to, or re-render themselves with the error next to what the user typed.

pub(crate) mod activity;
mod approval_view;
pub(crate) mod approvals;
pub(crate) mod backends;
pub(crate) mod bulk;
mod chart;
pub(crate) mod executions;
pub(crate) mod function_form;
pub(crate) mod functions;
pub(crate) mod login;
pub(crate) mod notifications;
pub(crate) mod overview;
pub(crate) mod schedules;
mod schema_form;
pub(crate) mod sessions;
mod spend_chart;
mod transcript;
mod usage_view;
mod view;

use dashboard_core::Event;
use dashboard_engine::StoreReader;
use dashboard_store::StoreError;

use crate::common::Caller;
use crate::common::html::base_context;
use crate::error::ApiError;
use crate::state::AppState;

/// The context a page for `caller` starts from: [`base_context`], and the header's count of pending approvals (one
/// count of the store per page; when the store cannot say, the header shows none rather than failing the page).
async fn page_context(state: &AppState, caller: &Caller, nav: &str, title: &str) -> tera::Context {
    let mut context = base_context(Some(caller), nav, title);
    match state.dashboard.store().count_pending_approvals().await {
        Ok(count) => context.insert("pending_approvals", &count),
        Err(error) => log::warn!("the header's count of pending approvals: {error}"),
    }
    context
}

/// A form's error, shown next to the form: the sentence, and the field to mark when one is named.
#[derive(Debug, serde::Serialize)]
struct FormError {
    message: String,
    field: Option<String>,
}

impl FormError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { message: format!("{field}: {}", message.into()), field: Some(field.to_owned()) }
    }
}

/// Puts a form's error in the context: `error` (null when none) and `error_field` (empty when none), the name of
/// the field the template marks as invalid.
fn insert_form_error(context: &mut tera::Context, error: Option<&FormError>) {
    context.insert("error", &error);
    context.insert("error_field", error.and_then(|error| error.field.as_deref()).unwrap_or(""));
}

impl From<&ApiError> for FormError {
    fn from(error: &ApiError) -> Self {
        let field = error.details.get("field").and_then(|field| field.as_str()).map(str::to_owned);
        Self { message: error.message.clone(), field }
    }
}

/// A page of the activity feed: up to `count` events with ids up to `newest` (inclusive), newest first, and the
/// cursor of the next older page when there may be one.
struct EventPage {
    events: Vec<Event>,
    older_before: Option<u64>,
}

/// How many windows [`newest_events`] looks back through before it hands the rest to the "older" link.
const MAX_EVENT_WINDOWS: u32 = 12;

/// The newest `count` events with `id <= newest`, newest first.
///
/// The store lists events oldest first after a cursor, so this reads windows of ids backwards from `newest`: a
/// window `(low, high]` holds at most `high - low` events (ids are distinct integers), so asking for that many after
/// `low` returns all of them. Windows double in size so that gaps left by pruning cost few reads.
async fn newest_events(store: &StoreReader, newest: u64, count: usize) -> Result<EventPage, StoreError> {
    let mut events = Vec::with_capacity(count);
    let mut high = newest;
    let mut width = count.max(1) as u64;
    for _ in 0..MAX_EVENT_WINDOWS {
        if events.len() >= count || high == 0 {
            break;
        }
        let low = high.saturating_sub(width);
        let limit = usize::try_from(high - low).unwrap_or(usize::MAX);
        let mut window = store.list_events(low, limit).await?;
        window.retain(|event| event.id <= high);
        events.extend(window.into_iter().rev().take(count - events.len()));
        high = low;
        width = width.saturating_mul(2);
    }
    let older_before = match events.last() {
        Some(oldest) if events.len() >= count => Some(oldest.id).filter(|id| *id > 1),
        _ if high > 0 => Some(high + 1),
        _ => None,
    };
    Ok(EventPage { events, older_before })
}

#[cfg(test)]
mod tests {
    use dashboard_core::{Function, FunctionSpec};
    use dashboard_store::{DashboardStore, MemoryStore};

    use super::*;

    async fn store_with_events(count: usize) -> StoreReader {
        let store = MemoryStore::default();
        for n in 0..count {
            let function = Function::create(FunctionSpec::new(format!("f{n}"), "demo")).expect("valid spec");
            store.create_function(function).await.expect("the memory store accepts it");
        }
        StoreReader::new(std::sync::Arc::new(store))
    }

    fn ids(page: &EventPage) -> Vec<u64> {
        page.events.iter().map(|event| event.id).collect()
    }

    #[tokio::test]
    async fn newest_events_come_newest_first_with_the_older_cursor() {
        let store = store_with_events(30).await;
        let first = newest_events(&store, 30, 20).await.expect("memory store");
        assert_eq!(ids(&first), (11..=30).rev().collect::<Vec<_>>());
        assert_eq!(first.older_before, Some(11));
        let second = newest_events(&store, 10, 20).await.expect("memory store");
        assert_eq!(ids(&second), (1..=10).rev().collect::<Vec<_>>());
        assert_eq!(second.older_before, None);
        assert!(newest_events(&store, 0, 20).await.expect("memory store").events.is_empty());
    }
}
