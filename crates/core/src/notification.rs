//! Notifications: the deliveries of activity events to the receivers a `[[notifications]]` entry names, kept in the
//! store's outbox until each is delivered or given up.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DeliveryId, Event, Timestamp};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its first attempt or its next retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after retrying for the whole retry period; a `notification.failed` event says so.
    Failed,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The spelling of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification's delivery of one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Its id (UUID v7); also the `webhook-id` a receiver sees, the same on every attempt.
    pub id: DeliveryId,
    /// The `[[notifications]]` entry it is for, by name.
    pub notification: String,
    /// The event it tells of, as recorded.
    pub event: Event,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<Timestamp>,
    /// What went wrong at the last failed attempt.
    pub last_error: Option<String>,
    /// The HTTP status of the receiver's last answer, if it answered.
    pub response_status: Option<u16>,
    /// When it was written (with its event).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// When it was delivered or given up.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<Timestamp>,
}

impl Delivery {
    /// A new pending delivery of `event` for `notification`, due at once.
    pub fn new(notification: &str, event: Event, at: Timestamp) -> Self {
        Self {
            id: DeliveryId::generate(),
            notification: notification.to_owned(),
            event,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(at),
            last_error: None,
            response_status: None,
            created_at: at,
            finished_at: None,
        }
    }
}
