//! `/api/executions`: trigger, list, read, cancel and retry executions.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use dashboard_core::{Execution, ExecutionId, ExecutionStatus};
use dashboard_engine::{ContinueRequest, TriggerRequest};
use dashboard_store::ExecutionQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{ApiJson, created_at, limit};
use crate::common::{Caller, parse_execution_id};
use crate::error::ApiError;
use crate::state::State;

/// The body of `POST /api/executions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    /// The function, by id or name.
    function: String,
    /// The input, checked against the function's input schema.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    input: Value,
    /// A backend other than the function's own.
    backend: Option<String>,
    /// Makes repeating the trigger safe (or the `Idempotency-Key` header).
    idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

pub(crate) async fn trigger(
    state: State,
    caller: Caller,
    request: HttpRequest,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<HttpResponse, ApiError> {
    let header_key = match request.headers().get("Idempotency-Key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let idempotency_key = match (body.idempotency_key, header_key) {
        (Some(body_key), Some(header_key)) if body_key != header_key => {
            return Err(ApiError::invalid_field(
                "idempotency_key",
                "differs from the Idempotency-Key header; send one of them",
            ));
        }
        (body_key, header_key) => body_key.or(header_key),
    };
    let trigger =
        TriggerRequest { function: body.function, input: body.input, backend: body.backend, idempotency_key };
    let triggered = state.dashboard.trigger(&caller.principal, trigger).await?;
    let status = if triggered.created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok(created_at(status, &location(&triggered.execution), &triggered.execution))
}

fn location(execution: &Execution) -> String {
    format!("/api/executions/{}", execution.id)
}

/// Filters and page of `GET /api/executions`.
#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ListQuery {
    /// Only executions with this status.
    #[param(value_type = Option<ExecutionStatus>)]
    status: Option<String>,
    /// Only executions of this function (by name).
    function: Option<String>,
    /// Only executions on this backend.
    backend: Option<String>,
    /// Text anywhere in the input's JSON, case-insensitive.
    q: Option<String>,
    /// How many executions per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    before: Option<String>,
    /// Only the turns of this agent session (`session_id`).
    session: Option<String>,
}

impl ListQuery {
    /// The store query, or a 400 naming the parameter that cannot be understood.
    pub(crate) fn to_store_query(&self) -> Result<ExecutionQuery, ApiError> {
        let non_empty = |value: &Option<String>| value.as_ref().filter(|value| !value.is_empty()).cloned();
        let status = non_empty(&self.status)
            .map(|status| {
                status.parse::<ExecutionStatus>().map_err(|error| ApiError::bad_query("status", error))
            })
            .transpose()?;
        let before = non_empty(&self.before)
            .map(|before| {
                before
                    .parse::<ExecutionId>()
                    .map_err(|_| ApiError::bad_query("before", "is not an execution id"))
            })
            .transpose()?;
        Ok(ExecutionQuery {
            status,
            function: non_empty(&self.function),
            backend: non_empty(&self.backend),
            text: non_empty(&self.q),
            session_id: non_empty(&self.session),
            before,
            limit: limit(self.limit, 50, 500)?,
        })
    }
}

/// `GET /api/executions`: one page of the store's list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExecutionPage {
    /// Newest first.
    items: Vec<Execution>,
    /// The `before` of the next page; null on the last one.
    next_cursor: Option<ExecutionId>,
}

pub(crate) async fn list(state: State, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let page = state.dashboard.store().list_executions(&query.to_store_query()?).await?;
    Ok(HttpResponse::Ok().json(ExecutionPage { items: page.items, next_cursor: page.next_cursor }))
}

pub(crate) async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    match state.dashboard.store().get_execution(id).await? {
        Some(execution) => Ok(HttpResponse::Ok().json(execution)),
        None => Err(ApiError::not_found("execution", &id.to_string())),
    }
}

pub(crate) async fn cancel(
    state: State,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let execution = state.dashboard.cancel(&caller.principal, parse_execution_id(&id)?).await?;
    Ok(HttpResponse::Accepted().json(execution))
}

/// The body of `POST /api/executions/{id}/continue`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContinueBody {
    /// The next turn's prompt.
    prompt: String,
    /// The next turn's input, checked against the function's input schema; by default the continued execution's.
    #[schema(value_type = Option<Object>)]
    input: Option<Value>,
}

pub(crate) async fn continue_session(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<ContinueBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    let request = ContinueRequest { prompt: body.prompt, input: body.input };
    let execution = state.dashboard.continue_session(&caller.principal, id, request).await?;
    Ok(created_at(StatusCode::ACCEPTED, &location(&execution), &execution))
}

pub(crate) async fn retry(
    state: State,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let execution = state.dashboard.retry(&caller.principal, parse_execution_id(&id)?).await?;
    Ok(created_at(StatusCode::ACCEPTED, &location(&execution), &execution))
}
