//! `PostgresStore`: the dashboard's store on a PostgreSQL server, which any number of dashboard instances may share
//! (DESIGN.md §13). Selected by `DASHBOARD_STORE=postgres://…`; SQLite stays the default.
//!
//! It implements [`DashboardStore`] — the conformance suite runs on it unchanged (`tests/conformance.rs`) — and
//! [`Cluster`](dashboard_store::Cluster): claims with `FOR UPDATE SKIP LOCKED` under leases, heartbeats, the
//! instances, login sessions, and signals between instances by `LISTEN/NOTIFY` (`listener.rs`, `signals.rs`). The
//! schema is made and migrated at connect (`schema.rs`, the append-only files in `migrations/`) under an advisory
//! lock, so instances that start together migrate once.
//!
//! Every method of [`DashboardStore`] is one transaction on a pooled connection (`transaction.rs`), its SQL in the
//! module of its kind of record (`functions.rs`, `executions.rs`, `logs.rs`, `items.rs`, `approvals.rs`, `events.rs`,
//! `schedules.rs`, `deliveries.rs`, `spend.rs`, `prune.rs` — ports of `dashboard-store-sqlite`'s). What several
//! instances writing at once need is in the database, not in a process: a change locks the rows it compares
//! (`FOR UPDATE`), so compare-and-sets hold and logs and items number without gaps; unique indexes decide names, ids
//! and idempotency keys; and event ids are taken from one counter row as the last step before commit, so they follow
//! commit order. The notification outbox's deliveries are written at that same commit, when a rule of
//! `set_outbox_rules` asks for them; schedules fire by a compare-and-set on their due time, and deliveries are claimed
//! with `FOR UPDATE SKIP LOCKED`, so each due time fires once and each delivery goes to one instance at a time.
//!
//! Why tokio-postgres with deadpool-postgres, not sqlx: the queries are few and hand-written, so sqlx's macros and
//! its checking against a live database at build time buy nothing here, while its tree (a runtime layer, a
//! TLS layer, the macros) is several times the size; tokio-postgres is the maintained async driver under both, and
//! deadpool-postgres a small pool made for it. No TLS: the dashboard reaches its database on a trusted network (or
//! through a local proxy), as docs/operations.md says.
//!
//! Every session it opens, pooled or the listener's, has server-side timeouts (`session.rs`): a session that froze in a
//! transaction is ended by the server, and a statement that waits for a lock or runs too long is cancelled, so an
//! instance that stops answering holds up the others for seconds (each hears `Unavailable`), never for hours.
//!
//! What it must never do: let a PostgreSQL type out of this crate — errors become [`StoreError`]s where they enter
//! (`codec.rs`).

mod approvals;
mod cluster;
mod codec;
mod deliveries;
mod events;
mod executions;
mod functions;
mod import;
mod items;
mod listener;
mod logs;
mod prune;
mod redact;
mod schedules;
mod schema;
mod session;
mod signals;
mod spend;
mod transaction;

#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, Delivery, DeliveryId, Event, Execution,
    ExecutionId, Function, FunctionId, FunctionSpec, Item, LogLine, NewItem, NewLogLine, Schedule,
    ScheduleId, Timestamp,
};
use dashboard_store::{
    ApprovalChange, ApprovalQuery, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionPage,
    ExecutionQuery, ExecutionUpdate, FinishedDelivery, FiredSchedule, FunctionKey, LoggedUpdate,
    NewExecution, OutboxRule, Recorded, ScheduleFire, SignalSink, Spend, SpendQuery, StatusCounts,
    StoreError,
};

use self::transaction::{Tx, single};

pub use import::{ImportReport, SQLITE_SCHEMA_VERSION, import_sqlite};
pub use redact::{UNREADABLE_ADDRESS, is_postgres_url, redacted_url};
pub use schema::SCHEMA_VERSION;

