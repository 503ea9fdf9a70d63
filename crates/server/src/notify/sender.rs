//! The sender: a task that claims the outbox's due deliveries under a lease, posts each one to its receiver (several
//! at once, each for at most [`REQUEST_TIMEOUT`], so a slow receiver does not hold the others), and stores how the
//! attempt ended — delivered on a 2xx answer; else retried with backoff (5 s, doubling up to 5 min, a little jitter)
//! until the delivery is a day old, then given up.
//!
//! It wakes at once when the engine's bus carries an event some notification wants (the store wrote its delivery
//! before the event was published), and every [`POLL_INTERVAL`] otherwise: for retries that fall due, deliveries left
//! by a restart, and events recorded by other instances.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashboard_core::{Delivery, DeliveryId, DeliveryStatus, EventKind, Timestamp, error_chain, now};
use dashboard_engine::{BusMessage, Dashboard};
use dashboard_store::DeliveryOutcome;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

use super::{Format, NotificationConfig, format};

/// How long a claim keeps other instances (and this one) from taking a delivery: far longer than an attempt takes.
const LEASE: Duration = Duration::from_secs(60);
/// How many deliveries are posted at once.
const MAX_IN_FLIGHT: usize = 16;
/// How many deliveries of one notification are posted at once: a receiver that is slow or down holds no more.
const MAX_PER_NOTIFICATION: usize = 4;
/// How long one attempt may take in all — the store's reads and the request — well within the lease, so that no
/// other instance takes the delivery while it goes on.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);
/// How often the outbox is read when nothing wakes the sender.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long one attempt may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before the first retry; it doubles with each failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(5 * 60);
/// Each wait is shortened by up to this fraction, at random, so deliveries that failed together spread out.
const JITTER: f64 = 0.05;
/// How long after it was written a delivery is given up when its attempts keep failing.
const GIVE_UP_AFTER: time::Duration = time::Duration::hours(24);
/// How much of an error answer's body is kept in `last_error`.
const MAX_ANSWER_CHARS: usize = 200;

/// Starts the sender: it delivers the outbox's due deliveries as `owner` (the instance's id), links built from
/// `public_url`. It ends once the engine shuts down and the attempts it has going are over; `None` when it cannot
/// start (no HTTP client), which is logged.
pub fn spawn(
    dashboard: Dashboard,
    notifications: Vec<NotificationConfig>,
    public_url: String,
    owner: String,
) -> Option<tokio::task::JoinHandle<()>> {
    // The one TLS provider of the process (reqwest is built without one); installing twice is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("agent-dashboard/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            log::error!("notifications: no HTTP client ({}); nothing will be sent", error_chain(&error));
            return None;
        }
    };
    for notification in &notifications {
        let kinds: Vec<&str> = notification.kinds.iter().map(|kind| kind.as_str()).collect();
        let signed = match (notification.format, notification.is_signed()) {
            (Format::Slack, _) => "as Slack messages",
            (Format::StandardWebhooks, true) => "signed (Standard Webhooks)",
            (Format::StandardWebhooks, false) => {
                "UNSIGNED: it has no secret_env, so its receiver cannot tell them from forgeries"
            }
        };
        log::info!(
            "notification {}: {} to {}, {signed}",
            notification.name,
            kinds.join(", "),
            host(notification)
        );
    }
    let wanted: HashSet<EventKind> =
        notifications.iter().flat_map(|notification| notification.kinds.iter().copied()).collect();
    let bus = dashboard.subscribe();
    let sender = Sender {
        dashboard,
        notifications: notifications
            .into_iter()
            .map(|notification| (notification.name.clone(), notification))
            .collect(),
        public_url,
        owner,
        client,
        in_flight: std::sync::Mutex::default(),
    };
    Some(tokio::spawn(Arc::new(sender).run(bus, wanted)))
}

