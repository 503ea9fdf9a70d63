//! `SharedMemory`: a test double of a store that several engines in one process share as instances of a cluster —
//! a [`MemoryStore`] for the data, with the [`Cluster`] side (leases, heartbeats, cancel marks, signals) kept beside it,
//! so that cluster mode is tested without PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, ExecutionStatus, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine,
    Schedule, ScheduleId, Timestamp, now,
};

use crate::{
    ApprovalChange, ApprovalQuery, Cluster, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery,
    ExecutionPage, ExecutionQuery, ExecutionUpdate, FinishedDelivery, FiredSchedule, FunctionKey, Heartbeat,
    InstanceInfo, LoggedUpdate, LoginRecord, MemoryStore, NewExecution, OutboxRule, Recorded, ScheduleFire,
    Signal, SignalSink, Spend, SpendQuery, StatusCounts, StoreError, StoreStats,
};

/// The most login sessions one token keeps, as the [`Cluster::create_login`] contract says.
const MAX_LOGINS_PER_TOKEN: usize = 100;

/// A [`DashboardStore`] and [`Cluster`] that engines in one process share, as instances share a PostgreSQL database.
///
/// Each store method is the [`MemoryStore`]'s, followed by the signals PostgreSQL would send at its commit
/// ([`Signal::Logs`], [`Signal::Items`], then [`Signal::Events`]). The cluster methods keep their leases, instances,
/// cancel marks and logins in a map of their own, under one lock that also serialises claims. Unlike PostgreSQL, it
/// calls the sinks on the caller's task, right after the change (sinks must not block, so this is allowed).
///
/// [`cut_off`](Self::cut_off) plays an instance that lost its database: its heartbeats stop reaching the store.
pub struct SharedMemory {
    store: MemoryStore,
    cluster: tokio::sync::Mutex<ClusterState>,
    sinks: Mutex<Vec<SignalSink>>,
    cut_off: Mutex<HashSet<String>>,
    secret: [u8; 32],
}

impl Default for SharedMemory {
    fn default() -> Self {
        Self {
            store: MemoryStore::default(),
            cluster: tokio::sync::Mutex::default(),
            sinks: Mutex::default(),
            cut_off: Mutex::default(),
            secret: random_secret(),
        }
    }
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory").field("store", &self.store).finish_non_exhaustive()
    }
}

/// 32 bytes that differ from process to process: the standard library's random hash keys, for a test double that
/// needs no random-number crate.
fn random_secret() -> [u8; 32] {
    let mut secret = [0; 32];
    for chunk in secret.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    secret
}

#[derive(Default)]
struct ClusterState {
    instances: HashMap<String, InstanceRecord>,
    leases: HashMap<ExecutionId, Lease>,
    /// Cancels asked on running or waiting executions, and by whom.
    cancels: HashMap<ExecutionId, Option<String>>,
    /// Login sessions by id hash, each with the order it was made in.
    logins: HashMap<String, (LoginRecord, u64)>,
    n_logins_made: u64,
}

struct InstanceRecord {
    started_at: Timestamp,
    heartbeat_at: Timestamp,
    last_seen: Instant,
    running: u32,
}

struct Lease {
    owner: String,
    until: Instant,
}

impl Lease {
    fn is_live(&self, at: Instant) -> bool {
        self.until > at
    }
}

impl SharedMemory {
    /// From now on, every cluster call that names `instance` fails as if its database were out of reach: its
    /// heartbeats stop renewing its leases, so the other instances find its work expired.
    pub fn cut_off(&self, instance: &str) {
        self.cut_off.lock().expect("cut-off lock poisoned").insert(instance.to_owned());
    }

    /// The shared [`MemoryStore`], for reads that bypass the signals.
    pub fn inner(&self) -> &MemoryStore {
        &self.store
    }

    fn check_reachable(&self, instance: &str) -> Result<(), StoreError> {
        if self.cut_off.lock().expect("cut-off lock poisoned").contains(instance) {
            return Err(StoreError::Unavailable {
                message: format!("instance {instance} is cut off from the shared store (test double)"),
                source: None,
            });
        }
        Ok(())
    }

