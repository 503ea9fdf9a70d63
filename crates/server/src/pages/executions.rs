//! `/executions` and `/executions/{id}`: the filtered, paged list; the status page with its transcript and its log;
//! cancel and retry.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{ApprovalId, ExecutionId, ExecutionStatus};
use dashboard_store::{ApprovalQuery, ExecutionQuery};
use serde::{Deserialize, Serialize};

use super::bulk::BulkSummary;
use super::transcript::{ItemView, RunDiffView};
use super::view::{ExecutionDetail, ExecutionRow, LogLineView, query_string};
use super::{FormError, insert_form_error};
use crate::common::Caller;
use crate::common::html::{error_page, see_other};
use crate::error::ApiError;
use crate::state::{AppState, State};

/// How many executions one page of the list shows.
const PAGE_SIZE: usize = 50;
/// How many log lines the status page renders; the script fetches the rest, the download link has them all.
const PAGE_LOG_LINES: usize = 2000;
/// How many transcript items the status page renders; a "show more" link pages on (`?items_after=SEQ`). An agent run
/// can have tens of thousands of items: a page of them keeps the page quick to make and the browser responsive.
const PAGE_ITEMS: usize = 200;
/// The most approvals of one execution the status page reads, for its transcript's approval items (the newest ones;
/// an item whose approval is older shows its id, and the inbox has it).
const PAGE_APPROVALS: usize = 1000;
/// The most lines of a run's diff the status page shows; the download has the rest.
const PAGE_DIFF_LINES: usize = 5000;

/// What the status page shows: `?view=transcript` (the default when the execution has items) or `?view=log`, and
/// `?items_after=SEQ`, the transcript's page. Text, so that a bad value falls back to the default, not a 400.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct DetailQuery {
    view: String,
    items_after: String,
    /// The approval a decision on this page has just decided, for the notice saying so.
    decided: String,
}

/// The filters of the list, as typed in its form (GET). Text throughout, so a bad value is shown, not refused.
#[derive(Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct Filters {
    status: String,
    function: String,
    backend: String,
    q: String,
    before: String,
}

impl Filters {
    fn to_query(&self) -> Result<ExecutionQuery, FormError> {
        let non_empty = |text: &str| Some(text.trim()).filter(|text| !text.is_empty()).map(str::to_owned);
        let status = match non_empty(&self.status) {
            Some(status) => Some(status.parse::<ExecutionStatus>().map_err(|_| {
                FormError::new("status", format!("{status:?} is not a status of an execution"))
            })?),
            None => None,
        };
        let before = match non_empty(&self.before) {
            Some(before) => Some(
                before
                    .parse::<ExecutionId>()
                    .map_err(|_| FormError::new("before", "is not an execution id"))?,
            ),
            None => None,
        };
        Ok(ExecutionQuery {
            status,
            function: non_empty(&self.function),
            backend: non_empty(&self.backend),
            text: non_empty(&self.q),
            session_id: None,
            before,
            limit: PAGE_SIZE,
        })
    }

    /// The list's URL with these filters and another page cursor.
    fn url_before(&self, before: &str) -> String {
        let pairs = [
            ("status", self.status.as_str()),
            ("function", self.function.as_str()),
            ("backend", self.backend.as_str()),
            ("q", self.q.as_str()),
            ("before", before),
        ];
        format!("/executions{}", query_string(&pairs))
    }
}

/// The counts a bulk post sends back to the list (see `bulk.rs`).
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct BulkNotice {
    bulk: String,
    done: usize,
    skipped: usize,
    refused: usize,
    failed: usize,
}

impl BulkNotice {
    fn sentence(self) -> Option<String> {
        let summary = BulkSummary {
            action: self.bulk,
            n_done: self.done,
            n_skipped: self.skipped,
            n_refused: self.refused,
            n_failed: self.failed,
        };
        matches!(summary.action.as_str(), "cancel" | "retry").then(|| summary.sentence())
    }
}

