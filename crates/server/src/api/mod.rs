//! The JSON API under `/api`: one module per resource, and the body and query handling they share, which turns every
//! client mistake into the JSON error body rather than actix's default text answers.

pub(crate) mod approvals;
pub(crate) mod backends;
pub(crate) mod callbacks;
pub(crate) mod diff;
pub(crate) mod events;
pub(crate) mod executions;
pub(crate) mod functions;
pub(crate) mod health;
pub(crate) mod hooks;
pub(crate) mod instances;
pub(crate) mod items;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod notifications;
pub(crate) mod openapi;
pub(crate) mod permission_tool;
pub(crate) mod schedules;
pub(crate) mod streams;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// The JSON 405 of an API path asked with a method it does not have, with the `Allow` header listing those it has
/// (from the route table).
pub(crate) async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let pattern = request.match_pattern().unwrap_or_default();
    let allowed: Vec<String> = crate::routes::table()
        .into_iter()
        .filter(|route| route.path == pattern)
        .map(|route| route.method.to_string())
        .collect();
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}; allowed: {}", request.method(), request.path(), allowed.join(", ")),
    )
    .details(json!({"allowed": allowed}));
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Query strings that cannot be parsed are a 400 with the JSON body.
pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| ApiError::new(ErrorCode::InvalidQuery, error.to_string()).into())
}

/// A JSON request body. Unlike actix's `Json`, every failure is an [`ApiError`]: 415 when the body is not JSON,
/// 413 when it is too large, 400 when it is malformed, 422 naming the field when it is valid JSON of the wrong shape
/// (an unknown field, a missing one, a wrong type).
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = request.mime_type().ok().flatten().is_some_and(|mime| {
            mime.subtype() == actix_web::mime::JSON || mime.suffix() == Some(actix_web::mime::JSON)
        });
        let body = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be JSON, sent with Content-Type: application/json",
                ));
            }
            let bytes = body.await.map_err(payload_error)?;
            parse_json(&bytes).map(ApiJson)
        })
    }
}

pub(crate) fn payload_error(error: actix_web::Error) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::new(
            ErrorCode::BodyTooLarge,
            "the body is larger than this server accepts (DASHBOARD_MAX_BODY_BYTES)",
        ),
        _ => ApiError::new(ErrorCode::BadBody, format!("the body could not be read: {error}")),
    }
}

/// Parses a JSON body into `T`, naming the field on a shape error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| shape_error(&error))?;
    deserializer.end().map_err(|error| malformed(&error))?;
    Ok(value)
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {error}"))
}

fn shape_error(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    if !inner.is_data() {
        return malformed(inner);
    }
    let message = inner.to_string();
    let parent = error.path().to_string();
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let join = |name: &str| if parent == "." { name.to_owned() } else { format!("{parent}.{name}") };
    // The path of an unknown field already ends with its name; a missing field's path is its parent's.
    let (code, field) = if message.starts_with("unknown field") {
        (ErrorCode::UnknownField, if parent == "." { quoted.unwrap_or_default() } else { parent.clone() })
    } else if message.starts_with("missing field") {
        (ErrorCode::MissingField, quoted.map(|name| join(&name)).unwrap_or_else(|| parent.clone()))
    } else {
        (ErrorCode::InvalidField, parent.clone())
    };
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    ApiError::new(code, format!("{field}: {message}")).details(json!({"field": field}))
}

/// Reads a limit parameter: `default` when absent, else 1 to `max`.
pub(crate) fn limit(value: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::bad_query("limit", format!("{limit} is not between 1 and {max}"))),
    }
}

/// A 201 or 202 answer with a `Location` header.
pub(crate) fn created_at(status: StatusCode, location: &str, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status).insert_header(("Location", location)).json(body)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Only deserialized, to exercise the error paths.
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn check(body: &str, expected: (u16, &str, &str)) {
        let error = parse_json::<Body>(body.as_bytes()).expect_err("bad body accepted");
        let field = error.details["field"].as_str().unwrap_or("").to_owned();
        assert_eq!(
            (error.status().as_u16(), error.code.as_str(), field.as_str()),
            expected,
            "{body}: {}",
            error.message
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        check("{", (400, "malformed-json", ""));
        check(r#"{"name": "a"} x"#, (400, "malformed-json", ""));
        check(r#"{"name": "a", "colour": 1}"#, (422, "unknown-field", "colour"));
        check(r#"{}"#, (422, "missing-field", "name"));
        check(r#"{"name": 5}"#, (422, "invalid-field", "name"));
        check(r#"{"name": "a", "inner": {"count": -1}}"#, (422, "invalid-field", "inner.count"));
        check(r#"{"name": "a", "inner": {"count": 1, "extra": 2}}"#, (422, "unknown-field", "inner.extra"));
    }
}
