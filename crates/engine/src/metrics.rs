//! The engine's own counters for `GET /metrics`: triggers, starts and finishes by backend and status, run durations,
//! and a gauge of live-stream clients that the server keeps up to date.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use dashboard_core::{Execution, ExecutionStatus};
use dashboard_store::{Histogram, HistogramSnapshot};

/// Upper bounds, in seconds, of the run duration buckets: from a demo run to an hour-long agent task.
pub const DURATION_SECONDS_BOUNDS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Counters since the engine started; read through [`Dashboard::metrics`](crate::Dashboard::metrics).
#[derive(Debug)]
pub struct EngineMetrics {
    /// Per backend: how many executions reached each status (queued = triggered), by index in
    /// [`ExecutionStatus::ALL`].
    by_backend: Mutex<HashMap<String, [u64; 6]>>,
    /// Seconds from `started_at` to `finished_at` of every execution that ran and finished.
    duration_seconds: Histogram,
    /// Clients connected to a live stream (SSE) now. The server increments it when a stream opens and decrements it
    /// when it closes; the engine never touches it.
    pub sse_clients: AtomicI64,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            by_backend: Mutex::new(HashMap::new()),
            duration_seconds: Histogram::new(DURATION_SECONDS_BOUNDS),
            sse_clients: AtomicI64::new(0),
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
                    let mut counts = [0; 6];
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
