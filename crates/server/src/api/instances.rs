//! `GET /api/instances`: the dashboard instances that share this one's store and are alive — each with when it
//! started, its last heartbeat and how many executions it ran then — and which of them answered. On a store of its
//! own (SQLite, memory) the answering instance is the only one.

use actix_web::HttpResponse;
use dashboard_core::Timestamp;
use dashboard_store::InstanceInfo;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::State;

/// `GET /api/instances`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InstanceList {
    /// The live instances (a heartbeat within three leases), by id.
    items: Vec<InstanceView>,
}

/// One instance.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InstanceView {
    /// Its id (`DASHBOARD_INSTANCE_ID`, or one drawn at random at its start); executions it ran carry it as
    /// `instance`.
    id: String,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    started_at: Timestamp,
    /// Its last heartbeat (every sixth of `DASHBOARD_LEASE_SECS`); for an instance alone, now.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    heartbeat_at: Timestamp,
    /// How many executions it was running at its last heartbeat.
    running: u32,
    /// Whether it is the instance that answered this request.
    this: bool,
}

pub(crate) async fn list(state: State) -> Result<HttpResponse, ApiError> {
    let this = state.dashboard.instance_id();
    let items = state
        .dashboard
        .instances()
        .await?
        .into_iter()
        .map(|instance: InstanceInfo| InstanceView {
            this: instance.id == this,
            id: instance.id,
            started_at: instance.started_at,
            heartbeat_at: instance.heartbeat_at,
            running: instance.running,
        })
        .collect();
    Ok(HttpResponse::Ok().json(InstanceList { items }))
}