pub(crate) async fn list(
    state: State,
    caller: Caller,
    filters: web::Query<Filters>,
    notice: Option<web::Query<BulkNotice>>,
) -> HttpResponse {
    let filters = filters.into_inner();
    let notice = notice.and_then(|notice| notice.into_inner().sentence());
    let (rows, next_url, error, status) = match filters.to_query() {
        Ok(query) => match state.dashboard.store().list_executions(&query).await {
            Ok(page) => {
                // A page short of the limit is the last one, whatever the cursor says.
                let next_url = page
                    .next_cursor
                    .filter(|_| page.items.len() >= PAGE_SIZE)
                    .map(|cursor| filters.url_before(&cursor.to_string()));
                (page.items.iter().map(ExecutionRow::new).collect(), next_url, None, StatusCode::OK)
            }
            Err(error) => return error_page(&state, &error.into()),
        },
        Err(error) => (Vec::new(), None, Some(error), StatusCode::BAD_REQUEST),
    };
    let function_names = match state.dashboard.store().list_functions().await {
        Ok(functions) => functions.into_iter().map(|function| function.name).collect(),
        Err(_) => Vec::new(),
    };
    let mut context = super::page_context(&state, &caller, "executions", "Executions").await;
    context.insert("executions", &rows);
    context.insert("filters", &filters);
    context.insert("statuses", &ExecutionStatus::ALL.map(ExecutionStatus::as_str));
    context.insert("backends", &state.dashboard.backends().names());
    context.insert("function_names", &function_names);
    context.insert("next_url", &next_url);
    context.insert("back_url", &filters.url_before(&filters.before));
    context.insert("notice", &notice);
    context.insert("first_url", &Some(filters.url_before("")).filter(|_| !filters.before.is_empty()));
    insert_form_error(&mut context, error.as_ref());
    state.render(status, "executions.html", &context)
}

/// An execution id from the URL; text that is not an id names no execution.
fn parse_id(text: &str) -> Result<ExecutionId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("execution", text))
}

pub(crate) async fn detail(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    query: Option<web::Query<DetailQuery>>,
) -> HttpResponse {
    let query = query.map(web::Query::into_inner).unwrap_or_default();
    match parse_id(&id) {
        Ok(id) => render_detail(&state, &caller, id, &query, None, StatusCode::OK).await,
        Err(error) => error_page(&state, &error),
    }
}

