//! The live event bus: wakes listeners; the store stays the source of truth.

use dashboard_core::{Event, ExecutionId};

/// A message on the bus. Listeners that lag or miss messages catch up from the store by cursor: an event's `id`,
/// a log's `last_seq`.
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
}
