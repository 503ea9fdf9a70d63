//! The notification outbox, for the sender that delivers it (the server's `notify`): the store writes a delivery with
//! each event a rule asks for; the sender claims the due ones, posts them, and stores how each attempt ended.

use std::time::Duration;

use dashboard_core::{Delivery, DeliveryId};
use dashboard_store::{DeliveryOutcome, StoreError};

use crate::Dashboard;

impl Dashboard {
    /// Claims up to `limit` due deliveries of `notification` for `owner` (this instance) until `lease` from now: no other instance
    /// attempts them meanwhile, and after a crash they are claimed again once the lease ends.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.observe(self.inner.store.claim_deliveries(owner, notification, lease, limit).await)
    }

    /// Stores how an attempt at a delivery claimed by `owner` ended; a delivery given up records
    /// `notification.failed`, which is published. `None` when the claim was lost (another instance took the delivery
    /// after it ran out), with nothing stored.
    pub async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<Delivery>, StoreError> {
        let finished = self.inner.observe(self.inner.store.finish_delivery(id, owner, outcome).await)?;
        Ok(finished.map(|finished| {
            if let Some(event) = finished.event {
                self.publish_event(event);
            }
            finished.delivery
        }))
    }
}
