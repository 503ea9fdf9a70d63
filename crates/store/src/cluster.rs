//! What several dashboard instances sharing one store need beyond [`DashboardStore`](crate::DashboardStore): claiming
//! queued work under leases, heartbeats, finding the work of an instance that died, wake-ups between instances, the
//! secret they share, and login sessions any of them can read (DESIGN.md §13).
//!
//! A store that only one process may open (SQLite, memory) does not implement [`Cluster`]: its engine schedules from
//! memory and recovers at start. `PostgresStore` implements it; the engine, given a cluster, claims work from the
//! store instead of its own queue.

use std::sync::Arc;
use std::time::Duration;

use crate::StoreError;
use async_trait::async_trait;
use dashboard_core::{ApprovalId, Execution, ExecutionId, Timestamp};

/// Something another instance (or this one) did that an instance may need to act on. Signals only wake: what they
/// tell is read from the store, which is the truth; a signal may come twice, or be lost while the connection that
/// carries them is down (then [`Signal::Reconnected`] follows, and listeners read the store again).
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Events were recorded, up to this id at least.
    Events {
        /// The newest event id the signal knows of.
        last_id: u64,
    },
    /// Log lines of an execution were stored, up to `last_seq`.
    Logs {
        /// The execution.
        execution_id: ExecutionId,
        /// The seq of the newest stored line.
        last_seq: u64,
    },
    /// Transcript items of an execution were stored.
    Items {
        /// The execution.
        execution_id: ExecutionId,
        /// The seqs of the stored items, ascending.
        seqs: Vec<u64>,
    },
    /// A cancel of a running execution was asked on some instance ([`Cluster::request_cancel`]).
    Cancel {
        /// The execution.
        execution_id: ExecutionId,
        /// Who asked (a token's name), when known.
        by: Option<String>,
    },
    /// A pending approval was decided on some instance ([`Cluster::announce_decision`]); the instance whose run
    /// waits for it reads the decision from the store and hands it to the agent.
    Decided {
        /// The approval.
        approval_id: ApprovalId,
    },
    /// The connection that carries signals was lost and is back: signals may have been missed meanwhile.
    Reconnected,
}

/// Where a cluster delivers its signals: called once per signal, from the cluster's own task. It must not block.
pub type SignalSink = Arc<dyn Fn(Signal) + Send + Sync>;

/// One instance as the others see it (`GET /api/instances`).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceInfo {
    /// Its id (`DASHBOARD_INSTANCE_ID`, or a random one chosen at its start).
    pub id: String,
    /// When it started (joined).
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// How many executions it ran at its last heartbeat.
    pub running: u32,
}

/// What a heartbeat found for the instance that sent it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heartbeat {
    /// Its executions (running or waiting) on which a cancel was asked and not yet carried out, with who asked: a
    /// backstop for a lost [`Signal::Cancel`].
    pub cancel_requested: Vec<(ExecutionId, Option<String>)>,
}

/// A login session as stored: keyed by the SHA-256 (hex) of the cookie's value, never the value itself.
#[derive(Clone, Debug, PartialEq)]
pub struct LoginRecord {
    /// SHA-256 of the session id, in lowercase hex.
    pub id_hash: String,
    /// The name of the token that signed in; the session's rights are that token's as configured now.
    pub token_name: String,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

/// What several instances on one store share (DESIGN.md §13). Every method is safe to call from any instance at any
/// time; none blocks another instance for longer than a short transaction.
#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Records instance `instance` as started now (replacing an earlier record of the same id) with no running
    /// executions.
    async fn join(&self, instance: &str) -> Result<(), StoreError>;

    /// Records that `instance` is alive with `held.len()` executions, and renews for `lease` the lease of each
    /// unfinished execution of `held` that it holds — the ones it claimed or runs, by its own account. An execution it
    /// holds in the store but does not name (a claim or a start whose commit it never heard of) is not renewed: its
    /// lease runs out, and it is recovered as any other. Returns what it should act on.
    async fn heartbeat(
        &self,
        instance: &str,
        held: &[ExecutionId],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError>;

    /// Removes `instance` from the instances (it stopped cleanly); its leases are released or were ended already.
    async fn leave(&self, instance: &str) -> Result<(), StoreError>;

    /// The instances whose heartbeat is younger than `within`, by id.
    async fn list_instances(&self, within: Duration) -> Result<Vec<InstanceInfo>, StoreError>;

    /// Claims up to `slots` queued executions for `instance`, oldest first, each exactly once across all instances
    /// (`FOR UPDATE SKIP LOCKED`): the lease (`instance`, now + `lease`) is written on each, and its status stays
    /// `queued` until the instance starts it. A function's `max_concurrency` holds across all instances: its
    /// executions that are `running`, `waiting`, or `queued` under a live lease all count. An execution whose
    /// function is at its limit is skipped without holding up the others. It may claim nothing while another
    /// instance's claim is under way (rather than wait for it): the caller tries again soon.
    async fn claim(
        &self,
        instance: &str,
        slots: usize,
        lease: Duration,
    ) -> Result<Vec<Execution>, StoreError>;

    /// Gives back a claimed execution that `instance` will not start (it is shutting down): the lease is cleared if
    /// `instance` holds it and the execution is still `queued`, so another instance may claim it.
    async fn release(&self, instance: &str, id: ExecutionId) -> Result<(), StoreError>;

    /// Unfinished executions (`queued` under a lease, `running`, `waiting`) whose lease ended before now — their
    /// instance stopped without ending them — oldest first, at most `limit`; and, when `instance` is given, also
    /// that instance's own unfinished executions whatever their lease (an instance that restarts under the same id
    /// holds none of them any more). A `queued` one is released (its lease cleared) by this call and not returned;
    /// the others are returned for the caller to end as interrupted, with a compare-and-set that only one instance
    /// wins.
    async fn expired(&self, instance: Option<&str>, limit: usize) -> Result<Vec<Execution>, StoreError>;

    /// Marks a cancel asked on a `running` or `waiting` execution (by whom) and signals [`Signal::Cancel`] to every
    /// instance. Unknown or finished executions are left alone (no error).
    async fn request_cancel(&self, id: ExecutionId, by: Option<&str>) -> Result<(), StoreError>;

    /// Signals [`Signal::Decided`] for an approval decided on this instance, for the instance whose run waits.
    async fn announce_decision(&self, id: ApprovalId) -> Result<(), StoreError>;

    /// Adds a sink that receives every signal from now on (also those this instance caused).
    fn subscribe(&self, sink: SignalSink);

    /// 32 random bytes made once for the whole cluster (at its first start) and the same for every instance: the key
    /// of the callback tokens, so that a remote agent's callback may reach any instance.
    async fn shared_secret(&self) -> Result<[u8; 32], StoreError>;

    /// Stores a login session. A token keeps at most 100 sessions: its oldest make room.
    async fn create_login(&self, login: &LoginRecord) -> Result<(), StoreError>;

    /// A login session by the hash of its id, unless it has expired.
    async fn get_login(&self, id_hash: &str) -> Result<Option<LoginRecord>, StoreError>;

    /// Ends a login session (no error when there is none); expired ones are removed by any call now and then.
    async fn delete_login(&self, id_hash: &str) -> Result<(), StoreError>;
}