    fn signal(&self, signal: Signal) {
        let sinks = self.sinks.lock().expect("sinks lock poisoned").clone();
        for sink in sinks {
            sink(signal.clone());
        }
    }

    fn signal_event(&self, event: &Event) {
        self.signal(Signal::Events { last_id: event.id });
    }

    fn signal_items(&self, execution_id: ExecutionId, items: &[Item]) {
        if !items.is_empty() {
            let mut seqs: Vec<u64> = items.iter().map(|item| item.seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            self.signal(Signal::Items { execution_id, seqs });
        }
    }

    fn signal_approval_change(&self, change: &ApprovalChange) {
        self.signal_items(change.execution.id, &change.items);
        if let Some(event) = change.events.last() {
            self.signal_event(event);
        }
    }

    /// The unfinished executions, oldest first: what the cluster methods decide from, with the cluster lock held (so
    /// that no claim comes between the read and the change).
    async fn unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        self.store.list_unfinished().await
    }
}

#[async_trait]
impl Cluster for SharedMemory {
    async fn join(&self, instance: &str) -> Result<(), StoreError> {
        self.check_reachable(instance)?;
        let at = now();
        let record =
            InstanceRecord { started_at: at, heartbeat_at: at, last_seen: Instant::now(), running: 0 };
        self.cluster.lock().await.instances.insert(instance.to_owned(), record);
        Ok(())
    }

    async fn heartbeat(
        &self,
        instance: &str,
        held_here: &[ExecutionId],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        let running = u32::try_from(held_here.len()).unwrap_or(u32::MAX);
        self.check_reachable(instance)?;
        let mut state = self.cluster.lock().await;
        let unfinished: HashMap<ExecutionId, ExecutionStatus> =
            self.unfinished().await?.into_iter().map(|execution| (execution.id, execution.status)).collect();
        let at = Instant::now();
        let record = state.instances.entry(instance.to_owned()).or_insert_with(|| InstanceRecord {
            started_at: now(),
            heartbeat_at: now(),
            last_seen: at,
            running: 0,
        });
        (record.heartbeat_at, record.last_seen, record.running) = (now(), at, running);
        state.leases.retain(|id, _| unfinished.contains_key(id));
        let mut held = Vec::new();
        for (id, lease_of) in &mut state.leases {
            if lease_of.owner == instance && held_here.contains(id) {
                lease_of.until = at + lease;
                held.push(*id);
            }
        }
        state.cancels.retain(|id, _| {
            matches!(unfinished.get(id), Some(ExecutionStatus::Running | ExecutionStatus::Waiting))
        });
        let cancel_requested =
            held.iter().filter_map(|id| state.cancels.get(id).map(|by| (*id, by.clone()))).collect();
        Ok(Heartbeat { cancel_requested })
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        self.check_reachable(instance)?;
        let mut state = self.cluster.lock().await;
        let queued: HashSet<ExecutionId> = self
            .unfinished()
            .await?
            .into_iter()
            .filter(|execution| execution.status == ExecutionStatus::Queued)
            .map(|execution| execution.id)
            .collect();
        state.instances.remove(instance);
        state.leases.retain(|id, lease| lease.owner != instance || !queued.contains(id));
        Ok(())
    }

