//! `/api/functions`: list, create, read, replace and delete functions.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{Function, FunctionSpec};
use dashboard_store::FunctionKey;
use serde::Serialize;
use serde_json::Value;

use crate::api::{ApiJson, created_at, parse_json};
use crate::common::Caller;
use crate::error::ApiError;
use crate::state::State;

/// `GET /api/functions`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FunctionList {
    /// Sorted by name.
    items: Vec<Function>,
}

pub(crate) async fn list(state: State) -> Result<HttpResponse, ApiError> {
    let items = state.dashboard.store().list_functions().await?;
    Ok(HttpResponse::Ok().json(FunctionList { items }))
}

pub(crate) async fn create(
    state: State,
    caller: Caller,
    ApiJson(spec): ApiJson<FunctionSpec>,
) -> Result<HttpResponse, ApiError> {
    let function = state.dashboard.create_function(&caller.principal, spec).await?;
    Ok(created_at(StatusCode::CREATED, &format!("/api/functions/{}", function.name), &function))
}

pub(crate) async fn get(state: State, key: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let key = FunctionKey::parse(&key);
    match state.dashboard.store().get_function(&key).await? {
        Some(function) => Ok(HttpResponse::Ok().json(function)),
        None => Err(ApiError::not_found("function", &key.to_string())),
    }
}

/// The body of a replace is a function spec plus an optional `expected_version`.
pub(crate) async fn replace(
    state: State,
    caller: Caller,
    key: web::Path<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    };
    let expected_version = match fields.remove("expected_version") {
        None | Some(Value::Null) => None,
        Some(version) => Some(
            version
                .as_u64()
                .and_then(|version| u32::try_from(version).ok())
                .ok_or_else(|| ApiError::invalid_field("expected_version", "must be a positive integer"))?,
        ),
    };
    let spec: FunctionSpec = parse_json(body.to_string().as_bytes())?;
    let key = FunctionKey::parse(&key);
    let function = state.dashboard.update_function(&caller.principal, &key, spec, expected_version).await?;
    Ok(HttpResponse::Ok().json(function))
}

pub(crate) async fn delete(
    state: State,
    caller: Caller,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = FunctionKey::parse(&key);
    state.dashboard.delete_function(&caller.principal, &key).await?;
    Ok(HttpResponse::NoContent().finish())
}
