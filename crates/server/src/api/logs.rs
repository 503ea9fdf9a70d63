//! `GET /api/executions/{id}/logs`: an execution's log by cursor, or whole as text (streamed).

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use dashboard_core::{ExecutionId, LogLine};
use dashboard_engine::StoreReader;
use dashboard_store::StoreError;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::api::limit;
use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

/// The most lines read from the store at once for the text download: one chunk of the streamed answer.
const TEXT_CHUNK: usize = 1000;

/// `GET /api/executions/{id}/logs`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogsPage {
    /// In seq order.
    items: Vec<LogLine>,
    /// The `after` of the next request.
    next_after: u64,
    /// Whether the execution has ended and this answer holds its last line.
    finished: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct LogsQuery {
    /// The `next_after` of the previous answer: lines after this seq (default 0, from the first).
    after: Option<u64>,
    /// How many lines at most (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<usize>,
    /// `json` (the default) or `text` (the whole log as a text download).
    #[param(pattern = "^(json|text)$")]
    format: Option<String>,
}

pub(crate) async fn read(
    state: State,
    id: web::Path<String>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    let store = state.dashboard.store();
    let Some(execution) = store.get_execution(id).await? else {
        return Err(ApiError::not_found("execution", &id.to_string()));
    };
    match query.format.as_deref() {
        None | Some("json") => {}
        Some("text") => return download(&state, id).await,
        Some(other) => {
            return Err(ApiError::bad_query("format", format!("{other:?}: expected json or text")));
        }
    }
    let after = query.after.unwrap_or(0);
    let limit = limit(query.limit, 1000, 5000)?;
    let items = store.read_logs(id, after, limit).await?;
    let next_after = items.last().map_or(after, |line| line.seq);
    // Finished: the execution has ended and this answer holds its last lines. Status is read before the lines, and
    // the engine stores every line before the terminal status, so no line can follow a `finished: true`.
    let finished = execution.status.is_terminal() && items.len() < limit;
    Ok(HttpResponse::Ok().json(LogsPage { items, next_after, finished }))
}

/// Streams the whole log as text, a chunk of lines at a time, so a long log never sits in memory whole. The first
/// chunk is read before answering: a store that fails then gets the JSON error, not a cut download.
async fn download(state: &State, id: ExecutionId) -> Result<HttpResponse, ApiError> {
    let store = state.dashboard.store().clone();
    let first = store.read_logs(id, 0, TEXT_CHUNK).await?;
    let chunks = stream::try_unfold(Some(first), move |lines| {
        let store = store.clone();
        async move { next_text_chunk(&store, id, lines).await }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"execution-{id}.log\"")))
        .streaming(chunks))
}

/// Turns `lines` into text and reads the chunk after them; `None` once the log has been sent.
async fn next_text_chunk(
    store: &StoreReader,
    id: ExecutionId,
    lines: Option<Vec<LogLine>>,
) -> Result<Option<(Bytes, Option<Vec<LogLine>>)>, StoreError> {
    let Some(lines) = lines else { return Ok(None) };
    let mut text = String::new();
    for line in &lines {
        push_line(&mut text, line);
    }
    let next = match lines.last() {
        Some(last) if lines.len() == TEXT_CHUNK => Some(store.read_logs(id, last.seq, TEXT_CHUNK).await?),
        _ => None,
    };
    if text.is_empty() && next.is_none() {
        return Ok(None);
    }
    Ok(Some((Bytes::from(text), next)))
}

fn push_line(text: &mut String, line: &LogLine) {
    use std::fmt::Write as _;
    let ts = line.ts.format(&Rfc3339).unwrap_or_default();
    writeln!(text, "{ts} [{}] {}", line.stream, line.message).expect("writing to a String cannot fail");
}
