//! The live event bus: wakes listeners; the store stays the source of truth.

use std::sync::Arc;

use dashboard_core::{Event, ExecutionId, Item};

/// A message on the bus. Listeners that lag or miss messages catch up from the store by cursor: an event's `id`,
/// a log's `last_seq`, or (items having no cursor of change) by reading the execution's items again.
#[derive(Clone, Debug, PartialEq)]
pub enum BusMessage {
    /// An activity event was recorded.
    Event(Event),
    /// Log lines up to `last_seq` were stored for an execution.
    Logs {
        /// The execution.
        execution_id: ExecutionId,
        /// The seq of the newest stored line.
        last_seq: u64,
    },
    /// Transcript items of an execution were stored (new or updated), as the store returned them.
    Items {
        /// The execution.
        execution_id: ExecutionId,
        /// The items, one per id; shared, since every listener receives the message.
        items: Arc<[Item]>,
    },
}
