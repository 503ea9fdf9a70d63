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

use dashboard_core::{Delivery, DeliveryStatus, EventKind, Timestamp, error_chain, now};
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
/// `public_url`; it stops with the runtime.
pub fn spawn(
    dashboard: Dashboard,
    notifications: Vec<NotificationConfig>,
    public_url: String,
    owner: String,
) {
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
            return;
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
    if public_url.is_empty() {
        log::warn!(
            "notifications: DASHBOARD_PUBLIC_URL is not set, so their links to executions are bare paths"
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
    };
    tokio::spawn(Arc::new(sender).run(bus, wanted));
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
}

impl Sender {
    async fn run(self: Arc<Self>, mut bus: broadcast::Receiver<BusMessage>, wanted: HashSet<EventKind>) {
        let mut in_flight = JoinSet::new();
        let mut is_bus_open = true;
        let mut is_store_failing = false;
        loop {
            let free = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
            if free > 0 {
                match self.dashboard.claim_deliveries(&self.owner, LEASE, free).await {
                    Ok(deliveries) => {
                        if is_store_failing {
                            log::info!("notifications: the outbox can be read again");
                            is_store_failing = false;
                        }
                        for delivery in deliveries {
                            in_flight.spawn(Arc::clone(&self).attempt(delivery));
                        }
                    }
                    Err(error) => {
                        if !is_store_failing {
                            log::warn!(
                                "notifications: the outbox cannot be read, trying every second: {error}"
                            );
                            is_store_failing = true;
                        }
                    }
                }
            }
            // Until an attempt ends (a slot is free), a wanted event is published, or the poll interval passes.
            let tick = tokio::time::sleep(POLL_INTERVAL);
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    ended = in_flight.join_next(), if !in_flight.is_empty() => {
                        if let Some(Err(error)) = ended {
                            log::error!("notifications: an attempt did not end normally: {error}");
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

    /// One attempt at `delivery`, its outcome stored.
    async fn attempt(self: Arc<Self>, delivery: Delivery) {
        let outcome = match self.notifications.get(&delivery.notification) {
            Some(notification) => self.send(notification, &delivery).await,
            None => DeliveryOutcome::GiveUp {
                error: format!("the notification {:?} is no longer configured", delivery.notification),
                response_status: None,
            },
        };
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

    /// Posts `delivery` to its receiver; the outcome to store.
    async fn send(&self, notification: &NotificationConfig, delivery: &Delivery) -> DeliveryOutcome {
        let execution = match delivery.event.execution_id {
            Some(id) => match self.dashboard.store().get_execution(id).await {
                Ok(execution) => execution,
                Err(error) => {
                    let error = format!("its execution could not be read from the store: {error}");
                    return self.failed(notification, delivery, error, None);
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
        match request.body(body).send().await {
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
        }
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
