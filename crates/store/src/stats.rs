//! What a store reports about its own work: [`StoreStats`], and the lock-free [`Histogram`] it is recorded with.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds, in seconds, of the commit latency buckets: from a fast disk's fsync to a stalled one.
pub const COMMIT_SECONDS_BOUNDS: &[f64] =
    &[0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Upper bounds of the batch size buckets: how many changes shared one commit.
pub const BATCH_SIZE_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A histogram that many threads record into without a lock; read it with [`Histogram::snapshot`].
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then one for the values above every bound; not cumulative.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum of the observed values, as `f64` bits.
    sum_bits: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending); values above the last fall in `+Inf`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one value.
    pub fn observe(&self, value: f64) {
        let index = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut current = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// The values recorded so far. Taken without a lock, so under load `count` may differ from the buckets' total
    /// by the few observations that were in flight.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                total += bucket.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram's values at one moment, in the shape Prometheus wants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// The upper bounds of the buckets, ascending.
    pub bounds: Vec<f64>,
    /// For each bound, how many values were at most it; one more entry at the end for `+Inf`.
    pub cumulative: Vec<u64>,
    /// How many values were recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// What a store tells about its writes, for `GET /metrics`. Stores that record nothing report the default (empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreStats {
    /// Seconds from the start of a write transaction to its commit (one per group commit).
    pub commit_seconds: HistogramSnapshot,
    /// How many changes shared each commit.
    pub batch_size: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_adds_up() {
        let histogram = Histogram::new(&[1.0, 10.0]);
        for value in [0.5, 1.0, 5.0, 50.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative, vec![2, 3, 4]);
        assert_eq!((snapshot.count, snapshot.sum), (4, 56.5));
    }
}