/// The status page; `action_error` says why a cancel or retry just failed.
async fn render_detail(
    state: &AppState,
    caller: &Caller,
    id: ExecutionId,
    query: &DetailQuery,
    action_error: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let store = state.dashboard.store();
    let execution = match store.get_execution(id).await {
        Ok(Some(execution)) => execution,
        Ok(None) => return error_page(state, &ApiError::not_found("execution", &id.to_string())),
        Err(error) => return error_page(state, &error.into()),
    };
    let mut lines = match store.read_logs(id, 0, PAGE_LOG_LINES + 1).await {
        Ok(lines) => lines,
        Err(error) => return error_page(state, &error.into()),
    };
    let is_log_cut = lines.len() > PAGE_LOG_LINES;
    lines.truncate(PAGE_LOG_LINES);
    let last_seq = lines.last().map_or(0, |line| line.seq);
    let items_after = query.items_after.trim().parse::<u64>().unwrap_or(0);
    let mut items = match store.list_items(id, items_after, PAGE_ITEMS + 1).await {
        Ok(items) => items,
        Err(error) => return error_page(state, &error.into()),
    };
    let is_items_cut = items.len() > PAGE_ITEMS;
    items.truncate(PAGE_ITEMS);
    let items_last = items.last().map_or(items_after, |item| item.seq);
    let turns = match super::sessions::turns(&store, &execution).await {
        Ok(turns) => turns,
        Err(error) => return error_page(state, &error.into()),
    };
    let diff = match store.get_diff(id).await {
        Ok(diff) => diff.map(|diff| RunDiffView::new(&diff, PAGE_DIFF_LINES)),
        Err(error) => return error_page(state, &error.into()),
    };
    // Read once for the page: the transcript's approval items show their approvals from this list.
    let approvals_query = ApprovalQuery { pending_only: false, execution: Some(id), limit: PAGE_APPROVALS };
    let approvals = match store.list_approvals(&approvals_query).await {
        Ok(approvals) => approvals,
        Err(error) => return error_page(state, &error.into()),
    };
    let n_pending = approvals.iter().filter(|approval| approval.is_pending()).count();
    let decided_notice = query
        .decided
        .parse::<ApprovalId>()
        .ok()
        .and_then(|decided| approvals.iter().find(|approval| approval.id == decided))
        .map(super::approvals::decided_sentence);
    // A run that reported no items (a backend without structure) shows its log, as before transcripts.
    let has_items = !items.is_empty() || items_after > 0;
    let view = match query.view.as_str() {
        "log" => "log",
        "transcript" => "transcript",
        _ if has_items => "transcript",
        _ => "log",
    };

    let title = format!("{} · {}", execution.function, super::view::short_id(&id));
    let mut context = super::page_context(state, caller, "executions", &title).await;
    context.insert("execution", &ExecutionDetail::new(&execution));
    context.insert("usage_docs_url", super::usage_view::USAGE_DOCS_URL);
    context.insert("view", view);
    context.insert("has_items", &has_items);
    let item_views: Vec<ItemView> = items.iter().map(|item| ItemView::new(id, item, &approvals)).collect();
    context.insert("items", &item_views);
    context.insert("n_pending_approvals", &n_pending);
    context.insert("notice", &decided_notice);
    context.insert("items_after", &items_after);
    context.insert("items_last", &items_last);
    context.insert("is_items_cut", &is_items_cut);
    context.insert("diff", &diff);
    context.insert("turns", &turns);
    context.insert("log_lines", &lines.iter().map(LogLineView::new).collect::<Vec<_>>());
    context.insert("is_log_cut", &is_log_cut);
    context.insert("last_seq", &last_seq);
    context.insert("action_error", &action_error);
    state.render(status, "execution.html", &context)
}

pub(crate) async fn cancel(state: State, caller: Caller, id: web::Path<String>) -> HttpResponse {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(error) => return error_page(&state, &error),
    };
    match state.dashboard.cancel(&caller.principal, id).await {
        Ok(_) => see_other(&format!("/executions/{id}")),
        Err(error) => action_failed(&state, &caller, id, ApiError::from(error)).await,
    }
}

pub(crate) async fn retry(state: State, caller: Caller, id: web::Path<String>) -> HttpResponse {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(error) => return error_page(&state, &error),
    };
    match state.dashboard.retry(&caller.principal, id).await {
        Ok(retried) => see_other(&format!("/executions/{}", retried.id)),
        Err(error) => action_failed(&state, &caller, id, ApiError::from(error)).await,
    }
}

/// A cancel, retry or continue that could not be done: the 404 page for an unknown execution, else its status page
/// with why.
pub(super) async fn action_failed(
    state: &AppState,
    caller: &Caller,
    id: ExecutionId,
    error: ApiError,
) -> HttpResponse {
    if error.status() == StatusCode::NOT_FOUND {
        return error_page(state, &error);
    }
    let message = crate::common::html::sentence(&error.message);
    render_detail(state, caller, id, &DetailQuery::default(), Some(message), error.status()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(status: &str, before: &str) -> Filters {
        Filters { status: status.into(), before: before.into(), q: "a b".into(), ..Filters::default() }
    }

    #[test]
    fn filters_become_a_store_query() {
        let query = filters("failed", "").to_query().expect("valid filters");
        assert_eq!(
            (query.status, query.text.as_deref(), query.limit),
            (Some(ExecutionStatus::Failed), Some("a b"), 50)
        );
        assert_eq!(
            filters("nope", "").to_query().err().and_then(|error| error.field).as_deref(),
            Some("status")
        );
        assert_eq!(
            filters("", "x").to_query().err().and_then(|error| error.field).as_deref(),
            Some("before")
        );
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        assert_eq!(
            filters("queued", "old").url_before("new"),
            "/executions?status=queued&q=a%20b&before=new"
        );
    }
}
