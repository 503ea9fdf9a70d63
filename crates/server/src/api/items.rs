//! `GET /api/executions/{id}/items`: an execution's transcript items by cursor (their seq, the order in which each
//! first appeared), each as last stored.

use actix_web::{HttpResponse, web};
use dashboard_core::Item;
use serde::{Deserialize, Serialize};

use crate::api::limit;
use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

/// `GET /api/executions/{id}/items`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ItemsPage {
    /// In seq order (the order in which each item first appeared), each as last stored.
    items: Vec<Item>,
    /// The `after` of the next request.
    next_after: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ItemsQuery {
    /// The `next_after` of the previous answer: items after this seq (default 0, from the first).
    after: Option<u64>,
    /// How many items at most (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<usize>,
}

pub(crate) async fn list(
    state: State,
    id: web::Path<String>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&id)?;
    let after = query.after.unwrap_or(0);
    let limit = limit(query.limit, 1000, 5000)?;
    let store = state.dashboard.store();
    if store.get_execution(id).await?.is_none() {
        return Err(ApiError::not_found("execution", &id.to_string()));
    }
    let items = store.list_items(id, after, limit).await?;
    let next_after = items.last().map_or(after, |item| item.seq);
    Ok(HttpResponse::Ok().json(ItemsPage { items, next_after }))
}