/// The receiver's host, for the log: never the path or query, which may be the secret (a Slack webhook's is).
fn host(notification: &NotificationConfig) -> String {
    notification.url.host_str().unwrap_or("?").to_owned()
}

struct Sender {
    dashboard: Dashboard,
    notifications: HashMap<String, NotificationConfig>,
    public_url: String,
    owner: String,
    client: reqwest::Client,
    /// The deliveries being attempted now, so that one claimed again after its lease ran out is not sent twice at once.
    in_flight: std::sync::Mutex<HashSet<DeliveryId>>,
}

impl Sender {
    async fn run(self: Arc<Self>, mut bus: broadcast::Receiver<BusMessage>, wanted: HashSet<EventKind>) {
        // Each attempt's task, by id, with its notification's name: its slot is given back when it ends.
        let mut attempts: JoinSet<()> = JoinSet::new();
        let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut running: HashMap<String, usize> = HashMap::new();
        let mut is_bus_open = true;
        let mut is_store_failing = false;
        loop {
            if self.dashboard.is_shutting_down() {
                // No new attempt; those going on end within their request's timeout, their outcomes stored.
                while attempts.join_next().await.is_some() {}
                return;
            }
            // Each notification claims its own deliveries, a few at a time: a receiver that is slow or down holds
            // only its own slots, never the others'.
            for name in self.notifications.keys() {
                let free = MAX_PER_NOTIFICATION
                    .saturating_sub(running.get(name).copied().unwrap_or(0))
                    .min(MAX_IN_FLIGHT.saturating_sub(attempts.len()));
                if free == 0 {
                    continue;
                }
                match self.dashboard.claim_deliveries(&self.owner, name, LEASE, free).await {
                    Ok(deliveries) => {
                        if is_store_failing {
                            log::info!("notifications: the outbox can be read again");
                            is_store_failing = false;
                        }
                        for delivery in deliveries {
                            // Claimed again after its lease ran out while this instance still attempts it: the
                            // attempt going on stores the outcome.
                            if !self.in_flight().insert(delivery.id) {
                                continue;
                            }
                            *running.entry(name.clone()).or_default() += 1;
                            let task = attempts.spawn(Arc::clone(&self).attempt(delivery));
                            names.insert(task.id(), name.clone());
                        }
                    }
                    Err(error) => {
                        if !is_store_failing {
                            log::warn!(
                                "notifications: the outbox cannot be read, trying every second: {error}"
                            );
                            is_store_failing = true;
                        }
                        break;
                    }
                }
            }
            // Until an attempt ends (a slot is free), a wanted event is published, or the poll interval passes.
            let tick = tokio::time::sleep(POLL_INTERVAL);
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    ended = attempts.join_next_with_id(), if !attempts.is_empty() => {
                        let id = match ended {
                            Some(Ok((id, ()))) => Some(id),
                            Some(Err(error)) => {
                                log::error!("notifications: an attempt did not end normally: {error}");
                                Some(error.id())
                            }
                            None => None,
                        };
                        let name = id.and_then(|id| names.remove(&id));
                        if let Some(count) = name.and_then(|name| running.get_mut(&name)) {
                            *count = count.saturating_sub(1);
                        }
                        break;
                    }
                    message = bus.recv(), if is_bus_open => match message {
                        Ok(BusMessage::Event(event)) if wanted.contains(&event.kind) => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => is_bus_open = false,
                    },
                    () = &mut tick => break,
                }
            }
        }
    }

    /// The ids of the deliveries being attempted now.
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<DeliveryId>> {
        // A poisoned lock only means a panicked attempt; the set is still a set.
        self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One attempt at `delivery`, its outcome stored.
    async fn attempt(self: Arc<Self>, delivery: Delivery) {
        if let Some(notification) = self.notifications.get(&delivery.notification) {
            let attempt = tokio::time::timeout(ATTEMPT_LIMIT, self.send(notification, &delivery)).await;
            match attempt {
                Ok(Some(outcome)) => self.store_outcome(&delivery, outcome).await,
                // Nothing was sent: the delivery stays claimed until its lease ends, then is attempted again.
                Ok(None) => {}
                Err(_) => {
                    let error = format!("the attempt took longer than {} s", ATTEMPT_LIMIT.as_secs());
                    let outcome = self.failed(notification, &delivery, error, None);
                    self.store_outcome(&delivery, outcome).await;
                }
            }
        }
        self.in_flight().remove(&delivery.id);
    }

    /// Stores how an attempt ended.
    async fn store_outcome(&self, delivery: &Delivery, outcome: DeliveryOutcome) {
        match self.dashboard.finish_delivery(delivery.id, &self.owner, outcome).await {
            Ok(Some(finished)) if finished.status == DeliveryStatus::Failed => log::warn!(
                "notification {}: delivery {} was given up after {} attempts",
                finished.notification,
                finished.id,
                finished.attempts
            ),
            Ok(Some(_)) => {}
            Ok(None) => log::info!(
                "notification {}: delivery {} was taken by another instance after this one's claim ran out",
                delivery.notification,
                delivery.id
            ),
            // The claim runs out and the delivery is attempted again: it may then arrive twice.
            Err(error) => log::warn!(
                "notification {}: how delivery {} went could not be stored: {error}",
                delivery.notification,
                delivery.id
            ),
        }
    }

    /// Posts `delivery` to its receiver; the outcome to store, or `None` when nothing could be sent (its execution
    /// could not be read: the store's trouble is not the receiver's, so it costs no attempt).
    async fn send(&self, notification: &NotificationConfig, delivery: &Delivery) -> Option<DeliveryOutcome> {
        let execution = match delivery.event.execution_id {
            Some(id) => match self.dashboard.store().get_execution(id).await {
                Ok(execution) => execution,
                Err(error) => {
                    log::warn!(
                        "notification {}: delivery {} waits for the store, which could not read its execution: \
                         {error}",
                        notification.name,
                        delivery.id
                    );
                    return None;
                }
            },
            None => None,
        };
        let body = format::body(notification.format, &delivery.event, execution.as_ref(), &self.public_url);
        let mut request = self.client.post(notification.url.clone()).header(CONTENT_TYPE, "application/json");
        if notification.format == Format::StandardWebhooks {
            let id = delivery.id.to_string();
            let timestamp = unix_now();
            request = request.header("webhook-id", &id).header("webhook-timestamp", timestamp.to_string());
            if let Some(secret) = &notification.secret {
                request = request.header("webhook-signature", secret.sign(&id, timestamp, &body));
            }
        }
        Some(match request.body(body).send().await {
            Ok(response) if response.status().is_success() => {
                DeliveryOutcome::Delivered { response_status: response.status().as_u16() }
            }
            Ok(response) => {
                let status = response.status();
                let answer = answer_start(response).await;
                let answer: String = answer.trim().chars().take(MAX_ANSWER_CHARS).collect();
                let error = match answer.lines().next() {
                    Some(line) if !line.is_empty() => format!("the receiver answered {status}: {line}"),
                    _ => format!("the receiver answered {status}"),
                };
                self.failed(notification, delivery, error, Some(status.as_u16()))
            }
            // Without the URL: its path or query may be the secret.
            Err(error) => self.failed(notification, delivery, error_chain(&error.without_url()), None),
        })
    }

    /// The outcome of a failed attempt: a retry while the delivery is less than a day old, else giving up.
    fn failed(
        &self,
        notification: &NotificationConfig,
        delivery: &Delivery,
        error: String,
        response_status: Option<u16>,
    ) -> DeliveryOutcome {
        let attempt = delivery.attempts + 1;
        let failed_at = now();
        let outcome = next_step(delivery, failed_at, random_fraction(), error, response_status);
        let kind = delivery.event.kind;
        match &outcome {
            DeliveryOutcome::Retry { at, error, .. } => log::warn!(
                "notification {}: attempt {attempt} at delivering {kind} failed, the next in {} s: {error}",
                notification.name,
                (*at - failed_at).whole_seconds().max(0)
            ),
            DeliveryOutcome::GiveUp { error, .. } => log::warn!(
                "notification {}: attempt {attempt} at delivering {kind} failed, the last one: {error}",
                notification.name
            ),
            DeliveryOutcome::Delivered { .. } => {}
        }
        outcome
    }
}

