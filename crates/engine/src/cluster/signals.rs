//! What other instances tell this one: the cluster's signals (a cancel of a run here, a decision its backend waits for,
//! log lines and items stored elsewhere, events recorded) and the relay that puts other instances' events on this
//! instance's bus, read from the store by cursor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashboard_core::{Event, EventKind};
use dashboard_store::{Signal, SignalSink};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::Membership;
use crate::BusMessage;
use crate::inner::Inner;
use crate::run::StopReason;

/// How many signals may wait for the signal task; past it they are dropped, and the task acts as after a reconnect
/// (reads the store again), which loses nothing.
const SIGNAL_BUFFER: usize = 4096;

/// How many events one read of the relay takes.
const RELAY_PAGE: usize = 500;

/// The longest the relay waits between two reads when no signal wakes it.
const RELAY_INTERVAL: Duration = Duration::from_secs(1);

/// What the outage log calls this work.
const RELAYING: &str = "relaying other instances' events";

/// Registers this engine's sink with the cluster and starts the tasks that act on what it hears.
pub(super) fn subscribe(inner: &Arc<Inner>, membership: &Membership) {
    let (sender, receiver) = mpsc::channel(SIGNAL_BUFFER);
    let has_overflowed = Arc::new(AtomicBool::new(false));
    let sink: SignalSink = {
        let has_overflowed = Arc::clone(&has_overflowed);
        // A sink must not block: a full buffer drops the signal and says so.
        Arc::new(move |signal| {
            if sender.try_send(signal).is_err() {
                has_overflowed.store(true, Ordering::SeqCst);
            }
        })
    };
    membership.cluster().subscribe(sink);
    let weak = Arc::downgrade(inner);
    let stopped = membership.stopped.clone();
    inner.runtime.spawn(signal_loop(weak.clone(), receiver, has_overflowed, stopped.clone()));
    inner.runtime.spawn(relay_loop(weak, Arc::clone(&membership.relay_wake), stopped));
}

async fn signal_loop(
    inner: Weak<Inner>,
    mut signals: mpsc::Receiver<Signal>,
    has_overflowed: Arc<AtomicBool>,
    stopped: CancellationToken,
) {
    loop {
        let signal = tokio::select! {
            signal = signals.recv() => signal,
            () = stopped.cancelled() => return,
        };
        let (Some(signal), Some(inner)) = (signal, inner.upgrade()) else { return };
        if has_overflowed.swap(false, Ordering::SeqCst) {
            inner.hear(Signal::Reconnected);
        }
        inner.hear(signal);
    }
}

async fn relay_loop(inner: Weak<Inner>, wake: Arc<Notify>, stopped: CancellationToken) {
    // Events before the relay's start are the store's to tell: a listener catches up by cursor.
    let mut cursor = None;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        strong.relay_round(&mut cursor).await;
        drop(strong);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(RELAY_INTERVAL) => {}
            () = stopped.cancelled() => return,
        }
    }
}

impl Inner {
    /// Acts on one signal of the cluster.
    fn hear(self: &Arc<Self>, signal: Signal) {
        let Some(membership) = &self.cluster else { return };
        match signal {
            Signal::Events { .. } => {
                // The relay reads them, and wakes the claim loop if they queued work or freed a slot: most events
                // (a start, a waiting, a function changed) change neither, and a claim round per event of every
                // instance would keep the claim lock busy for nothing.
                membership.relay_wake.notify_one();
            }
            Signal::Logs { execution_id, last_seq } => {
                // No receiver is fine: the bus only wakes listeners.
                let _ = self.bus.send(BusMessage::Logs { execution_id, last_seq });
            }
            Signal::Items { execution_id, seqs } => {
                let _ = self.bus.send(BusMessage::Items { execution_id, seqs: seqs.into() });
            }
            Signal::Cancel { execution_id, by } => {
                if let Some(handle) = self.run_handle(execution_id) {
                    handle.stop(StopReason::Cancelled { by });
                }
            }
            Signal::Decided { approval_id } => {
                let inner = Arc::clone(self);
                self.runtime.spawn(async move { inner.hear_decision(approval_id).await });
            }
            Signal::Reconnected => {
                membership.relay_wake.notify_one();
                membership.wake_claims();
                let inner = Arc::clone(self);
                self.runtime.spawn(async move { inner.recheck_waiters().await });
            }
        }
    }

    /// Sends the events recorded since `cursor` on this instance's bus, in order: those of other instances reach its
    /// listeners so, and its own come a second time (a listener takes an event only when its id is the next one, so
    /// the copy is dropped). The cursor starts at the newest event when the relay starts.
    async fn relay_round(&self, cursor: &mut Option<u64>) {
        let Some(membership) = &self.cluster else { return };
        let mut after = match *cursor {
            Some(after) => after,
            None => match self.store.last_event_id().await {
                Ok(last) => {
                    membership.outage.succeeded(RELAYING);
                    *cursor = Some(last);
                    return;
                }
                Err(error) => {
                    membership.outage.failed(RELAYING, &error);
                    return;
                }
            },
        };
        loop {
            let events = match self.store.list_events(after, RELAY_PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    membership.outage.failed(RELAYING, &error);
                    return;
                }
            };
            membership.outage.succeeded(RELAYING);
            let is_last = events.len() < RELAY_PAGE;
            if events.iter().any(|event| frees_or_queues(event.kind)) {
                membership.wake_claims();
            }
            for event in events {
                after = event.id;
                *cursor = Some(after);
                self.notice_end(&event).await;
                // No receiver is fine: the bus only wakes listeners.
                let _ = self.bus.send(BusMessage::Event(event));
            }
            if is_last {
                return;
            }
        }
    }

    /// Stops a run here whose execution `event` says has ended — ended by another instance: a remote agent's report
    /// that reached it, or its finding that this instance's lease ran out. The run's end then finds the status stored
    /// and adds only its last lines. The run's own end comes by here too, and is left alone.
    async fn notice_end(&self, event: &Event) {
        let is_end = matches!(
            event.kind,
            EventKind::ExecutionSucceeded
                | EventKind::ExecutionFailed
                | EventKind::ExecutionTimedOut
                | EventKind::ExecutionCancelled
        );
        let Some(id) = event.execution_id.filter(|_| is_end) else { return };
        let Some(handle) = self.run_handle(id).filter(|handle| !handle.has_ended()) else { return };
        match self.store.get_execution(id).await {
            Ok(Some(execution)) if execution.status.is_terminal() => {
                handle.stop(StopReason::EndedElsewhere { status: execution.status, error: execution.error });
            }
            Ok(_) => {}
            Err(error) => log::warn!("execution {id}: could not read how it ended: {error}"),
        }
    }
}

/// Whether an event of this kind may let this instance claim something: an execution queued, or one that ended (its
/// function's slot is free again).
fn frees_or_queues(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ExecutionQueued
            | EventKind::ExecutionSucceeded
            | EventKind::ExecutionFailed
            | EventKind::ExecutionCancelled
            | EventKind::ExecutionTimedOut
    )
}
