//! The callback routes remote agents report through: `POST /api/executions/{id}/logs` and `.../status`, authorized
//! by the execution's own callback token (`Authorization: Bearer …`), never by a user's credentials. The route table
//! wraps both in that check (`auth::guard::callback`), before the body is read.

use actix_web::{HttpResponse, web};
use dashboard_core::{ExecutionStatus, LogStream, NewLogLine};
use dashboard_engine::StatusReport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ApiJson;
use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

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

pub(crate) async fn logs(
    state: State,
    id: web::Path<String>,
    ApiJson(body): ApiJson<LogsBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    if body.lines.len() > MAX_LINES_PER_BATCH {
        return Err(ApiError::invalid_field(
            "lines",
            format!("at most {MAX_LINES_PER_BATCH} lines per report"),
        ));
    }
    let lines = body.lines.into_iter().map(|line| NewLogLine::new(line.stream, line.message)).collect();
    let last_seq = state.dashboard.report_logs(id, lines).await?;
    Ok(HttpResponse::Ok().json(LogsReceived { last_seq }))
}

/// `POST /api/executions/{id}/logs`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogsReceived {
    /// The seq of the last line stored.
    last_seq: u64,
}

pub(crate) async fn status(
    state: State,
    id: web::Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    let report =
        StatusReport { status: body.status, output: body.output, error: body.error, usage: body.usage };
    let execution = state.dashboard.report_status(id, report).await?;
    Ok(HttpResponse::Ok().json(execution))
}
