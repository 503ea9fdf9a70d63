//! The live event bus: wakes listeners; the store stays the source of truth.

use std::sync::Arc;

use dashboard_core::{Event, ExecutionId};

/// A message on the bus. Listeners that lag or miss messages catch up from the store by cursor: an event's `id`,
/// a log's `last_seq`, or (items having no cursor of change) by reading the execution's items again.
///
/// A message says where to look and carries no log text or item body: the bus keeps each message until every
/// receiver has read it, so a listener that stops reading must pin only small values. (An event is the one record it
/// carries whole; events are short.) New kinds of message may come: match with a wildcard arm.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
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
    /// Transcript items of an execution were stored (new or updated): read them from the store by seq.
    Items {
        /// The execution.
        execution_id: ExecutionId,
        /// The seqs of the items stored, ascending, each once; shared, since every listener receives the message.
        seqs: Arc<[u64]>,
    },
}
