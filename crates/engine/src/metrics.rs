//! The engine's own counters for `GET /metrics`: triggers, starts and finishes by backend and status, run durations,
//! how the store takes the engine's writes (failures, and an episode of failing writes going on), and a gauge of
//! live-stream clients that the server keeps up to date.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_core::{Execution, ExecutionStatus};
use dashboard_store::{Histogram, HistogramSnapshot, StoreError};
use tokio::sync::Notify;

/// Upper bounds, in seconds, of the run duration buckets: from a demo run to an hour-long agent task.
pub const DURATION_SECONDS_BOUNDS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Counters since the engine started; read through [`Dashboard::metrics`](crate::Dashboard::metrics).
#[derive(Debug)]
pub struct EngineMetrics {
    /// Per backend: how many executions reached each status (queued = triggered), by index in
    /// [`ExecutionStatus::ALL`].
    by_backend: Mutex<HashMap<String, [u64; ExecutionStatus::ALL.len()]>>,
    /// Seconds from `started_at` to `finished_at` of every execution that ran and finished.
    duration_seconds: Histogram,
    /// Clients connected to a live stream (SSE) now. The server increments it when a stream opens and decrements it
    /// when it closes; the engine never touches it.
    pub sse_clients: AtomicI64,
    /// How the store takes the engine's writes.
    pub(crate) store_writes: Arc<StoreWrites>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            by_backend: Mutex::new(HashMap::new()),
            duration_seconds: Histogram::new(DURATION_SECONDS_BOUNDS),
            sse_clients: AtomicI64::new(0),
            store_writes: Arc::default(),
        }
    }
}

/// How many executions of one backend reached one status since the engine started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    /// The backend.
    pub backend: String,
    /// The status reached (`queued` counts triggers, `running` starts, the terminal ones completions).
    pub status: ExecutionStatus,
    /// How many.
    pub count: u64,
}

impl EngineMetrics {
    /// Records that `execution` has just reached its current status (called after the store has it).
    pub(crate) fn record(&self, execution: &Execution) {
        let index = ExecutionStatus::ALL.iter().position(|status| *status == execution.status).unwrap_or(0);
        {
            let mut by_backend = self.by_backend.lock().expect("metrics lock poisoned");
            match by_backend.get_mut(execution.backend.as_str()) {
                Some(counts) => counts[index] += 1,
                None => {
                    let mut counts = [0; ExecutionStatus::ALL.len()];
                    counts[index] = 1;
                    by_backend.insert(execution.backend.clone(), counts);
                }
            }
        }
        if execution.status.is_terminal()
            && let Some(duration) =
                execution.started_at.and_then(|_| execution.duration(dashboard_core::now()))
        {
            self.duration_seconds.observe(duration.as_seconds_f64().max(0.0));
        }
    }

    /// Every (backend, status) count, sorted by backend then status; statuses never reached are left out.
    pub fn status_counts(&self) -> Vec<StatusCount> {
        let by_backend = self.by_backend.lock().expect("metrics lock poisoned");
        let mut counts: Vec<StatusCount> = by_backend
            .iter()
            .flat_map(|(backend, counts)| {
                ExecutionStatus::ALL.iter().zip(counts).filter(|(_, count)| **count > 0).map(
                    |(status, count)| StatusCount {
                        backend: backend.clone(),
                        status: *status,
                        count: *count,
                    },
                )
            })
            .collect();
        counts.sort_by(|a, b| (&a.backend, a.status).cmp(&(&b.backend, b.status)));
        counts
    }

    /// The run durations recorded so far.
    pub fn duration_seconds(&self) -> HistogramSnapshot {
        self.duration_seconds.snapshot()
    }

    /// Store writes of the engine that failed because the store could not take them (a full disk, a file made
    /// read-only), retries included, since the engine started.
    pub fn store_write_failures(&self) -> u64 {
        self.store_writes.failures_total.load(Ordering::Relaxed)
    }

    /// While the engine's store writes fail: why (the last failure). `None` once a write has succeeded again.
    pub fn store_write_trouble(&self) -> Option<String> {
        self.store_writes
            .episode
            .lock()
            .expect("store writes lock poisoned")
            .as_ref()
            .map(|episode| episode.reason.clone())
    }

    /// Episodes of failing writes since the engine started: each began with a failed write (or probe) and is logged
    /// once when it begins and once when it ends.
    pub fn store_write_episodes(&self) -> u64 {
        self.store_writes.episodes_total.load(Ordering::Relaxed)
    }

    /// Executions whose change (their start, log lines or final status) waits for the store to take it: each is
    /// retried until it lands.
    pub fn held_executions(&self) -> i64 {
        self.store_writes.held.load(Ordering::Relaxed)
    }
}

/// How the store takes the engine's writes: a count of failures, the episode of failing writes going on now (logged
/// once when it begins and once when it ends, not per attempt), and a wake-up for the writes waiting to retry.
#[derive(Debug, Default)]
pub(crate) struct StoreWrites {
    failures_total: AtomicU64,
    episodes_total: AtomicU64,
    held: AtomicI64,
    episode: Mutex<Option<Episode>>,
    /// Woken when a write succeeds after failures, so that every held write tries again at once.
    recovered: Notify,
}