/// How to reach the database and how many connections to keep.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database` (or `postgresql://…`), with libpq's key=value options too.
    pub url: String,
    /// The most connections of the pool (`DASHBOARD_PG_POOL_SIZE`, default 16); the listener holds one more.
    pub pool_size: usize,
    /// How long a query may wait for a connection, and a connection attempt may take, before the store answers
    /// [`StoreError::Unavailable`] (default 5 s): while the server is down, callers hear so within this time.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), pool_size: 16, connect_timeout: Duration::from_secs(5) }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("PostgresOptions")
            .field("url", &redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The dashboard's store on PostgreSQL. Cheap to share (`Arc`); every method borrows a pooled connection for one
/// transaction.
pub struct PostgresStore {
    pub(crate) pool: deadpool_postgres::Pool,
    pub(crate) options: PostgresOptions,
    /// Who hears the signals the listener receives.
    pub(crate) sinks: Arc<Mutex<Vec<SignalSink>>>,
    /// The rules of the notification outbox (`set_outbox_rules`); `None` while there are none, so that a write with
    /// no rules does nothing more than before.
    outbox: RwLock<Option<Arc<[OutboxRule]>>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("options", &self.options).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates or migrates the schema (under an advisory lock: instances starting together migrate once),
    /// and starts the listener that receives other instances' signals. Must be called within a tokio runtime.
    ///
    /// Errors: [`StoreError::Unavailable`] when the server cannot be reached or refuses, or when the database has a
    /// newer schema than this build knows, saying which.
    pub async fn connect(options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = options.url.parse().map_err(|error| {
            codec::unavailable(
                error,
                &format!("the database URL {} is not valid", redacted_url(&options.url)),
            )
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("agent-dashboard");
        }
        tune_dead_peer_detection(&mut config);
        session::apply_server_options(&mut config);
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| StoreError::Unavailable {
                message: format!("could not set up the pool of database connections: {error}"),
                source: None,
            })?;
        let store =
            Self { pool, options, sinks: Arc::new(Mutex::new(Vec::new())), outbox: RwLock::new(None) };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        listener::spawn(store.options.clone(), Arc::clone(&store.sinks));
        Ok(store)
    }

    /// A connection of the pool, for one operation; it goes back to the pool when dropped.
    ///
    /// Errors: [`StoreError::Unavailable`] when none is free within `connect_timeout`, or the server cannot be reached.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|error| codec::pool_unavailable(error, self.options.connect_timeout))
    }

    /// The outbox's rules for a transaction that begins now (`None` when there are none).
    fn outbox_rules(&self) -> Option<Arc<[OutboxRule]>> {
        self.outbox.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// tokio-postgres's keep-alive idle time when the URL sets none.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A server that vanished without closing its connections (a host gone, a network cut) is noticed within about a
/// minute — an idle connection by keep-alive probes, one waiting for its data to be acknowledged by the TCP user
/// timeout — rather than the system's defaults (two hours, a quarter of an hour), unless the URL chose otherwise. (A
/// server that is alive but stopped, whose kernel still acknowledges, is not noticed this way.)
fn tune_dead_peer_detection(config: &mut tokio_postgres::Config) {
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(60));
    }
}