/// What follows a failed attempt at `delivery` made at `now`: a retry after [`backoff`] (never past the day's end,
/// so the last attempt falls on it), or, once the day is over, giving up.
fn next_step(
    delivery: &Delivery,
    now: Timestamp,
    jitter: f64,
    error: String,
    response_status: Option<u16>,
) -> DeliveryOutcome {
    let deadline = delivery.created_at + GIVE_UP_AFTER;
    if now >= deadline {
        return DeliveryOutcome::GiveUp { error, response_status };
    }
    let at = (now + backoff(delivery.attempts, jitter)).min(deadline);
    DeliveryOutcome::Retry { at, error, response_status }
}

/// The wait after the attempt that follows `attempts` earlier ones: 5 s, 10 s, 20 s… up to 5 min, shortened by
/// `jitter` (0 to 1) times [`JITTER`].
fn backoff(attempts: u32, jitter: f64) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << attempts.min(16));
    doubled.min(MAX_RETRY).mul_f64(1.0 - JITTER * jitter.clamp(0.0, 1.0))
}

/// A number from 0 to 1 from the system's random source (0 when it cannot be read: no jitter then).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.0,
    }
}

/// The start of a receiver's answer, for the error: its first few kilobytes at most, whatever it sends.
async fn answer_start(mut response: reqwest::Response) -> String {
    let limit = MAX_ANSWER_CHARS * 4;
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(limit - bytes.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The attempt's time in Unix seconds (`webhook-timestamp`).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use dashboard_core::{Event, NewEvent};
    use serde_json::json;

    use super::*;

    fn delivery(attempts: u32, created_at: Timestamp) -> Delivery {
        let event = NewEvent {
            kind: EventKind::ExecutionFailed,
            execution_id: None,
            function: Some("build".to_owned()),
            backend: None,
            message: "build failed".to_owned(),
            data: json!({}),
        };
        let event: Event = event.recorded(1, created_at);
        Delivery { attempts, ..Delivery::new("ops", event, created_at) }
    }

    #[test]
    fn waits_double_from_five_seconds_up_to_five_minutes() {
        let waits: Vec<u64> = (0..9).map(|attempts| backoff(attempts, 0.0).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX, 0.0), MAX_RETRY);
        let jittered = backoff(0, 1.0);
        assert!(jittered < FIRST_RETRY && jittered >= FIRST_RETRY.mul_f64(0.95), "{jittered:?}");
    }

    #[test]
    fn a_delivery_is_retried_for_a_day_then_given_up() {
        let created = now();
        let retry = next_step(&delivery(0, created), created, 0.0, "refused".to_owned(), None);
        assert_eq!(
            retry,
            DeliveryOutcome::Retry {
                at: created + time::Duration::seconds(5),
                error: "refused".to_owned(),
                response_status: None
            }
        );
        // The last retry falls on the day's end, not after it.
        let late = created + GIVE_UP_AFTER - time::Duration::seconds(30);
        let last = next_step(&delivery(40, created), late, 0.0, "500".to_owned(), Some(500));
        assert!(
            matches!(last, DeliveryOutcome::Retry { at, .. } if at == created + GIVE_UP_AFTER),
            "{last:?}"
        );
        let over =
            next_step(&delivery(41, created), created + GIVE_UP_AFTER, 0.0, "500".to_owned(), Some(500));
        assert_eq!(over, DeliveryOutcome::GiveUp { error: "500".to_owned(), response_status: Some(500) });
    }
}