/// A stretch of time in which the store refused the engine's writes.
#[derive(Debug)]
struct Episode {
    began: Instant,
    failures: u64,
    reason: String,
    /// Whether a write of the engine failed in it, not only the health check's probe. Only a write's success ends
    /// such an episode.
    has_write_failed: bool,
}

impl StoreWrites {
    /// Records how a store write ended. Only [`StoreError::Unavailable`] is the store failing; any other answer (a
    /// refused compare-and-set, a missing row) means the store did its work.
    pub(crate) fn observe<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Err(error @ StoreError::Unavailable { .. }) => self.failed(error),
            _ => self.succeeded(),
        }
    }

    fn failed(&self, error: &StoreError) {
        self.record_failure(error, true);
    }

    /// Records a failed probe of the health check: counted as a failed write, and it begins an episode if none is
    /// going on.
    pub(crate) fn probe_failed(&self, error: &StoreError) {
        self.record_failure(error, false);
    }

    fn record_failure(&self, error: &StoreError, is_write: bool) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let mut episode = self.episode.lock().expect("store writes lock poisoned");
        match episode.as_mut() {
            Some(episode) => {
                episode.failures += 1;
                episode.reason = error.to_string();
                episode.has_write_failed |= is_write;
            }
            None => {
                log::error!(
                    "store writes fail: {error}; executions keep how they ended and retry until the store takes it \
                     (GET /healthz answers 503 meanwhile)"
                );
                self.episodes_total.fetch_add(1, Ordering::Relaxed);
                *episode = Some(Episode {
                    began: Instant::now(),
                    failures: 1,
                    reason: error.to_string(),
                    has_write_failed: is_write,
                });
            }
        }
    }

    /// Records a probe of the health check that got through: it wakes the held writes to try again now, and ends an
    /// episode only if no write of the engine failed in it (a small probe may fit where a run's log lines do not, so
    /// only a write that lands says writes succeed again).
    pub(crate) fn probe_succeeded(&self) {
        let mut episode = self.episode.lock().expect("store writes lock poisoned");
        if episode.as_ref().is_some_and(|episode| !episode.has_write_failed)
            && let Some(ended) = episode.take()
        {
            ended.log_end();
        }
        drop(episode);
        self.recovered.notify_waiters();
    }

    /// Ends the episode, if one is going on, and wakes the held writes.
    fn succeeded(&self) {
        let ended = self.episode.lock().expect("store writes lock poisoned").take();
        if let Some(episode) = ended {
            episode.log_end();
            self.recovered.notify_waiters();
        }
    }

    /// Starts the retries of one held write.
    pub(crate) fn retry(self: &Arc<Self>) -> Retry {
        Retry { writes: Arc::clone(self), next_wait: RETRY_FIRST_WAIT, is_held: false }
    }
}

impl Episode {
    fn log_end(&self) {
        log::warn!(
            "store writes succeed again, after {} failed attempts in {:.1} s",
            self.failures,
            self.began.elapsed().as_secs_f64()
        );
    }
}

/// How long a failed write waits before its first retry; each further wait is twice as long, up to
/// [`RETRY_LONGEST_WAIT`]. Any write that succeeds meanwhile wakes every waiting retry at once.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(50);
/// The longest wait between two attempts of a held write.
const RETRY_LONGEST_WAIT: Duration = Duration::from_secs(2);

/// The retries of one held write: the waits between attempts, and the execution counted as held meanwhile.
pub(crate) struct Retry {
    writes: Arc<StoreWrites>,
    next_wait: Duration,
    is_held: bool,
}

impl Retry {
    /// Waits before the next attempt: the back-off, cut short when another write gets through or when `stop`
    /// (if given) is cancelled.
    pub(crate) async fn wait(&mut self, stop: Option<&tokio_util::sync::CancellationToken>) {
        if !self.is_held {
            self.is_held = true;
            self.writes.held.fetch_add(1, Ordering::Relaxed);
        }
        let recovered = self.writes.recovered.notified();
        let stopped = async {
            match stop {
                Some(stop) => stop.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(self.next_wait) => {}
            () = recovered => {}
            () = stopped => {}
        }
        self.next_wait = (self.next_wait * 2).min(RETRY_LONGEST_WAIT);
    }
}

impl Drop for Retry {
    fn drop(&mut self) {
        if self.is_held {
            self.writes.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::ExecutionId;
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_are_kept_per_backend_and_status() {
        let metrics = EngineMetrics::default();
        let mut execution: Execution = serde_json::from_value(json!({
            "id": ExecutionId::generate(), "function": "f", "function_id": ExecutionId::generate(),
            "function_version": 1, "backend": "demo", "input": {}, "status": "queued", "output": null,
            "error": null, "usage": null, "attempt": 1, "retry_of": null, "idempotency_key": null,
            "triggered_by": null, "created_at": "2026-01-01T00:00:00Z", "started_at": null, "finished_at": null
        }))
        .expect("a valid execution");
        metrics.record(&execution);
        execution.status = ExecutionStatus::Succeeded;
        execution.started_at = Some(dashboard_core::now());
        execution.finished_at = execution.started_at;
        metrics.record(&execution);
        let counts: Vec<_> =
            metrics.status_counts().into_iter().map(|count| (count.status, count.count)).collect();
        assert_eq!(counts, vec![(ExecutionStatus::Queued, 1), (ExecutionStatus::Succeeded, 1)]);
        assert_eq!(metrics.duration_seconds().count, 1);
    }
}