    async fn list_instances(&self, within: Duration) -> Result<Vec<InstanceInfo>, StoreError> {
        let state = self.cluster.lock().await;
        let mut instances: Vec<InstanceInfo> = state
            .instances
            .iter()
            .filter(|(_, record)| record.last_seen.elapsed() < within)
            .map(|(id, record)| InstanceInfo {
                id: id.clone(),
                started_at: record.started_at,
                heartbeat_at: record.heartbeat_at,
                running: record.running,
            })
            .collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    async fn claim(
        &self,
        instance: &str,
        slots: usize,
        lease: Duration,
    ) -> Result<Vec<Execution>, StoreError> {
        self.check_reachable(instance)?;
        let mut state = self.cluster.lock().await;
        let unfinished = self.unfinished().await?;
        let at = Instant::now();
        let mut busy: HashMap<FunctionId, u32> = HashMap::new();
        for execution in &unfinished {
            let is_busy = match execution.status {
                ExecutionStatus::Queued => {
                    state.leases.get(&execution.id).is_some_and(|lease| lease.is_live(at))
                }
                _ => true,
            };
            if is_busy {
                *busy.entry(execution.function_id).or_default() += 1;
            }
        }
        let mut limits: HashMap<FunctionId, Option<u32>> = HashMap::new();
        let mut claimed = Vec::new();
        for execution in unfinished {
            if claimed.len() >= slots {
                break;
            }
            let is_free = execution.status == ExecutionStatus::Queued
                && !state.leases.get(&execution.id).is_some_and(|lease| lease.is_live(at));
            if !is_free {
                continue;
            }
            let limit = match limits.get(&execution.function_id) {
                Some(limit) => *limit,
                None => {
                    let function = self.store.get_function(&FunctionKey::Id(execution.function_id)).await?;
                    let limit = function.and_then(|function| function.max_concurrency);
                    limits.insert(execution.function_id, limit);
                    limit
                }
            };
            let running = busy.entry(execution.function_id).or_default();
            if limit.is_some_and(|limit| *running >= limit) {
                continue;
            }
            *running += 1;
            state.leases.insert(execution.id, Lease { owner: instance.to_owned(), until: at + lease });
            claimed.push(execution);
        }
        Ok(claimed)
    }

    async fn release(&self, instance: &str, id: ExecutionId) -> Result<(), StoreError> {
        self.check_reachable(instance)?;
        let mut state = self.cluster.lock().await;
        let is_queued = self
            .store
            .get_execution(id)
            .await?
            .is_some_and(|execution| execution.status == ExecutionStatus::Queued);
        if is_queued && state.leases.get(&id).is_some_and(|lease| lease.owner == instance) {
            state.leases.remove(&id);
        }
        Ok(())
    }

    async fn expired(&self, instance: Option<&str>, limit: usize) -> Result<Vec<Execution>, StoreError> {
        if let Some(instance) = instance {
            self.check_reachable(instance)?;
        }
        let mut state = self.cluster.lock().await;
        let unfinished = self.unfinished().await?;
        let at = Instant::now();
        let mut found = Vec::new();
        for execution in unfinished {
            let Some(lease) = state.leases.get(&execution.id) else { continue };
            let is_own = instance.is_some_and(|instance| lease.owner == instance);
            if lease.is_live(at) && !is_own {
                continue;
            }
            if execution.status == ExecutionStatus::Queued {
                state.leases.remove(&execution.id);
            } else if found.len() < limit {
                found.push(execution);
            }
        }
        Ok(found)
    }

    async fn request_cancel(&self, id: ExecutionId, by: Option<&str>) -> Result<(), StoreError> {
        let execution = self.store.get_execution(id).await?;
        let is_live = execution.is_some_and(|execution| {
            matches!(execution.status, ExecutionStatus::Running | ExecutionStatus::Waiting)
        });
        if is_live {
            self.cluster.lock().await.cancels.insert(id, by.map(str::to_owned));
            self.signal(Signal::Cancel { execution_id: id, by: by.map(str::to_owned) });
        }
        Ok(())
    }

    async fn announce_decision(&self, id: ApprovalId) -> Result<(), StoreError> {
        self.signal(Signal::Decided { approval_id: id });
        Ok(())
    }

    fn subscribe(&self, sink: SignalSink) {
        self.sinks.lock().expect("sinks lock poisoned").push(sink);
    }

    async fn shared_secret(&self) -> Result<[u8; 32], StoreError> {
        Ok(self.secret)
    }

    async fn create_login(&self, login: &LoginRecord) -> Result<(), StoreError> {
        let mut state = self.cluster.lock().await;
        state.n_logins_made += 1;
        let order = state.n_logins_made;
        state.logins.insert(login.id_hash.clone(), (login.clone(), order));
        let mut of_token: Vec<(u64, String)> = state
            .logins
            .values()
            .filter(|(record, _)| record.token_name == login.token_name)
            .map(|(record, order)| (*order, record.id_hash.clone()))
            .collect();
        if of_token.len() > MAX_LOGINS_PER_TOKEN {
            of_token.sort_unstable();
            for (_, id_hash) in &of_token[..of_token.len() - MAX_LOGINS_PER_TOKEN] {
                state.logins.remove(id_hash);
            }
        }
        Ok(())
    }

    async fn get_login(&self, id_hash: &str) -> Result<Option<LoginRecord>, StoreError> {
        let mut state = self.cluster.lock().await;
        let at = now();
        state.logins.retain(|_, (record, _)| record.expires_at > at);
        Ok(state.logins.get(id_hash).map(|(record, _)| record.clone()))
    }

    async fn delete_login(&self, id_hash: &str) -> Result<(), StoreError> {
        self.cluster.lock().await.logins.remove(id_hash);
        Ok(())
    }
}

#[async_trait]
impl DashboardStore for SharedMemory {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        let recorded = self.store.create_function(function).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        self.store.get_function(key).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.store.list_functions().await
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        let recorded = self.store.update_function(id, spec, expected_version).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        let recorded = self.store.delete_function(id).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        let recorded = self.store.create_execution(execution).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        self.store.get_execution(id).await
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        self.store.list_executions(query).await
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        let recorded = self.store.update_execution(id, update).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        let has_lines = !lines.is_empty();
        let logged = self.store.update_execution_with_logs(id, update, lines, items).await?;
        if has_lines {
            self.signal(Signal::Logs { execution_id: id, last_seq: logged.last_seq });
        }
        self.signal_items(id, &logged.items);
        self.signal_event(&logged.recorded.event);
        Ok(logged)
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        self.store.set_session_id(id, session_id).await
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        self.store.get_diff(id).await
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        self.store.list_unfinished().await
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        self.store.count_by_status().await
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        let has_lines = !lines.is_empty();
        let last_seq = self.store.append_logs(id, lines).await?;
        if has_lines {
            self.signal(Signal::Logs { execution_id: id, last_seq });
        }
        Ok(last_seq)
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        self.store.read_logs(id, after, limit).await
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        let stored = self.store.upsert_items(id, items).await?;
        self.signal_items(id, &stored);
        Ok(stored)
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.store.list_items(id, after, limit).await
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let change = self.store.create_approval(approval, item).await?;
        self.signal_approval_change(&change);
        Ok(change)
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let change = self.store.decide_approval(id, decision, item).await?;
        self.signal_approval_change(&change);
        Ok(change)
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        self.store.get_approval(id).await
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        self.store.list_approvals(query).await
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        self.store.count_pending_approvals().await
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        self.store.session_grant(session_id, kind, grant_key).await
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        self.store.spend_since(query).await
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        self.store.daily_spend(since).await
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let recorded = self.store.create_schedule(schedule).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        self.store.get_schedule(id).await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.store.list_schedules().await
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let recorded = self.store.update_schedule(schedule).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        let recorded = self.store.delete_schedule(id).await?;
        self.signal_event(&recorded.event);
        Ok(recorded)
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        self.store.due_schedules(now, limit).await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        let fired = self.store.fire_schedule(fire).await?;
        if let Some(event) = fired.as_ref().and_then(|fired| fired.events.last()) {
            self.signal_event(event);
        }
        Ok(fired)
    }

    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        self.store.set_outbox_rules(rules);
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.store.claim_deliveries(owner, notification, lease, limit).await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        let finished = self.store.finish_delivery(id, owner, outcome).await?;
        if let Some(event) = finished.as_ref().and_then(|finished| finished.event.as_ref()) {
            self.signal_event(event);
        }
        Ok(finished)
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.store.list_deliveries(query).await
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.store.list_events(after, limit).await
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        self.store.last_event_id().await
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        self.store.prune_finished_before(cutoff, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dashboard_core::{Function, FunctionSpec};
    use serde_json::json;

    use super::*;

    /// Its store side is the `MemoryStore`'s, signals aside: the whole suite holds.
    mod conformance {
        crate::conformance_tests!(super::SharedMemory::default());
    }

    const LEASE: Duration = Duration::from_secs(60);

    async fn function(store: &SharedMemory, name: &str, max_concurrency: Option<u32>) -> Function {
        let spec = FunctionSpec { max_concurrency, ..FunctionSpec::new(name, "demo") };
        let function = Function::create(spec).expect("a valid spec");
        store.create_function(function).await.expect("created").value
    }

    async fn queue(store: &SharedMemory, function: &Function) -> ExecutionId {
        let new = NewExecution::of(function, json!({}));
        store.create_execution(new).await.expect("queued").value.id
    }

    async fn start(store: &SharedMemory, id: ExecutionId) {
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
        store.update_execution(id, update).await.expect("started");
    }

    fn ids(executions: &[Execution]) -> Vec<ExecutionId> {
        executions.iter().map(|execution| execution.id).collect()
    }

    #[tokio::test]
    async fn each_queued_execution_is_claimed_once_within_its_functions_limit() {
        let store = SharedMemory::default();
        let (limited, free) =
            (function(&store, "limited", Some(1)).await, function(&store, "free", None).await);
        let first = queue(&store, &limited).await;
        let _second = queue(&store, &limited).await;
        let others = [queue(&store, &free).await, queue(&store, &free).await];

        let claimed = store.claim("a", 10, LEASE).await.expect("claimed");
        assert_eq!(ids(&claimed), [first, others[0], others[1]], "the limited function's second waits");
        assert!(store.claim("b", 10, LEASE).await.expect("claimed").is_empty(), "nothing is claimed twice");
        start(&store, first).await;
        assert!(store.claim("b", 10, LEASE).await.expect("claimed").is_empty(), "a running one counts too");
    }

    #[tokio::test]
    async fn expired_work_is_released_when_queued_and_returned_when_it_ran() {
        let store = SharedMemory::default();
        let function = function(&store, "f", None).await;
        let (running, queued) = (queue(&store, &function).await, queue(&store, &function).await);
        store.claim("a", 10, Duration::ZERO).await.expect("claimed");
        start(&store, running).await;

        assert_eq!(ids(&store.expired(None, 10).await.expect("expired")), [running]);
        assert_eq!(
            ids(&store.claim("b", 10, LEASE).await.expect("claimed")),
            [queued],
            "released for others"
        );
        assert_eq!(
            ids(&store.expired(Some("b"), 10).await.expect("own")),
            [running],
            "own, whatever the lease"
        );
    }

    #[tokio::test]
    async fn a_heartbeat_renews_leases_and_hands_over_the_cancels_asked_elsewhere() {
        let store = SharedMemory::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        store.subscribe(Arc::new(move |signal| sink.lock().expect("heard lock").push(signal)));
        let function = function(&store, "f", None).await;
        let id = queue(&store, &function).await;
        store.claim("a", 1, Duration::ZERO).await.expect("claimed");
        start(&store, id).await;
        store.heartbeat("a", &[id], LEASE).await.expect("alive");
        assert!(store.expired(None, 10).await.expect("expired").is_empty(), "renewed");

        store.request_cancel(id, Some("alice")).await.expect("asked");
        let heartbeat = store.heartbeat("a", &[id], LEASE).await.expect("alive");
        assert_eq!(heartbeat.cancel_requested, [(id, Some("alice".to_owned()))]);
        assert!(
            heard
                .lock()
                .expect("heard lock")
                .contains(&Signal::Cancel { execution_id: id, by: Some("alice".into()) })
        );
        assert!(
            heard.lock().expect("heard lock").iter().any(|signal| matches!(signal, Signal::Events { .. }))
        );

        store.cut_off("a");
        assert!(matches!(store.heartbeat("a", &[id], LEASE).await, Err(StoreError::Unavailable { .. })));
    }
}
