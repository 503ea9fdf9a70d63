//! One engine among several on a shared store (DESIGN.md §13): the instance's id, and — when the builder was given a
//! [`Cluster`] — claiming queued work from the store under a lease (`claims.rs`), heartbeats and the end of the work
//! of instances that died (`heartbeats.rs`), and the signals that carry cancels, decisions and events between
//! instances (`signals.rs`), each a task of its own that ends with the engine.
//!
//! In a cluster, the store is the queue: a trigger stores its execution `queued` and wakes the claim loop, which claims
//! as many as the instance has free slots; a function's `max_concurrency` is held by the claim, across instances. Each
//! instance's heartbeat comes every sixth of the lease and renews what it runs for five sixths of it (its claims hold
//! as long), and each heartbeat also looks for work whose lease ran out, which it ends as interrupted (a
//! compare-and-set only one instance wins): so an instance's work is ended within the lease of its death — five sixths
//! until its last renewal runs out, a sixth until some heartbeat sees it — while an instance that misses a heartbeat
//! or two (the database unreachable for up to half the lease) keeps its work.

mod claims;
mod heartbeats;
mod outage;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{Timestamp, now};
use dashboard_store::{Cluster, InstanceInfo};
use tokio::sync::{Mutex, Notify, OnceCell};
use tokio_util::sync::CancellationToken;

use self::outage::Outage;
use crate::inner::Inner;
use crate::{Dashboard, EngineError};

/// The lease an instance holds on the executions it runs unless the builder says otherwise (`DASHBOARD_LEASE_SECS`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The store's cluster side and how this instance takes part.
#[derive(Clone)]
pub struct ClusterSettings {
    /// The store's [`Cluster`] side (the same object the builder's `.store(...)` was given).
    pub cluster: Arc<dyn Cluster>,
    /// Within how long the work of an instance that died is ended (`DASHBOARD_LEASE_SECS`): claims and renewals
    /// hold for five sixths of it, and heartbeats come every sixth.
    pub lease: Duration,
    /// The cluster's shared secret ([`Cluster::shared_secret`]): the key of callback tokens, so that a callback may
    /// reach any instance.
    pub secret: [u8; 32],
}

impl ClusterSettings {
    /// How long a claim or a renewal holds: five sixths of the lease, so that with a heartbeat every sixth (which is
    /// also when expired work is looked for) a dead instance's work is ended within the lease.
    pub(crate) fn hold(&self) -> Duration {
        self.lease - self.lease / 6
    }

    /// The time between two heartbeats.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.lease / 6
    }
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

/// This engine's part in a cluster: the settings, and what its cluster tasks share.
pub(crate) struct Membership {
    pub(crate) settings: ClusterSettings,
    /// Wakes the claim loop: an execution was queued, a slot freed, or another instance recorded events.
    claims_wake: Arc<Notify>,
    /// Wakes the relay of other instances' events.
    relay_wake: Arc<Notify>,
    /// Set once the instance has joined and ended its own leftovers ([`Inner::join_cluster`]): how many it ended.
    joined: OnceCell<usize>,
    /// Ends the cluster tasks (shutdown).
    stopped: CancellationToken,
    /// Held by a heartbeat while it is sent, and by the shutdown before it leaves: a heartbeat still under way would
    /// record the instance again after it left.
    heartbeat_turn: Mutex<()>,
    /// The store's trouble with this instance's cluster work, told once per episode.
    outage: Outage,
}

impl Membership {
    pub(crate) fn new(settings: ClusterSettings) -> Self {
        Self {
            settings,
            claims_wake: Arc::default(),
            relay_wake: Arc::default(),
            joined: OnceCell::new(),
            stopped: CancellationToken::new(),
            heartbeat_turn: Mutex::new(()),
            outage: Outage::default(),
        }
    }

    fn cluster(&self) -> &dyn Cluster {
        self.settings.cluster.as_ref()
    }

    /// Asks the claim loop for a round now (it runs at least every second anyway).
    pub(crate) fn wake_claims(&self) {
        self.claims_wake.notify_one();
    }

    /// Stops the cluster tasks: no claims, heartbeats, signals or relayed events from now on.
    fn stop_tasks(&self) {
        self.stopped.cancel();
    }
}

/// Starts the cluster tasks of a newly built engine, if it has a cluster: it hears the signals of every instance from
/// now on. The tasks hold the engine weakly, and end with it or at its shutdown.
pub(crate) fn start(inner: &Arc<Inner>) {
    let Some(membership) = &inner.cluster else { return };
    signals::subscribe(inner, membership);
    heartbeats::spawn(inner, membership);
    claims::spawn(inner, membership);
}

impl Dashboard {
    /// This instance's id (`DASHBOARD_INSTANCE_ID`, or a random one chosen at build): recorded on every execution it
    /// runs (`Execution::instance`), and what `/metrics` and `GET /api/instances` name it by.
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
            Some(membership) => {
                let settings = &membership.settings;
                Ok(settings.cluster.list_instances(settings.lease * 3).await?)
            }
            None => Ok(vec![InstanceInfo {
                id: self.inner.identity.id.clone(),
                started_at: self.inner.identity.started_at,
                heartbeat_at: now(),
                running: u32::try_from(self.running_count()).unwrap_or(u32::MAX),
            }]),
        }
    }
}

impl Inner {
    /// Joins the cluster, once: records this instance as started, then ends its own leftovers — the unfinished work
    /// of an earlier process under the same id — and the expired work of others. Claims and heartbeats wait for it, so
    /// that the leftovers' pass never meets this process's own claims. Returns how many executions it ended; a later
    /// call returns the same number without doing anything. A failure is tried again by the next call.
    pub(crate) async fn join_cluster(&self) -> Result<usize, EngineError> {
        let Some(membership) = &self.cluster else { return Ok(0) };
        let id = self.identity.id.as_str();
        let ended = membership
            .joined
            .get_or_try_init(|| async {
                membership.cluster().join(id).await?;
                let ended = self.end_expired(Some(id), usize::MAX).await?;
                log::info!("instance {id} joined the cluster; it ended {ended} executions left unfinished");
                Ok::<_, EngineError>(ended)
            })
            .await?;
        Ok(*ended)
    }

    /// Leaves the cluster after a clean shutdown (every run of this instance has ended), and stops the cluster tasks.
    /// With runs left (their backends would not stop), it does not leave: its leases then run out, and another
    /// instance ends them as interrupted.
    pub(crate) async fn leave_cluster(&self, is_clean: bool) {
        let Some(membership) = &self.cluster else { return };
        membership.stop_tasks();
        if !is_clean {
            log::warn!(
                "instance {}: runs were still going at shutdown; the cluster ends them when their leases run out",
                self.identity.id
            );
            return;
        }
        let _turn = membership.heartbeat_turn.lock().await;
        if let Err(error) = membership.cluster().leave(&self.identity.id).await {
            log::warn!("instance {}: could not leave the cluster: {error}", self.identity.id);
        }
    }
}
