//! Notifications (`[[notifications]]`): which events go to which receiver, and the sender that delivers the store's
//! outbox.
//!
//! The store writes a pending delivery for every recorded event that an entry's rule matches, in the same atomic
//! step as the event ([`outbox_rules`] are handed to it at start-up), so neither a restart nor a receiver that is
//! down loses one. The sender ([`spawn`]) claims the due deliveries under a lease, posts each one (`config.rs` reads
//! the entries, `format.rs` makes the bodies, `sender.rs` posts and retries), and stores how each attempt ended:
//! delivered on a 2xx answer, else retried with backoff for a day, then given up with a `notification.failed` event.

mod config;
mod format;
mod sender;

pub use config::{Format, NotificationConfig};
pub use sender::spawn;

use dashboard_store::OutboxRule;

/// The store's outbox rules for `notifications`: one per entry, its kinds of event and its functions.
pub fn outbox_rules(notifications: &[NotificationConfig]) -> Vec<OutboxRule> {
    notifications
        .iter()
        .map(|notification| OutboxRule {
            notification: notification.name.clone(),
            kinds: notification.kinds.clone(),
            functions: notification.functions.clone(),
        })
        .collect()
}
