//! Transcript items still in progress when a run ends: closed with its final status, so that a cancelled, timed-out
//! or failed run shows no command running for ever.

use dashboard_core::{ExecutionId, ExecutionStatus, ItemStatus, NewItem};

use crate::inner::Inner;

/// How many items one read of a run's end takes while it looks for the open ones.
const ITEMS_PAGE: usize = 1000;

/// The status an item still in progress takes when its execution ends `to`: `declined` when the run was stopped
/// (cancelled, timed out), `failed` when it failed; none when it succeeded (the agent said it was done, and what it
/// left open stays as it reported it).
pub(super) fn closing_status(to: ExecutionStatus) -> Option<ItemStatus> {
    match to {
        ExecutionStatus::Cancelled | ExecutionStatus::TimedOut => Some(ItemStatus::Declined),
        ExecutionStatus::Failed => Some(ItemStatus::Failed),
        _ => None,
    }
}

/// The items to store with the final status `to`: the stored items still open, then the `held` ones, each open one
/// closed ([`closing_status`]). The store merges an id given twice, the later winning, so a held item's newer state
/// is kept.
pub(crate) fn closed(stored_open: &[NewItem], held: &[NewItem], to: ExecutionStatus) -> Vec<NewItem> {
    let Some(closing) = closing_status(to) else { return held.to_vec() };
    stored_open
        .iter()
        .chain(held)
        .cloned()
        .map(|mut item| {
            if item.status.is_open() {
                item.status = closing;
            }
            item
        })
        .collect()
}

impl Inner {
    /// The execution's stored items that are still in progress, as reports that would store them unchanged. A read
    /// that fails ends the search: what is not found stays open.
    pub(crate) async fn stored_open_items(&self, id: ExecutionId) -> Vec<NewItem> {
        let mut open = Vec::new();
        let mut after = 0;
        loop {
            let page = match self.store.list_items(id, after, ITEMS_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    log::warn!("execution {id}: could not read its open items to close them: {error}");
                    return open;
                }
            };
            let is_last = page.len() < ITEMS_PAGE;
            after = page.last().map_or(after, |item| item.seq);
            open.extend(page.into_iter().filter(|item| item.status.is_open()).map(|item| NewItem {
                id: item.id,
                status: item.status,
                body: item.body,
            }));
            if is_last {
                return open;
            }
        }
    }
}
