//! `POST /hooks/{function}`: a webhook delivery triggers the function, once its signature verifies
//! ([`crate::webhook`]), with its payload (or the fields its `input` maps) as the input. The delivery's id is the
//! idempotency key, so a redelivery answers with the first execution instead of running the function again.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use dashboard_backend_api::{Principal, Scope};
use dashboard_engine::TriggerRequest;
use serde_json::{Value, json};

use crate::api::{created_at, parse_json, payload_error};
use crate::error::{ApiError, ErrorCode};
use crate::state::State;

pub(crate) async fn deliver(
    state: State,
    request: HttpRequest,
    function: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let function = function.into_inner();
    let webhooks = state.config.file.as_ref().map(|file| &file.webhooks);
    // An unknown function and one without a webhook answer alike: this public route tells nothing of the others.
    let Some(webhook) = webhooks.and_then(|webhooks| webhooks.get(&function)) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no webhook is configured for the function {function:?}; a function gets one with a \
                 [functions.webhook] table in the config file"
            ),
        )
        .details(json!({"entity": "webhook", "key": function})));
    };
    let body = body.map_err(payload_error)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    let delivery =
        webhook.verify(header, &body, i64::try_from(now).unwrap_or(i64::MAX)).map_err(|reason| {
            log::warn!("webhook of {function:?} refused: {reason}");
            ApiError::new(ErrorCode::Unauthorized, format!("the delivery is not verified: {reason}"))
        })?;
    let payload: Value = parse_json(&body).map_err(|error| {
        ApiError::new(
            error.code,
            format!("{} (a webhook's payload must be JSON: send it as application/json)", error.message),
        )
    })?;
    // The operator who configured the webhook allowed this trigger: the webhook may run its function on the
    // function's own backend, and is recorded as the one who triggered it.
    let principal = Principal::token(format!("webhook:{function}"), Scope::Trigger, None);
    let trigger = TriggerRequest {
        idempotency_key: delivery.map(|id| format!("hook:{function}:{id}")),
        function,
        input: webhook.input(payload),
        backend: None,
    };
    let triggered = state.dashboard.trigger(&principal, trigger).await?;
    let status = if triggered.created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let location = format!("/api/executions/{}", triggered.execution.id);
    Ok(created_at(status, &location, &triggered.execution))
}
