//! `GET /api/executions/{id}/logs`: an execution's log by cursor, or whole as text.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use dashboard_core::{ExecutionId, LogLine};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::api::executions::parse_id;
use crate::api::limit;
use crate::error::ApiError;
use crate::state::State;

/// The most lines read from the store at once for the text download.
const TEXT_CHUNK: usize = 5000;

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
    let id = parse_id(&id)?;
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
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_after": next_after, "finished": finished})))
}

async fn download(state: &State, id: ExecutionId) -> Result<HttpResponse, ApiError> {
    let mut text = String::new();
    let mut after = 0;
    loop {
        let lines = state.dashboard.store().read_logs(id, after, TEXT_CHUNK).await?;
        for line in &lines {
            push_line(&mut text, line);
        }
        match lines.last() {
            Some(last) if lines.len() == TEXT_CHUNK => after = last.seq,
            _ => break,
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"execution-{id}.log\"")))
        .body(text))
}

fn push_line(text: &mut String, line: &LogLine) {
    let ts = line.ts.format(&Rfc3339).unwrap_or_default();
    text.push_str(&format!("{ts} [{}] {}\n", line.stream, line.message));
}
