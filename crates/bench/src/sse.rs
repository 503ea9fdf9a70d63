//! The live-stream measurement, run in a child process (`dashboard-bench sse-clients URL N TRIGGERS`) so that the
//! clients' own memory does not count as the server's: it opens N subscriptions to `/api/events/stream`, says
//! `ready`, waits for a line on stdin (the parent measures its RSS meanwhile), triggers executions one by one, and
//! prints one JSON line with the delays from each trigger to each subscriber's receipt of its `execution.queued`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::load::quantile;

/// How long the child waits for all deliveries after the last trigger.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);
/// The pause between two triggers, so that each delay is measured on its own.
const TRIGGER_SPACING: Duration = Duration::from_millis(25);

/// The child's side. `args`: URL (subscribed to), subscribers, triggers, and the URL the triggers go to.
pub async fn child(args: &[String]) {
    let [url, subscribers, triggers, trigger_url] = args else {
        panic!("usage: dashboard-bench sse-clients URL SUBSCRIBERS TRIGGERS TRIGGER_URL");
    };
    let subscribers: usize = subscribers.parse().expect("SUBSCRIBERS is a number");
    let triggers: usize = triggers.parse().expect("TRIGGERS is a number");
    let client = reqwest::Client::builder().build().expect("a reqwest client");
    let connected = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let (client, url, connected) = (client.clone(), url.clone(), Arc::clone(&connected));
            tokio::spawn(async move { subscribe(client, url, connected, triggers).await })
        })
        .collect();
    let all = u32::try_from(subscribers).expect("fewer than 2^32 subscribers");
    let _ = connected.acquire_many(all).await.expect("the semaphore stays open");
    say("ready");
    // Read off the runtime: a blocked worker would delay the subscribers' reads.
    tokio::task::spawn_blocking(|| std::io::stdin().lock().read_line(&mut String::new()))
        .await
        .expect("reading stdin does not panic")
        .expect("the parent says go");

    let mut sent_at = HashMap::new();
    for _ in 0..triggers {
        let sent = Instant::now();
        let body = json!({"function": crate::QUICK_FUNCTION, "input": {"steps": 0}});
        let response = client
            .post(format!("{trigger_url}/api/executions"))
            .json(&body)
            .send()
            .await
            .expect("the trigger is answered");
        let execution: Value = response.json().await.expect("the trigger answers JSON");
        let id = execution["id"].as_str().expect("the trigger answers an execution").to_owned();
        sent_at.insert(id, sent);
        tokio::time::sleep(TRIGGER_SPACING).await;
    }
    let mut delays = Vec::new();
    let mut failed_subscribers = 0;
    for task in tasks {
        match task.await {
            Ok(Some(received)) => delays.extend(
                received
                    .into_iter()
                    .filter_map(|(id, at)| Some(at.saturating_duration_since(*sent_at.get(&id)?))),
            ),
            _ => failed_subscribers += 1,
        }
    }
    delays.sort_unstable();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let report = json!({
        "expected": subscribers * triggers,
        "received": delays.len(),
        "failed_subscribers": failed_subscribers,
        "p50_ms": ms(quantile(&delays, 0.5)),
        "p99_ms": ms(quantile(&delays, 0.99)),
        "max_ms": ms(delays.last().copied().unwrap_or_default()),
    });
    say(&report.to_string());
}

/// One subscriber: the arrival time of each `execution.queued` event, until `triggers` have come; `None` when the
/// stream could not be opened.
async fn subscribe(
    client: reqwest::Client,
    url: String,
    connected: Arc<Semaphore>,
    triggers: usize,
) -> Option<Vec<(String, Instant)>> {
    let response = client.get(format!("{url}/api/events/stream")).send().await;
    connected.add_permits(1);
    let response = response.ok().filter(|response| response.status().is_success())?;
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    let mut received = Vec::with_capacity(triggers);
    let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT * 4;
    while received.len() < triggers {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            _ => break,
        };
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else { continue };
            if event["kind"] == "execution.queued"
                && let Some(id) = event["execution_id"].as_str()
            {
                received.push((id.to_owned(), at));
            }
        }
    }
    Some(received)
}

#[allow(clippy::print_stdout, reason = "the child reports to its parent on stdout")]
fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}
