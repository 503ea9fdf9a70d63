//! Phase (h): approval round trips. The demo backend asks for approvals one after another (the function's policy is
//! `ask`); one SSE client of `/api/events/stream` sees each request, and the bench approves it over the API at once.
//! Two figures per approval: from the agent's request to the event on the SSE client, and from `POST
//! /api/approvals/{id}` to the agent receiving the decision (seen as the agent's next request, which it makes as soon
//! as it has the answer — so the figure also holds the next request's own start, an upper bound).

use std::time::Duration;

use dashboard_core::{Approval, Timestamp, now};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::load::{self, quantile};

/// The function whose executions ask.
const FUNCTION: &str = "bench-approvals";
/// Approvals per execution: the demo backend's most.
const PER_EXECUTION: usize = 100;
/// How long one approval may take to show before the phase gives up (a fail-safe, not a measure).
const PATIENCE: Duration = Duration::from_secs(30);

/// The two figures of each approval: request → SSE client, decision → agent.
pub struct RoundTrips {
    /// From the agent's request to the event on the SSE client.
    pub to_subscriber: Vec<Duration>,
    /// From `POST /api/approvals/{id}` to the agent's next request.
    pub to_agent: Vec<Duration>,
}

/// The p50 and p99 of `samples`.
pub fn quantiles(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    (quantile(&sorted, 0.5), quantile(&sorted, 0.99))
}

/// Runs `count` approvals (a multiple of 100) through the server at `url`.
pub async fn round_trips(url: &str, count: usize) -> RoundTrips {
    let client = load::client();
    let created = client
        .post(format!("{url}/api/functions"))
        .json(&json!({"name": FUNCTION, "backend": "demo", "approval_policy": "ask"}))
        .send()
        .await
        .expect("the function is created");
    assert_eq!(created.status(), StatusCode::CREATED, "creating {FUNCTION}");

    let (requests, mut requested) = mpsc::unbounded_channel();
    let stream = client.get(format!("{url}/api/events/stream")).send().await.expect("the stream opens");
    assert!(stream.status().is_success(), "the event stream: {}", stream.status());
    let listener = tokio::spawn(listen(stream, requests));

    let mut trips =
        RoundTrips { to_subscriber: Vec::with_capacity(count), to_agent: Vec::with_capacity(count) };
    for _ in 0..count.div_ceil(PER_EXECUTION) {
        let triggered = client
            .post(format!("{url}/api/executions"))
            .json(&json!({"function": FUNCTION, "input": {"steps": 0, "approvals": PER_EXECUTION}}))
            .send()
            .await
            .expect("the trigger answers");
        assert_eq!(triggered.status(), StatusCode::ACCEPTED, "the trigger");
        let mut decided_at: Option<Timestamp> = None;
        for _ in 0..PER_EXECUTION {
            let (id, seen_at) = tokio::time::timeout(PATIENCE, requested.recv())
                .await
                .expect("the approval shows on the stream in time")
                .expect("the stream stays open");
            let approval: Approval = client
                .get(format!("{url}/api/approvals/{id}"))
                .send()
                .await
                .expect("the approval answers")
                .json()
                .await
                .expect("an approval");
            trips.to_subscriber.push(since(approval.requested_at, seen_at));
            if let Some(decided_at) = decided_at {
                trips.to_agent.push(since(decided_at, approval.requested_at));
            }
            decided_at = Some(now());
            let decided = client
                .post(format!("{url}/api/approvals/{id}"))
                .json(&json!({"decision": "approve"}))
                .send()
                .await
                .expect("the decision answers");
            assert_eq!(decided.status(), StatusCode::OK, "the decision");
        }
    }
    listener.abort();
    trips
}

/// Reads the event stream, sending the id of each requested approval and when it arrived.
async fn listen(stream: reqwest::Response, requests: mpsc::UnboundedSender<(String, Timestamp)>) {
    let mut stream = stream.bytes_stream();
    let mut pending = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let at = now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else { continue };
            if event["kind"] == "approval.requested"
                && let Some(id) = event["data"]["approval_id"].as_str()
                && requests.send((id.to_owned(), at)).is_err()
            {
                return;
            }
        }
    }
}

/// The time from `earlier` to `later`, 0 when the clock says otherwise.
fn since(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later - earlier).unwrap_or_default()
}
