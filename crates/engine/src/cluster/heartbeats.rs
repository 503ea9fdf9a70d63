//! Heartbeats: every sixth of the lease, this instance tells the store it is alive (which renews the leases of what it
//! runs), carries out the cancels asked of its runs elsewhere, and ends the work of instances whose leases ran out —
//! as the single-node recovery ends what a restart left `running`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashboard_core::{Execution, ExecutionId, ExecutionStatus};
use dashboard_store::ExecutionUpdate;
use tokio_util::sync::CancellationToken;

use super::Membership;
use crate::inner::Inner;
use crate::run::{StopReason, close_open_items};
use crate::{EngineError, INSTANCE_STOPPED_ERROR};

/// How many expired executions one call of `Cluster::expired` returns.
const EXPIRED_PAGE: usize = 100;

/// The shortest time between two heartbeats, whatever the lease.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// What the outage log calls this work.
const HEARTBEAT: &str = "the heartbeat";
/// What the outage log calls the end of expired work.
const ENDING_EXPIRED: &str = "ending the work of stopped instances";

pub(super) fn spawn(inner: &Arc<Inner>, membership: &Membership) {
    let interval = membership.settings.heartbeat_interval().max(MIN_INTERVAL);
    inner.runtime.spawn(heartbeat_loop(Arc::downgrade(inner), interval, membership.stopped.clone()));
}

async fn heartbeat_loop(inner: Weak<Inner>, interval: Duration, stopped: CancellationToken) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        strong.heartbeat_round().await;
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stopped.cancelled() => return,
        }
    }
}

impl Inner {
    /// One heartbeat: renew this instance's leases, stop the runs whose cancel was asked elsewhere, look again at the
    /// decisions its waiting runs wait for, and end one page of expired work. Failures end the round; the next one
    /// tries again.
    async fn heartbeat_round(self: &Arc<Self>) {
        let Some(membership) = &self.cluster else { return };
        let _turn = membership.heartbeat_turn.lock().await;
        if membership.stopped.is_cancelled() {
            return;
        }
        if let Err(error) = self.join_cluster().await {
            membership.outage.failed(HEARTBEAT, &error);
            return;
        }
        let settings = &membership.settings;
        // What this instance claimed or runs, by its own account: only those are renewed.
        let held: Vec<ExecutionId> = self.runs.lock().expect("runs lock poisoned").keys().copied().collect();
        let heartbeat = match settings.cluster.heartbeat(&self.identity.id, &held, settings.hold()).await {
            Ok(heartbeat) => heartbeat,
            Err(error) => {
                membership.outage.failed(HEARTBEAT, &error);
                return;
            }
        };
        membership.outage.succeeded(HEARTBEAT);
        // A backstop for a lost `Signal::Cancel`.
        for (id, by) in heartbeat.cancel_requested {
            if let Some(handle) = self.run_handle(id) {
                handle.stop(StopReason::Cancelled { by });
            }
        }
        // A backstop for a lost `Signal::Decided`.
        self.recheck_waiters().await;
        match self.end_expired(None, 1).await {
            Ok(_) => membership.outage.succeeded(ENDING_EXPIRED),
            Err(error) => membership.outage.failed(ENDING_EXPIRED, &error),
        }
    }

    /// Ends as interrupted, page by page (at most `max_pages`), the executions whose lease ran out, and when
    /// `instance` is given also that instance's own unfinished ones (see `Cluster::expired`); returns how many it
    /// ended. One that runs here is skipped: this instance is alive, and its next heartbeat renews the lease.
    pub(crate) async fn end_expired(
        &self,
        instance: Option<&str>,
        max_pages: usize,
    ) -> Result<usize, EngineError> {
        let Some(membership) = &self.cluster else { return Ok(0) };
        let mut ended = 0;
        for _ in 0..max_pages {
            let expired = membership.cluster().expired(instance, EXPIRED_PAGE).await?;
            let is_last = expired.len() < EXPIRED_PAGE;
            let mut has_progressed = false;
            for execution in expired {
                if self.run_handle(execution.id).is_some() {
                    continue;
                }
                has_progressed = true;
                if self.interrupt(&execution, INSTANCE_STOPPED_ERROR).await? {
                    log::warn!(
                        "execution {}: failed as interrupted; instance {} stopped renewing its lease",
                        execution.id,
                        execution.instance.as_deref().unwrap_or("(unknown)")
                    );
                    self.expire_approvals_of(
                        execution.id,
                        "the instance running this execution stopped while it was pending",
                    )
                    .await;
                    ended += 1;
                }
            }
            if is_last || !has_progressed {
                break;
            }
        }
        Ok(ended)
    }

    /// Ends an execution left `running` or `waiting` by a run that is gone (a restart, an instance that stopped) as
    /// `failed` with `error`, closing the items it left in progress in the same write, as a run that fails does.
    /// `false` when its status changed meanwhile (another instance ended it first, or a decision moved it): a lost
    /// race, not an error.
    pub(crate) async fn interrupt(&self, execution: &Execution, error: &str) -> Result<bool, EngineError> {
        let update = ExecutionUpdate::new(execution.status, ExecutionStatus::Failed).error(error);
        let open = self.stored_open_items(execution.id).await;
        let items = close_open_items(&open, &[], update.to);
        match self.transition_with_logs(execution.id, update, Vec::new(), items).await {
            Ok(_) => Ok(true),
            Err(EngineError::StatusChanged { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
