//! `/notifications`: the notifications configured (`[[notifications]]`, never their URLs or secrets) and their
//! deliveries, newest first — status, event, function with a link to the execution, attempts, last error, next
//! attempt — filtered by status and paged backwards with an "older" link.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{Delivery, DeliveryStatus};
use dashboard_store::DeliveryQuery;
use serde::Serialize;

use super::view::{TimeView, query_string, shorten, time_view};
use crate::api::notifications::{DeliveriesQuery, page};
use crate::common::Caller;
use crate::common::html::error_page;
use crate::error::ApiError;
use crate::notify::Format;
use crate::state::State;

/// How many deliveries one page shows.
const PAGE_SIZE: usize = 50;
/// How many characters of a delivery's last error the table shows (the whole of it is in its `title`).
const ERROR_CHARS: usize = 160;

/// A configured notification, as the page shows it.
#[derive(Serialize)]
struct NotificationView {
    name: String,
    host: String,
    on: Vec<&'static str>,
    functions: Option<Vec<String>>,
    format: &'static str,
    is_signed: bool,
}

/// A delivery as a row of the table.
#[derive(Serialize)]
struct DeliveryRow {
    id: String,
    status: &'static str,
    tone: &'static str,
    notification: String,
    kind: &'static str,
    function: Option<String>,
    execution_id: Option<String>,
    attempts: u32,
    last_error: Option<String>,
    last_error_short: Option<String>,
    response_status: Option<u16>,
    created_at: TimeView,
    next_attempt_at: Option<TimeView>,
    finished_at: Option<TimeView>,
}

impl DeliveryRow {
    fn new(delivery: &Delivery) -> Self {
        let tone = match delivery.status {
            DeliveryStatus::Pending => "queued",
            DeliveryStatus::Delivered => "succeeded",
            DeliveryStatus::Failed => "failed",
        };
        let is_pending = delivery.status == DeliveryStatus::Pending;
        Self {
            id: delivery.id.to_string(),
            status: delivery.status.as_str(),
            tone,
            notification: delivery.notification.clone(),
            kind: delivery.event.kind.as_str(),
            function: delivery.event.function.clone(),
            execution_id: delivery.event.execution_id.map(|id| id.to_string()),
            attempts: delivery.attempts,
            last_error: delivery.last_error.clone(),
            last_error_short: delivery.last_error.as_deref().map(|error| shorten(error, ERROR_CHARS)),
            response_status: delivery.response_status,
            created_at: time_view(delivery.created_at),
            next_attempt_at: delivery.next_attempt_at.filter(|_| is_pending).map(time_view),
            finished_at: delivery.finished_at.map(time_view),
        }
    }
}

pub(crate) async fn list(state: State, caller: Caller, query: web::Query<DeliveriesQuery>) -> HttpResponse {
    // The page's size is its own: a `limit` in the address is not read.
    let query = DeliveriesQuery { limit: None, ..query.into_inner() };
    let rendered = match query.to_store_query() {
        Ok(store_query) => render(&state, &caller, DeliveryQuery { limit: PAGE_SIZE, ..store_query }).await,
        Err(error) => Err(error),
    };
    rendered.unwrap_or_else(|error| error_page(&state, &error))
}

async fn render(
    state: &State,
    caller: &Caller,
    store_query: DeliveryQuery,
) -> Result<HttpResponse, ApiError> {
    let status = store_query.status.map(DeliveryStatus::as_str).unwrap_or("");
    let is_first_page = store_query.before.is_none();
    let notification = store_query.notification.clone().unwrap_or_default();
    let execution = store_query.execution.map(|id| id.to_string()).unwrap_or_default();
    let page = page(state, store_query).await?;
    let filters =
        [("status", status), ("notification", notification.as_str()), ("execution", execution.as_str())];
    let older_url = page.next_cursor.map(|cursor| {
        let cursor = cursor.to_string();
        let mut pairs = filters.to_vec();
        pairs.push(("before", cursor.as_str()));
        format!("/notifications{}", query_string(&pairs))
    });
    let newest_url = (!is_first_page).then(|| format!("/notifications{}", query_string(&filters)));
    let configured: Vec<NotificationView> = state
        .config
        .file
        .iter()
        .flat_map(|file| file.notifications.iter())
        .map(|notification| NotificationView {
            name: notification.name.clone(),
            host: notification.url.host_str().unwrap_or("").to_owned(),
            on: notification.kinds.iter().map(|kind| kind.as_str()).collect(),
            functions: notification.functions.clone(),
            format: match notification.format {
                Format::StandardWebhooks => "standard-webhooks",
                Format::Slack => "slack",
            },
            is_signed: notification.is_signed(),
        })
        .collect();

    let mut context = super::page_context(state, caller, "notifications", "Notifications").await;
    context.insert("configured", &configured);
    context.insert("deliveries", &page.items.iter().map(DeliveryRow::new).collect::<Vec<_>>());
    context.insert("statuses", &DeliveryStatus::ALL.iter().map(|status| status.as_str()).collect::<Vec<_>>());
    context.insert("status", status);
    context.insert("notification", &notification);
    context.insert("execution", &execution);
    context.insert("older_url", &older_url);
    context.insert("newest_url", &newest_url);
    Ok(state.render(StatusCode::OK, "notifications.html", &context))
}
