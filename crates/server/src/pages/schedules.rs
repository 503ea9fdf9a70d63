//! `/schedules`: every schedule with its function, expression, zone, next due time, and last run with its status.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use dashboard_core::{ExecutionStatus, Schedule};
use serde::Serialize;

use super::view::{TimeView, time_view};
use crate::common::Caller;
use crate::common::html::error_page;
use crate::state::State;

/// One row of the list.
#[derive(Serialize)]
struct ScheduleRow {
    id: String,
    function: String,
    cron: String,
    timezone: String,
    overlap: &'static str,
    enabled: bool,
    next_run_at: Option<TimeView>,
    last_run_at: Option<TimeView>,
    last_execution: Option<String>,
    last_status: Option<ExecutionStatus>,
    skipped: u64,
}

impl ScheduleRow {
    fn new(schedule: &Schedule, last_status: Option<ExecutionStatus>) -> Self {
        Self {
            id: schedule.id.to_string(),
            function: schedule.function.clone(),
            cron: schedule.cron.clone(),
            timezone: schedule.timezone.clone(),
            overlap: schedule.overlap.as_str(),
            enabled: schedule.enabled,
            next_run_at: schedule.next_run_at.filter(|_| schedule.enabled).map(time_view),
            last_run_at: schedule.last_run_at.map(time_view),
            last_execution: schedule.last_execution.map(|id| id.to_string()),
            last_status,
            skipped: schedule.skipped,
        }
    }
}

pub(crate) async fn list(state: State, caller: Caller) -> HttpResponse {
    let schedules = match state.dashboard.schedules().await {
        Ok(schedules) => schedules,
        Err(error) => return error_page(&state, &error.into()),
    };
    let mut rows = Vec::with_capacity(schedules.len());
    for schedule in &schedules {
        let last_status = match schedule.last_execution {
            Some(id) => match state.dashboard.store().get_execution(id).await {
                Ok(execution) => execution.map(|execution| execution.status),
                Err(error) => return error_page(&state, &error.into()),
            },
            None => None,
        };
        rows.push(ScheduleRow::new(schedule, last_status));
    }
    let mut context = super::page_context(&state, &caller, "schedules", "Schedules").await;
    context.insert("schedules", &rows);
    state.render(StatusCode::OK, "schedules.html", &context)
}
