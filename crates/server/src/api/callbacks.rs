//! The callback routes remote agents report through: `POST /api/executions/{id}/logs` and `.../status`, authorized
//! by the execution's own callback token (`Authorization: Bearer …`), never by a user's credentials.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use dashboard_core::{ExecutionId, ExecutionStatus, LogStream, NewLogLine};
use dashboard_engine::StatusReport;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiJson;
use crate::api::executions::parse_id;
use crate::error::ApiError;
use crate::state::{AppState, State};

/// The most lines one report may carry.
const MAX_LINES_PER_BATCH: usize = 1000;

/// The body of a log report.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsBody {
    /// At most 1000 lines.
    #[schema(max_items = 1000)]
    lines: Vec<LineBody>,
}

/// One line of a log report.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LineBody {
    /// The text.
    message: String,
    /// Where it came from (default `agent`).
    #[serde(default = "agent_stream")]
    stream: LogStream,
}

fn agent_stream() -> LogStream {
    LogStream::Agent
}

/// The body of a status report.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    /// `running`, `succeeded` or `failed`.
    status: ExecutionStatus,
    /// The result, with `succeeded`.
    #[serde(default)]
    output: Option<Value>,
    /// What went wrong, with `failed`.
    #[serde(default)]
    error: Option<String>,
    /// Token counts and the like.
    #[serde(default)]
    usage: Option<Value>,
}

/// Checks the bearer token against execution `id`: 401 without one, 403 when it belongs to no such execution. The
/// route table runs it before the body is read (`auth::guard::callback`), and the handlers again.
pub(crate) fn authorize(state: &AppState, request: &HttpRequest, id: ExecutionId) -> Result<(), ApiError> {
    let Some(token) = crate::auth::bearer_token(request) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a callback needs the execution's callback token as `Authorization: Bearer <token>`",
        ));
    };
    if state.dashboard.verify_callback_token(id, token) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token does not authorize reports on this execution",
        ))
    }
}

pub(crate) async fn logs(
    state: State,
    request: HttpRequest,
    id: web::Path<String>,
    ApiJson(body): ApiJson<LogsBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    authorize(&state, &request, id)?;
    if body.lines.len() > MAX_LINES_PER_BATCH {
        return Err(ApiError::invalid_field(
            "lines",
            format!("at most {MAX_LINES_PER_BATCH} lines per report"),
        ));
    }
    let lines = body.lines.into_iter().map(|line| NewLogLine::new(line.stream, line.message)).collect();
    let last_seq = state.dashboard.report_logs(id, lines).await?;
    Ok(HttpResponse::Ok().json(json!({"last_seq": last_seq})))
}

pub(crate) async fn status(
    state: State,
    request: HttpRequest,
    id: web::Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    authorize(&state, &request, id)?;
    let report =
        StatusReport { status: body.status, output: body.output, error: body.error, usage: body.usage };
    let execution = state.dashboard.report_status(id, report).await?;
    Ok(HttpResponse::Ok().json(execution))
}
