//! One engine among several on a shared store (DESIGN.md §13): the instance's id, and — when the builder was given a
//! [`Cluster`] — claiming queued work from the store under a lease, heartbeats, recovery of the work of instances that
//! died, and the signals that carry cancels, decisions and events between instances.

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{Timestamp, now};
use dashboard_store::{Cluster, InstanceInfo};

use crate::{Dashboard, EngineError};

/// The lease an instance holds on the executions it runs unless the builder says otherwise (`DASHBOARD_LEASE_SECS`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The store's cluster side and how this instance takes part.
#[derive(Clone)]
pub struct ClusterSettings {
    /// The store's [`Cluster`] side (the same object the builder's `.store(...)` was given).
    pub cluster: Arc<dyn Cluster>,
    /// How long a claim holds without a heartbeat; heartbeats come every third of it.
    pub lease: Duration,
    /// The cluster's shared secret ([`Cluster::shared_secret`]): the key of callback tokens, so that a callback may
    /// reach any instance.
    pub secret: [u8; 32],
}

/// Who this engine is among the instances.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) started_at: Timestamp,
}

impl Identity {
    pub(crate) fn new(id: Option<String>) -> Self {
        let id = id.unwrap_or_else(random_instance_id);
        Self { id, started_at: now() }
    }
}

/// A short random instance id: `i-` and 12 hex digits.
fn random_instance_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("i-{hex}")
}

impl Dashboard {
    /// This instance's id (`DASHBOARD_INSTANCE_ID`, or a random one chosen at build).
    pub fn instance_id(&self) -> &str {
        &self.inner.identity.id
    }

    /// Whether this engine shares its store with other instances (it was built with a [`Cluster`]).
    pub fn is_clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// The instances that share the store and are alive (heartbeat within three leases), by id; on a store of its
    /// own, this instance alone.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, EngineError> {
        match &self.inner.cluster {
            Some(settings) => Ok(settings.cluster.list_instances(settings.lease * 3).await?),
            None => Ok(vec![InstanceInfo {
                id: self.inner.identity.id.clone(),
                started_at: self.inner.identity.started_at,
                heartbeat_at: now(),
                running: u32::try_from(self.running_count()).unwrap_or(u32::MAX),
            }]),
        }
    }
}
