//! The transcript items of a log stream: which ones its client has, as sent, and which it still lacks.
//!
//! Items change in place (an upsert by id), so they have no cursor of change to resume from. The stream sends what the
//! bus says was stored, and compares every stored item with what it sent (a sweep) when it cannot trust that it heard
//! everything: at the start (the client may hold nothing), after its bus receiver lagged, and before the terminal
//! status (the items stored with it may not have reached the bus yet). A sweep sends only the items whose JSON differs
//! from what this stream sent, so the client, which upserts by id, always ends with every item as stored.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use dashboard_core::{ExecutionId, Item};
use dashboard_engine::StoreReader;
use dashboard_store::StoreError;

use super::push_json;

/// The most items read from the store (and sent in one chunk) at once by a sweep.
const ITEMS_PAGE: usize = 500;

/// What one log stream's client has of an execution's items.
#[derive(Debug)]
pub(super) struct ItemTracker {
    /// A hash of each item's JSON as last sent, by seq.
    sent: HashMap<u64, u64>,
    /// Items the bus carried since the last look, to be sent after the lines.
    heard: Vec<Item>,
    /// The seq a sweep of the stored items has got to, while one is under way.
    sweep_after: Option<u64>,
}

impl Default for ItemTracker {
    /// A tracker for a client that has nothing yet: its first look sweeps.
    fn default() -> Self {
        Self { sent: HashMap::new(), heard: Vec::new(), sweep_after: Some(0) }
    }
}

impl ItemTracker {
    /// Items the bus says were stored.
    pub(super) fn heard(&mut self, items: &[Item]) {
        self.heard.extend_from_slice(items);
    }

    /// Compares every stored item with what was sent, from the first: what may have been missed is sent again.
    pub(super) fn sweep(&mut self) {
        self.sweep_after = Some(0);
    }

    /// Writes to `text` the items the client lacks: those the bus carried, then a page of the sweep under way, each as
    /// an `event: item` message with `id` (the stream's line cursor, which a reconnect resumes from). Whether the
    /// sweep has more pages.
    pub(super) async fn write(
        &mut self,
        store: &StoreReader,
        execution_id: ExecutionId,
        text: &mut String,
        id: u64,
    ) -> Result<bool, StoreError> {
        for item in std::mem::take(&mut self.heard) {
            self.push_if_changed(text, id, &item);
        }
        let Some(after) = self.sweep_after else { return Ok(false) };
        let page = store.list_items(execution_id, after, ITEMS_PAGE).await?;
        for item in &page {
            self.push_if_changed(text, id, item);
        }
        let has_more = page.len() == ITEMS_PAGE;
        self.sweep_after = page.last().filter(|_| has_more).map(|item| item.seq);
        Ok(has_more)
    }

    fn push_if_changed(&mut self, text: &mut String, id: u64, item: &Item) {
        let json = serde_json::to_string(item).expect("items serialize to JSON: their maps have string keys");
        let mut hasher = DefaultHasher::new();
        json.hash(&mut hasher);
        let hash = hasher.finish();
        if self.sent.insert(item.seq, hash) != Some(hash) {
            push_json(text, id, "item", &json);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dashboard_core::{Function, FunctionSpec, ItemBody, ItemStatus, NewItem};
    use dashboard_store::{DashboardStore, MemoryStore, NewExecution};

    use super::*;

    /// A queued execution in `store`.
    async fn execution(store: &MemoryStore) -> ExecutionId {
        let function = Function::create(FunctionSpec::new("f", "demo")).expect("a valid spec");
        let function = store.create_function(function).await.expect("stored").value;
        let execution = NewExecution::of(&function, serde_json::json!({}));
        store.create_execution(execution).await.expect("stored").value.id
    }

    fn command(status: ItemStatus) -> NewItem {
        let body =
            ItemBody::Command { command: "ls".into(), cwd: None, output: String::new(), exit_code: None };
        NewItem::new("c1", status, body).expect("an item")
    }

    /// The `status` field of every item message in `text`.
    fn statuses(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|json| serde_json::from_str::<serde_json::Value>(json).expect("JSON")["status"].to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_sweep_sends_only_what_the_client_lacks() {
        let store = Arc::new(MemoryStore::default());
        let execution_id = execution(&store).await;
        let reader = StoreReader::new(store.clone());
        let stored =
            store.upsert_items(execution_id, vec![command(ItemStatus::InProgress)]).await.expect("stored");
        let mut tracker = ItemTracker::default();
        let mut text = String::new();
        assert!(!tracker.write(&reader, execution_id, &mut text, 3).await.expect("read"));
        assert_eq!(statuses(&text), ["\"in_progress\""], "the first look sends every item");
        assert!(text.starts_with("id: 3\nevent: item\n"), "{text}");

        // The bus copy of what was just sent is not sent again; a sweep after a change sends the change only.
        tracker.heard(&stored);
        let mut text = String::new();
        tracker.write(&reader, execution_id, &mut text, 3).await.expect("read");
        assert_eq!(text, "");
        store.upsert_items(execution_id, vec![command(ItemStatus::Completed)]).await.expect("stored");
        tracker.sweep();
        let mut text = String::new();
        tracker.write(&reader, execution_id, &mut text, 4).await.expect("read");
        assert_eq!(statuses(&text), ["\"completed\""]);
        tracker.sweep();
        let mut text = String::new();
        tracker.write(&reader, execution_id, &mut text, 4).await.expect("read");
        assert_eq!(text, "", "nothing changed since");
    }
}
