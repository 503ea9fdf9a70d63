//! `GET /api/notifications/deliveries`: the notifications' deliveries from the store's outbox — pending, delivered or
//! given up — newest first, filtered and paged.

use actix_web::{HttpResponse, web};
use dashboard_core::{Delivery, DeliveryId, DeliveryStatus, ExecutionId};
use dashboard_store::DeliveryQuery;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::State;

/// How many deliveries a page holds when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The most deliveries one page holds.
pub(crate) const MAX_LIMIT: usize = 200;

/// Filters and page of `GET /api/notifications/deliveries`. Read as text, so that a value that cannot be understood
/// is answered naming its parameter.
#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
pub(crate) struct DeliveriesQuery {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub(crate) status: Option<String>,
    /// Only the deliveries of this notification (its `name` in `[[notifications]]`).
    pub(crate) notification: Option<String>,
    /// Only deliveries of events about this execution.
    #[param(value_type = Option<String>, format = Uuid)]
    pub(crate) execution: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<String>, format = Uuid)]
    pub(crate) before: Option<String>,
    /// How many deliveries per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub(crate) limit: Option<String>,
}

impl DeliveriesQuery {
    /// The store query, or a 400 naming the parameter that cannot be understood.
    pub(crate) fn to_store_query(&self) -> Result<DeliveryQuery, ApiError> {
        fn given(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|value| !value.is_empty())
        }
        let status = given(&self.status)
            .map(|text| {
                DeliveryStatus::parse(text).ok_or_else(|| {
                    ApiError::bad_query("status", format!("{text:?} is not pending, delivered or failed"))
                })
            })
            .transpose()?;
        let execution = given(&self.execution)
            .map(|text| {
                text.parse::<ExecutionId>()
                    .map_err(|_| ApiError::bad_query("execution", "is not an execution id"))
            })
            .transpose()?;
        let before = given(&self.before)
            .map(|text| {
                text.parse::<DeliveryId>().map_err(|_| ApiError::bad_query("before", "is not a delivery id"))
            })
            .transpose()?;
        let limit = match given(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(text) => {
                text.parse::<usize>().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(
                    || ApiError::bad_query("limit", format!("{text:?} is not between 1 and {MAX_LIMIT}")),
                )?
            }
        };
        Ok(DeliveryQuery {
            status,
            notification: given(&self.notification).map(str::to_owned),
            execution,
            before,
            limit,
        })
    }
}

/// `GET /api/notifications/deliveries`: one page of deliveries.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryPage {
    /// Newest first.
    pub(crate) items: Vec<Delivery>,
    /// The `before` of the next page; null on the last one.
    pub(crate) next_cursor: Option<DeliveryId>,
}

/// One page for `query`: one more delivery than the page holds is read, to know whether another page follows.
pub(crate) async fn page(state: &State, query: DeliveryQuery) -> Result<DeliveryPage, ApiError> {
    let limit = query.limit;
    let read = DeliveryQuery { limit: limit + 1, ..query };
    let mut items = state.dashboard.store().list_deliveries(&read).await?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|delivery| delivery.id)
    } else {
        None
    };
    Ok(DeliveryPage { items, next_cursor })
}

pub(crate) async fn list(state: State, query: web::Query<DeliveriesQuery>) -> Result<HttpResponse, ApiError> {
    let page = page(&state, query.to_store_query()?).await?;
    Ok(HttpResponse::Ok().json(page))
}
