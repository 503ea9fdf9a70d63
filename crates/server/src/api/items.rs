//! `GET /api/executions/{id}/items`: an execution's transcript items by cursor (their seq, the order in which each
//! first appeared), each as last stored.

use actix_web::{HttpResponse, web};
use dashboard_core::Item;
use serde::{Deserialize, Serialize};

use crate::api::limit;
use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

/// The most item text one page holds besides its `limit`: an item may hold a megabyte, and a page is one JSON body.
const PAGE_BYTES: usize = 8 * 1024 * 1024;

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
    let mut items = store.list_items(id, after, limit).await?;
    items.truncate(n_fitting(&items, PAGE_BYTES));
    let next_after = items.last().map_or(after, |item| item.seq);
    Ok(HttpResponse::Ok().json(ItemsPage { items, next_after }))
}

/// How many of `items`, from the first, fit in `max_bytes` of text (each item's id and [`text_bytes`]); at least one,
/// so that paging always moves on.
///
/// [`text_bytes`]: dashboard_core::ItemBody::text_bytes
fn n_fitting(items: &[Item], max_bytes: usize) -> usize {
    let mut n_bytes = 0;
    let n_fitting = items
        .iter()
        .take_while(|item| {
            n_bytes += item.id.len() + item.body.text_bytes();
            n_bytes <= max_bytes
        })
        .count();
    n_fitting.max(1).min(items.len())
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ItemBody, ItemStatus, now};

    use super::*;

    /// Items of `texts` bytes (ids of one byte), and `max_bytes`: how many a page holds.
    fn check(texts: &[usize], max_bytes: usize, expected: usize) {
        let items: Vec<Item> = texts
            .iter()
            .enumerate()
            .map(|(index, n_bytes)| Item {
                id: "i".into(),
                seq: index as u64 + 1,
                status: ItemStatus::Completed,
                ts: now(),
                updated_at: now(),
                body: ItemBody::Reasoning { text: "x".repeat(*n_bytes) },
            })
            .collect();
        assert_eq!(n_fitting(&items, max_bytes), expected, "{texts:?} in {max_bytes} bytes");
    }

    #[test]
    fn a_page_stops_at_its_bytes_and_holds_at_least_one_item() {
        check(&[9, 9, 9], 100, 3);
        check(&[9, 9, 9], 20, 2);
        check(&[9, 9, 9], 19, 1);
        check(&[500, 9], 100, 1);
        check(&[], 100, 0);
    }
}
