//! The claim loop: while this instance has free slots and takes work, it claims queued executions from the shared
//! store and runs them — on a wake (a trigger here, a slot freed, events of another instance) and at least every
//! second.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashboard_core::Execution;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Membership;
use crate::inner::Inner;
use crate::scheduler::QueuedRun;

/// The longest the claim loop waits between two rounds when nothing wakes it.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// What the outage log calls this work.
const CLAIMING: &str = "claiming queued executions";

pub(super) fn spawn(inner: &Arc<Inner>, membership: &Membership) {
    let task =
        claim_loop(Arc::downgrade(inner), Arc::clone(&membership.claims_wake), membership.stopped.clone());
    inner.runtime.spawn(task);
}

async fn claim_loop(inner: Weak<Inner>, wake: Arc<Notify>, stopped: CancellationToken) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        strong.claim_round().await;
        drop(strong);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(CLAIM_INTERVAL) => {}
            () = stopped.cancelled() => return,
        }
    }
}

impl Inner {
    /// Claims and starts queued executions while this instance has free slots; a store that fails ends the round (the
    /// next one tries again).
    async fn claim_round(self: &Arc<Self>) {
        let Some(membership) = &self.cluster else { return };
        if !self.is_accepting.load(Ordering::SeqCst) {
            return;
        }
        if let Err(error) = self.join_cluster().await {
            membership.outage.failed(CLAIMING, &error);
            return;
        }
        loop {
            let free = self.scheduler.lock().expect("scheduler lock poisoned").free_slots();
            if free == 0 {
                return;
            }
            let settings = &membership.settings;
            let claimed = match settings.cluster.claim(&self.identity.id, free, settings.hold()).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    membership.outage.failed(CLAIMING, &error);
                    return;
                }
            };
            membership.outage.succeeded(CLAIMING);
            let is_last = claimed.len() < free;
            for execution in claimed {
                self.start_claimed(membership, execution).await;
            }
            if is_last {
                return;
            }
        }
    }

    /// Runs a claimed execution; one this instance will not start after all (it began to shut down meanwhile) goes
    /// back to the store for another instance.
    async fn start_claimed(self: &Arc<Self>, membership: &Membership, execution: Execution) {
        let is_admitted = self.is_accepting.load(Ordering::SeqCst)
            && self.scheduler.lock().expect("scheduler lock poisoned").admit(execution.function_id);
        if is_admitted {
            // Its prompt is rendered at its start, as a run queued again after a restart renders its own; its
            // function's limit was held by the claim.
            self.spawn_run(QueuedRun { execution, max_concurrency: None, prompt: None });
            return;
        }
        if let Err(error) = membership.cluster().release(&self.identity.id, execution.id).await {
            // Its lease runs out instead, and another instance claims it then.
            log::warn!("execution {}: could not give back its claim: {error}", execution.id);
        }
    }
}
