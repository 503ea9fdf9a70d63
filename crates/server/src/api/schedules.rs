//! `/api/schedules`: list, create, read, replace and delete schedules (DESIGN.md §14).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{Schedule, ScheduleId, ScheduleSpec};

use crate::api::{ApiJson, created_at};
use crate::common::Caller;
use crate::error::ApiError;
use crate::state::State;

/// `GET /api/schedules`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ScheduleList {
    /// Oldest first.
    items: Vec<Schedule>,
}

/// The id in the path, or a 404 naming it (no id can name a schedule that is not a UUID).
fn schedule_id(text: &str) -> Result<ScheduleId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("schedule", text))
}

pub(crate) async fn list(state: State) -> Result<HttpResponse, ApiError> {
    let items = state.dashboard.schedules().await?;
    Ok(HttpResponse::Ok().json(ScheduleList { items }))
}

pub(crate) async fn create(
    state: State,
    caller: Caller,
    ApiJson(spec): ApiJson<ScheduleSpec>,
) -> Result<HttpResponse, ApiError> {
    let schedule = state.dashboard.create_schedule(&caller.principal, spec).await?;
    Ok(created_at(StatusCode::CREATED, &format!("/api/schedules/{}", schedule.id), &schedule))
}

pub(crate) async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let schedule = state.dashboard.schedule(schedule_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(schedule))
}

pub(crate) async fn replace(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(spec): ApiJson<ScheduleSpec>,
) -> Result<HttpResponse, ApiError> {
    let schedule = state.dashboard.update_schedule(&caller.principal, schedule_id(&id)?, spec).await?;
    Ok(HttpResponse::Ok().json(schedule))
}

pub(crate) async fn delete(
    state: State,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.dashboard.delete_schedule(&caller.principal, schedule_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