/// Each method is one transaction on a pooled connection (a read is one statement). A change locks the rows it
/// compares (`FOR UPDATE`), so its compare-and-set holds across instances; its events get their ids at commit
/// (`transaction.rs`), and the signals it sends are delivered at commit.
#[async_trait]
impl DashboardStore for PostgresStore {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = functions::create(&mut tx, function).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        Ok(functions::get(&self.client().await?, key).await?)
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        Ok(functions::list(&self.client().await?).await?)
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = functions::update(&mut tx, id, spec, expected_version).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = functions::delete(&mut tx, id).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = executions::create(&mut tx, execution).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        Ok(executions::get(&self.client().await?, id).await?)
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        Ok(executions::list(&self.client().await?, query).await?)
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = executions::update(&mut tx, id, update).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        // The update locks the execution's row, under which the lines and items are numbered; should the append or
        // the upsert fail after it, the transaction undoes all three.
        let value = executions::update(&mut tx, id, update).await?;
        let last_seq = logs::append_to_locked(&mut tx, id, lines).await?;
        let items = items::upsert_into_locked(&mut tx, id, items).await?;
        let recorded = Recorded { value, event: single(tx.commit().await?)? };
        Ok(LoggedUpdate { recorded, last_seq, items })
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        Ok(executions::set_session_id(&self.client().await?, id, session_id).await?)
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        Ok(executions::get_diff(&self.client().await?, id).await?)
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        Ok(executions::list_unfinished(&self.client().await?).await?)
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        Ok(executions::count_by_status(&self.client().await?).await?)
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let last_seq = logs::append(&mut tx, id, lines).await?;
        tx.commit().await?;
        Ok(last_seq)
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        Ok(logs::read_after(&self.client().await?, id, after, limit).await?)
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let items = items::upsert(&mut tx, id, items).await?;
        tx.commit().await?;
        Ok(items)
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        Ok(items::read_after(&self.client().await?, id, after, limit).await?)
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let change = approvals::create(&mut tx, approval, item).await?;
        Ok(ApprovalChange { events: tx.commit().await?, ..change })
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let change = approvals::decide(&mut tx, id, decision, item).await?;
        Ok(ApprovalChange { events: tx.commit().await?, ..change })
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        Ok(approvals::get(&self.client().await?, id).await?)
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        Ok(approvals::list(&self.client().await?, query).await?)
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        Ok(approvals::count_pending(&self.client().await?).await?)
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        Ok(approvals::session_grant(&self.client().await?, session_id, kind, grant_key).await?)
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        Ok(spend::since(&self.client().await?, query).await?)
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        Ok(spend::daily(&self.client().await?, since).await?)
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = schedules::create(&mut tx, schedule).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        Ok(schedules::get(&self.client().await?, id).await?)
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(schedules::list(&self.client().await?).await?)
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = schedules::update(&mut tx, schedule).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let value = schedules::delete(&mut tx, id).await?;
        Ok(Recorded { value, event: single(tx.commit().await?)? })
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        Ok(schedules::due(&self.client().await?, now, limit).await?)
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        // Another fire or a change got there first: the transaction, which wrote nothing, is rolled back.
        let Some((schedule, execution)) = schedules::fire(&mut tx, fire).await? else { return Ok(None) };
        Ok(Some(FiredSchedule { schedule, execution, events: tx.commit().await? }))
    }

    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        let rules = if rules.is_empty() { None } else { Some(Arc::from(rules)) };
        *self.outbox.write().unwrap_or_else(PoisonError::into_inner) = rules;
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(deliveries::claim(&self.client().await?, owner, notification, lease, limit).await?)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let Some(delivery) = deliveries::finish(&mut tx, id, owner, outcome).await? else { return Ok(None) };
        let event = tx.commit().await?.into_iter().next();
        Ok(Some(FinishedDelivery { delivery, event }))
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        Ok(deliveries::list(&self.client().await?, query).await?)
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Ok(events::list_after(&self.client().await?, after, limit).await?)
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        Ok(events::last_id(&self.client().await?).await?)
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let mut tx = Tx::begin(&mut client, self.outbox_rules()).await?;
        let n_deleted = prune::finished_before(&mut tx, cutoff, limit).await?;
        tx.commit().await?;
        Ok(n_deleted)
    }

    /// A write that is rolled back (see `schema::probe`): a server that answers reads but refuses writes — a standby,
    /// a database made read-only — is not healthy, and one that is down answers within `connect_timeout`.
    async fn ping(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        Ok(schema::probe(&mut client).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_never_show_a_password() {
        let shown = format!("{:?}", PostgresOptions::new("postgres://u:pw/with/slashes@h/d"));
        assert!(!shown.contains("pw") && !shown.contains("slashes"), "{shown}");
    }

    #[tokio::test]
    async fn every_pooled_session_has_the_server_side_timeouts() {
        let Some(url) = testing::database("store_session").await else { return };
        let store =
            PostgresStore::connect(PostgresOptions::new(url)).await.expect("a store on the test database");
        let client = store.client().await.expect("a connection");
        let rows = client
            .query(
                "SELECT name, setting FROM pg_settings WHERE name IN ('idle_in_transaction_session_timeout', \
                 'lock_timeout', 'statement_timeout', 'tcp_keepalives_idle', 'tcp_keepalives_interval', \
                 'tcp_keepalives_count') ORDER BY name",
                &[],
            )
            .await
            .expect("the settings");
        let settings: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let expected = [
            ("idle_in_transaction_session_timeout", "10000"),
            ("lock_timeout", "5000"),
            ("statement_timeout", "30000"),
            ("tcp_keepalives_count", "3"),
            ("tcp_keepalives_idle", "30"),
            ("tcp_keepalives_interval", "10"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        assert_eq!(settings, expected, "the test server is reached over TCP, so the keep-alives apply too");
    }
}
