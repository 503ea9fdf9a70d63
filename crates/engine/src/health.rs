//! The store's probe behind `/healthz`: one probe at a time, its answer shared by every health check that waited for
//! it and reused for a second, so that a flood of health checks costs the store one write a second, not one each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashboard_store::{DashboardStore, StoreError};

use crate::metrics::StoreWrites;

/// How long a probe's answer is reused. A store that starts or stops failing shows on `/healthz` within this.
pub(crate) const PROBE_REUSE: Duration = Duration::from_secs(1);

/// The last probe of the store, and the lock that lets one health check at a time make a new one.
#[derive(Debug, Default)]
pub(crate) struct StoreProbe {
    last: tokio::sync::Mutex<Option<Probed>>,
    /// How many probes have finished: a health check that sees it change while it waits for the lock takes the
    /// answer just found, however long that probe took.
    n_finished: AtomicU64,
}

/// A probe's answer: `Err` holds why the store failed it.
#[derive(Clone, Debug)]
struct Probed {
    at: Instant,
    outcome: Result<(), String>,
}

impl StoreProbe {
    /// Whether the store takes a write now, by its [`ping`](DashboardStore::ping): a fresh answer (or the one a
    /// concurrent check has just found), else a new probe. A new probe is recorded in `writes`: its failure as a
    /// failed write (it may begin an episode), its success as a wake-up for the held writes — it never ends an
    /// episode in which a write of the engine failed, since a small probe may fit where a run's writes do not.
    pub(crate) async fn check(&self, store: &dyn DashboardStore, writes: &StoreWrites) -> Result<(), String> {
        let n_finished = self.n_finished.load(Ordering::Acquire);
        let mut last = self.last.lock().await;
        if let Some(probed) = last.as_ref()
            && (self.n_finished.load(Ordering::Acquire) != n_finished || probed.at.elapsed() < PROBE_REUSE)
        {
            return probed.outcome.clone();
        }
        let pinged = store.ping().await;
        match &pinged {
            Ok(()) => writes.probe_succeeded(),
            Err(error @ StoreError::Unavailable { .. }) => writes.probe_failed(error),
            // Not the store failing to write (a bug, a schema it does not know): no episode of failing writes.
            Err(_) => {}
        }
        let outcome = pinged.map_err(|error| match error {
            StoreError::Unavailable { message, .. } => message,
            other => other.to_string(),
        });
        *last = Some(Probed { at: Instant::now(), outcome: outcome.clone() });
        self.n_finished.fetch_add(1, Ordering::Release);
        outcome
    }
}
