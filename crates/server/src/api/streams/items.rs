//! The transcript items of a log stream: which ones its client has, as sent, and which it still lacks.
//!
//! Items change in place (an upsert by id), so they have no cursor of change to resume from. The bus says which items
//! were stored (their seqs, never their bodies), and the stream reads those from the store; it compares every stored
//! item with what it sent (a sweep) when it cannot trust that it heard everything: at the start (the client may hold
//! nothing), after its bus receiver lagged, and before the terminal status (the items stored with it may not have
//! reached the bus yet). Only items whose JSON differs from what this stream sent go out, so the client, which upserts
//! by id, always ends with every item as stored — in its newest state; states in between may be skipped.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use dashboard_core::{ExecutionId, Item};
use dashboard_engine::StoreReader;
use dashboard_store::StoreError;

use super::push_json;

/// The most items read from the store at once by a sweep, and the most heard of before a stream sweeps instead.
const ITEMS_PAGE: usize = 500;
/// The text of items after which one chunk stops and the rest waits for the next: an item may hold a megabyte.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// What one log stream's client has of an execution's items.
#[derive(Debug)]
pub(super) struct ItemTracker {
    /// A hash of each item's JSON as last sent, by seq.
    sent: HashMap<u64, u64>,
    /// The seqs of items the bus says were stored since the last look, to be read and sent after the lines.
    heard: BTreeSet<u64>,
    /// The seq a sweep of the stored items has got to, while one is under way.
    sweep_after: Option<u64>,
}

impl Default for ItemTracker {
    /// A tracker for a client that has nothing yet: its first look sweeps.
    fn default() -> Self {
        Self { sent: HashMap::new(), heard: BTreeSet::new(), sweep_after: Some(0) }
    }
}

impl ItemTracker {
    /// The seqs of items the bus says were stored. Past a page of them, a sweep reads them as cheaply.
    pub(super) fn heard(&mut self, seqs: &[u64]) {
        self.heard.extend(seqs);
        if self.heard.len() > ITEMS_PAGE {
            self.sweep();
        }
    }

    /// Compares every stored item with what was sent, from the first: what may have been missed is sent again.
    pub(super) fn sweep(&mut self) {
        self.heard.clear();
        self.sweep_after = Some(0);
    }

    /// Writes to `text` the items the client lacks: those the bus spoke of, then a page of the sweep under way, each
    /// read from the store and sent as an `event: item` message with `id` (the stream's line cursor, which a reconnect
    /// resumes from). Whether there is more to send (a sweep's next page, or what did not fit in this chunk).
    pub(super) async fn write(
        &mut self,
        store: &StoreReader,
        execution_id: ExecutionId,
        text: &mut String,
        id: u64,
    ) -> Result<bool, StoreError> {
        while let Some(&first) = self.heard.first() {
            if text.len() >= CHUNK_BYTES {
                return Ok(true);
            }
            // Seqs have no gaps, so a run of consecutive ones is one read.
            let n_items = (first..).zip(self.heard.iter()).take_while(|(seq, heard)| seq == *heard).count();
            for item in store.list_items(execution_id, first - 1, n_items).await? {
                self.push_if_changed(text, id, &item);
            }
            self.heard.retain(|seq| *seq >= first + n_items as u64);
        }
        let Some(after) = self.sweep_after else { return Ok(false) };
        let page = store.list_items(execution_id, after, ITEMS_PAGE).await?;
        let mut has_more = page.len() == ITEMS_PAGE;
        let mut swept_to = after;
        for item in &page {
            if text.len() >= CHUNK_BYTES {
                has_more = true;
                break;
            }
            self.push_if_changed(text, id, item);
            swept_to = item.seq;
        }
        self.sweep_after = has_more.then_some(swept_to);
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

        // What the bus says was stored is read from the store, and not sent again when the client has it; a sweep after a
        // change sends the change only.
        tracker.heard(&stored.iter().map(|item| item.seq).collect::<Vec<_>>());
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

    #[tokio::test]
    async fn what_the_bus_speaks_of_is_read_from_the_store_in_its_newest_state() {
        let store = Arc::new(MemoryStore::default());
        let execution_id = execution(&store).await;
        let reader = StoreReader::new(store.clone());
        let mut tracker = ItemTracker::default();
        let mut text = String::new();
        tracker.write(&reader, execution_id, &mut text, 1).await.expect("read");
        assert_eq!(text, "", "nothing stored yet");

        let stored =
            store.upsert_items(execution_id, vec![command(ItemStatus::InProgress)]).await.expect("stored");
        store.upsert_items(execution_id, vec![command(ItemStatus::Completed)]).await.expect("stored");
        tracker.heard(&[stored[0].seq]);
        let mut text = String::new();
        tracker.write(&reader, execution_id, &mut text, 2).await.expect("read");
        assert_eq!(statuses(&text), ["\"completed\""], "the stored state, not the one first announced");
    }
}
