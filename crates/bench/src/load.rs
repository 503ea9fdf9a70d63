//! The load generator: N concurrent keep-alive clients, each sending one request after another for a fixed time,
//! recording every latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

/// What one load phase measured.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise, or not at all.
    pub errors: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Latencies of the answered requests, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    /// Expected answers per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at quantile `q` (0 to 1).
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((values.len() as f64) * q).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// A client with one keep-alive connection of its own.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client builds with the ring provider installed")
}

/// Runs `clients` loops for `warmup` (not measured) and then `duration`; client `i`'s requests come from
/// `request(&client, i)` and count as answered when their status is `expected`.
pub async fn run<F>(
    clients: usize,
    warmup: Duration,
    duration: Duration,
    expected: StatusCode,
    request: F,
) -> LoadResult
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|index| {
            let request = Arc::clone(&request);
            tokio::spawn(async move {
                let client = client();
                let mut result = LoadResult::default();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let answer = request(&client, index).send().await;
                    let is_ok = match answer {
                        Ok(response) => {
                            let status = response.status();
                            // The body is read so that the connection can be used again.
                            response.bytes().await.is_ok() && status == expected
                        }
                        Err(_) => false,
                    };
                    if sent < start {
                        continue;
                    }
                    if is_ok {
                        result.ok += 1;
                        result.latencies.push(sent.elapsed());
                    } else {
                        result.errors += 1;
                    }
                }
                result
            })
        })
        .collect();
    let mut total = LoadResult { elapsed: duration, ..LoadResult::default() };
    for task in tasks {
        let result = task.await.expect("a load task does not panic");
        total.ok += result.ok;
        total.errors += result.errors;
        total.latencies.extend(result.latencies);
    }
    total.latencies.sort_unstable();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
