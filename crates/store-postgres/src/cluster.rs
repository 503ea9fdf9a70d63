//! [`Cluster`](dashboard_store::Cluster) for [`PostgresStore`](crate::PostgresStore): claims under leases,
//! heartbeats, the instances, cancels and decisions signalled between instances, login sessions, the shared secret.
//!
//! Times that decide between instances (leases, heartbeats, login expiry) are the server's `now()`, never an
//! instance's own clock, so instances whose clocks disagree still agree on whose lease has ended. Every statement is
//! prepared once per pooled connection (`prepare_cached`).

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{ApprovalId, Execution, ExecutionId, ExecutionStatus};
use dashboard_store::{Cluster, Heartbeat, InstanceInfo, LoginRecord, Signal, SignalSink, StoreError};
use deadpool_postgres::{Client, GenericClient};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::PostgresStore;
use crate::codec::{Columns, OpError, database_error, sql_int, text};
use crate::executions::{columns, from_row};
use crate::signals::{CHANNEL, payload};

/// The key of the advisory lock that serialises claims across instances ("dashclam" in ASCII): two claims counting
/// a function's running executions at once could both take its last slot. A claim only tries it: when another
/// instance's claim holds it, this one claims nothing this round (its instance tries again within a second), so a
/// claim never waits behind a session that froze while holding it.
const CLAIM_LOCK: i64 = 0x6461_7368_636c_616d;

/// The first key of the advisory locks that serialise the login sessions of one token (the second is a hash of the
/// token's name), so that two sign-ins at once cannot leave it more than [`LOGINS_PER_TOKEN`]. Two-key advisory locks
/// never meet the one-key locks of claims and migrations.
const LOGIN_LOCK: i32 = 0x6c67_6e73;

/// The most login sessions one token keeps; its oldest make room for a new one.
const LOGINS_PER_TOKEN: i64 = 100;

// The queries below that look at unfinished executions name their statuses as the partial index
// `executions_unfinished` does (`status IN ('queued', 'running', 'waiting')`, or a part of that list), so that they
// read that index — the few unfinished executions — and never the whole table (the test
// `claims_and_leases_read_the_unfinished_executions_only` checks their plans on 100,000 executions).

/// How many more executions of each function with a `max_concurrency` may hold a slot now: its limit less its
/// executions that are running, waiting, or queued under a live lease.
const ROOM: &str = "SELECT e.function_id, f.max_concurrency - count(*) \
     FROM executions e JOIN functions f ON f.id = e.function_id \
     WHERE e.status IN ('queued', 'running', 'waiting') \
       AND (e.status <> 'queued' OR e.lease_expires_at > now()) \
       AND f.max_concurrency IS NOT NULL \
     GROUP BY e.function_id, f.max_concurrency";

/// Up to `$3` queued executions without a live lease after id `$1`, oldest first, of functions not in `$2`, each
/// with its function's current `max_concurrency` (none for a deleted function); locked, skipping those another
/// transaction holds (one being cancelled, say).
const CANDIDATES: &str = "SELECT e.id, e.function_id, f.max_concurrency \
     FROM executions e LEFT JOIN functions f ON f.id = e.function_id \
     WHERE e.status = 'queued' AND (e.lease_expires_at IS NULL OR e.lease_expires_at <= now()) \
       AND e.id > $1 AND NOT (e.function_id = ANY ($2)) \
     ORDER BY e.id LIMIT $3 \
     FOR UPDATE OF e SKIP LOCKED";

/// Leases the executions `$3` to instance `$1` for `$2` seconds from now — the clock's now, not the transaction's
/// start (`now()`), so that whatever the claim waited for is not taken from the lease.
const LEASE: &str = concat!(
    "UPDATE executions SET lease_owner = $1, lease_expires_at = clock_timestamp() + make_interval(secs => $2) \
     WHERE id = ANY ($3) RETURNING ",
    columns!()
);

/// Renews for `$2` seconds the lease of every unfinished execution instance `$1` holds.
const RENEW: &str = "UPDATE executions SET lease_expires_at = now() + make_interval(secs => $2) \
     WHERE lease_owner = $1 AND id = ANY($3) AND status IN ('queued', 'running', 'waiting') \
     RETURNING id, status, cancel_requested, cancel_by";

/// Releases the queued executions whose lease ended, and those of instance `$1` (`lease_owner = NULL` is never true:
/// with no instance given, only ended leases count).
const RELEASE_ENDED: &str = "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL \
     WHERE status = 'queued' AND (lease_expires_at < now() OR lease_owner = $1)";

/// The running and waiting executions whose lease ended, and those of instance `$1`, oldest first, at most `$2`.
const ORPHANS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM executions WHERE status IN ('running', 'waiting') AND (lease_expires_at < now() OR lease_owner = $1) \
     ORDER BY id LIMIT $2"
);

#[async_trait]
impl Cluster for PostgresStore {
    async fn join(&self, instance: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let query = "INSERT INTO instances (id, started_at, heartbeat_at, running) VALUES ($1, now(), now(), 0) \
                     ON CONFLICT (id) DO UPDATE SET started_at = now(), heartbeat_at = now(), running = 0";
        execute(&client, query, &[&text(instance)])
            .await
            .map_err(|error| error.during("could not record the instance"))
    }

    async fn heartbeat(
        &self,
        instance: &str,
        held: &[ExecutionId],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        let mut client = self.client().await?;
        heartbeat(&mut client, instance, held, lease)
            .await
            .map_err(|error| error.during("could not record the instance's heartbeat"))
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        leave(&mut client, instance).await.map_err(|error| error.during("could not remove the instance"))
    }

    async fn list_instances(&self, within: Duration) -> Result<Vec<InstanceInfo>, StoreError> {
        let client = self.client().await?;
        list_instances(&client, within).await.map_err(|error| error.during("could not list the instances"))
    }

    async fn claim(
        &self,
        instance: &str,
        slots: usize,
        lease: Duration,
    ) -> Result<Vec<Execution>, StoreError> {
        if slots == 0 {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        claim(&mut client, instance, slots, lease)
            .await
            .map_err(|error| error.during("could not claim queued executions"))
    }

    async fn release(&self, instance: &str, id: ExecutionId) -> Result<(), StoreError> {
        let client = self.client().await?;
        let query = "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'queued'";
        execute(&client, query, &[&id.as_uuid(), &text(instance)])
            .await
            .map_err(|error| error.during("could not release a claimed execution"))
    }

    async fn expired(&self, instance: Option<&str>, limit: usize) -> Result<Vec<Execution>, StoreError> {
        let mut client = self.client().await?;
        expired(&mut client, instance, limit)
            .await
            .map_err(|error| error.during("could not look for executions whose lease ended"))
    }

    async fn request_cancel(&self, id: ExecutionId, by: Option<&str>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let signal = travelling(&Signal::Cancel { execution_id: id, by: by.map(str::to_owned) });
        // One statement: the mark and the notification are committed together, and only when a run was marked.
        let query = "WITH asked AS (UPDATE executions SET cancel_requested = true, cancel_by = $2 \
                                    WHERE id = $1 AND status IN ('running', 'waiting') RETURNING id) \
                     SELECT pg_notify($3, $4) FROM asked";
        execute(&client, query, &[&id.as_uuid(), &by.map(text), &CHANNEL, &text(&signal)])
            .await
            .map_err(|error| error.during("could not ask for the cancel of an execution"))
    }

    async fn announce_decision(&self, id: ApprovalId) -> Result<(), StoreError> {
        let client = self.client().await?;
        let signal = travelling(&Signal::Decided { approval_id: id });
        execute(&client, "SELECT pg_notify($1, $2)", &[&CHANNEL, &signal])
            .await
            .map_err(|error| error.during("could not announce an approval's decision"))
    }

    fn subscribe(&self, sink: SignalSink) {
        // A sink that panicked while the list was locked left it whole: a poisoned lock is still usable.
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner).push(sink);
    }

    async fn shared_secret(&self) -> Result<[u8; 32], StoreError> {
        let client = self.client().await?;
        shared_secret(&client)
            .await
            .map_err(|error| error.during("could not read the cluster's shared secret"))
    }

    async fn create_login(&self, login: &LoginRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        create_login(&mut client, login)
            .await
            .map_err(|error| error.during("could not store a login session"))
    }

    async fn get_login(&self, id_hash: &str) -> Result<Option<LoginRecord>, StoreError> {
        let client = self.client().await?;
        get_login(&client, id_hash).await.map_err(|error| error.during("could not read a login session"))
    }

    async fn delete_login(&self, id_hash: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(&client, "DELETE FROM logins WHERE id_hash = $1", &[&text(id_hash)])
            .await
            .map_err(|error| error.during("could not end a login session"))
    }
}

/// What a cluster operation failed with, before it is told which operation that was.
#[derive(Debug)]
enum Failure {
    /// The database failed.
    Database(tokio_postgres::Error),
    /// A store error decided here (a stored value that cannot be read, no random bytes for the secret).
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error)
    }
}

impl From<OpError> for Failure {
    fn from(error: OpError) -> Self {
        Self::Store(error.0)
    }
}

impl Failure {
    /// The error, saying `what` failed.
    fn during(self, what: &str) -> StoreError {
        match self {
            Self::Database(error) => database_error(error, what),
            Self::Store(error) => error,
        }
    }
}

type Outcome<T> = Result<T, Failure>;

/// Runs one statement, prepared once per connection.
async fn execute(client: &impl GenericClient, query: &str, params: &[&(dyn ToSql + Sync)]) -> Outcome<()> {
    let statement = client.prepare_cached(query).await?;
    client.execute(&statement, params).await?;
    Ok(())
}

/// Runs one query, prepared once per connection.
async fn query(
    client: &impl GenericClient,
    query: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Outcome<Vec<Row>> {
    let statement = client.prepare_cached(query).await?;
    Ok(client.query(&statement, params).await?)
}

/// The payload of a signal that travels between instances.
fn travelling(signal: &Signal) -> String {
    payload(signal).expect("only Signal::Reconnected stays within an instance, and it is never sent")
}

/// A lease as seconds for `make_interval`.
fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

async fn heartbeat(
    client: &mut Client,
    instance: &str,
    held: &[ExecutionId],
    lease: Duration,
) -> Outcome<Heartbeat> {
    let instance = text(instance);
    let running = u32::try_from(held.len()).unwrap_or(u32::MAX);
    let held: Vec<uuid::Uuid> = held.iter().map(ExecutionId::as_uuid).collect();
    let transaction = client.transaction().await?;
    let alive = "INSERT INTO instances (id, started_at, heartbeat_at, running) VALUES ($1, now(), now(), $2) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), running = $2";
    execute(&transaction, alive, &[&instance, &i64::from(running)]).await?;
    let rows = query(&transaction, RENEW, &[&instance, &seconds(lease), &held]).await?;
    transaction.commit().await?;
    let mut cancel_requested = Vec::new();
    for row in &rows {
        let columns = Columns(row);
        let status: ExecutionStatus = columns.parsed(1)?;
        if status != ExecutionStatus::Queued && columns.get::<bool>(2)? {
            cancel_requested.push((columns.id::<ExecutionId>(0)?, columns.get::<Option<String>>(3)?));
        }
    }
    cancel_requested.sort_by_key(|(id, _)| *id);
    Ok(Heartbeat { cancel_requested })
}

async fn leave(client: &mut Client, instance: &str) -> Outcome<()> {
    let instance = text(instance);
    let transaction = client.transaction().await?;
    execute(&transaction, "DELETE FROM instances WHERE id = $1", &[&instance]).await?;
    // What it claimed and will not start is free at once, rather than when its lease ends.
    let release = "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL \
                   WHERE lease_owner = $1 AND status = 'queued'";
    execute(&transaction, release, &[&instance]).await?;
    transaction.commit().await?;
    Ok(())
}

async fn list_instances(client: &Client, within: Duration) -> Outcome<Vec<InstanceInfo>> {
    let rows = query(
        client,
        "SELECT id, started_at, heartbeat_at, running FROM instances \
         WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY id",
        &[&seconds(within)],
    )
    .await?;
    let mut instances = Vec::with_capacity(rows.len());
    for row in &rows {
        let columns = Columns(row);
        instances.push(InstanceInfo {
            id: columns.get(0)?,
            started_at: columns.get(1)?,
            heartbeat_at: columns.get(2)?,
            running: columns.unsigned(3)?,
        });
    }
    Ok(instances)
}

/// One claim, in one transaction under [`CLAIM_LOCK`]: a function's running count cannot change under a claim except
/// by a run ending, which only frees room. Nothing when another claim holds the lock.
async fn claim(
    client: &mut Client,
    instance: &str,
    slots: usize,
    lease: Duration,
) -> Outcome<Vec<Execution>> {
    let transaction = client.transaction().await?;
    let locked = query(&transaction, "SELECT pg_try_advisory_xact_lock($1)", &[&CLAIM_LOCK]).await?;
    let is_locked: bool = match locked.first() {
        Some(row) => row.try_get(0)?,
        None => false,
    };
    if !is_locked {
        transaction.rollback().await?;
        return Ok(Vec::new());
    }
    let mut room: HashMap<Uuid, i64> = HashMap::new();
    for row in query(&transaction, ROOM, &[]).await? {
        room.insert(row.try_get(0)?, row.try_get(1)?);
    }
    // Functions with no room left: their executions are passed over, so that they hold up no other function's.
    let mut full: Vec<Uuid> = room.iter().filter(|(_, left)| **left <= 0).map(|(id, _)| *id).collect();
    let mut taken: Vec<Uuid> = Vec::with_capacity(slots);
    let mut after = Uuid::nil();
    // Each round takes at least one execution or finds at least one more function full, so the rounds are few.
    while taken.len() < slots {
        let wanted = slots - taken.len();
        let candidates = query(&transaction, CANDIDATES, &[&after, &full, &sql_int(wanted)]).await?;
        for row in &candidates {
            let id: Uuid = row.try_get(0)?;
            let function_id: Uuid = row.try_get(1)?;
            let limit: Option<i64> = row.try_get(2)?;
            after = id;
            let Some(limit) = limit else {
                taken.push(id);
                continue;
            };
            let left = room.entry(function_id).or_insert(limit);
            if *left > 0 {
                taken.push(id);
                *left -= 1;
            }
            if *left <= 0 && !full.contains(&function_id) {
                full.push(function_id);
            }
        }
        if candidates.len() < wanted {
            break;
        }
    }
    if taken.is_empty() {
        transaction.commit().await?;
        return Ok(Vec::new());
    }
    let rows = query(&transaction, LEASE, &[&text(instance), &seconds(lease), &taken]).await?;
    transaction.commit().await?;
    let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|execution| execution.id);
    Ok(claimed)
}

async fn expired(client: &mut Client, instance: Option<&str>, limit: usize) -> Outcome<Vec<Execution>> {
    let instance = instance.map(text);
    let transaction = client.transaction().await?;
    execute(&transaction, RELEASE_ENDED, &[&instance]).await?;
    let rows = query(&transaction, ORPHANS, &[&instance, &sql_int(limit)]).await?;
    transaction.commit().await?;
    Ok(rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?)
}

async fn shared_secret(client: &Client) -> Outcome<[u8; 32]> {
    let mut made = [0u8; 32];
    getrandom::fill(&mut made).map_err(|error| {
        Failure::Store(StoreError::unavailable(
            format!(
                "could not make the cluster's secret: the operating system gave no random bytes: {error}"
            ),
            error,
        ))
    })?;
    // The first instance's secret stays; every later one reads it back.
    let keep_first = "INSERT INTO cluster_secret (only_row, secret) VALUES (true, $1) ON CONFLICT DO NOTHING";
    execute(client, keep_first, &[&made.as_slice()]).await?;
    let rows = query(client, "SELECT secret FROM cluster_secret", &[]).await?;
    let stored: Vec<u8> = match rows.first() {
        Some(row) => row.try_get(0)?,
        None => Vec::new(),
    };
    <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| {
        Failure::Store(StoreError::Unavailable {
            message: format!(
                "the cluster's shared secret in the table cluster_secret is {} bytes long, not 32",
                stored.len()
            ),
            source: None,
        })
    })
}

async fn create_login(client: &mut Client, login: &LoginRecord) -> Outcome<()> {
    let token_name = text(&login.token_name);
    let transaction = client.transaction().await?;
    execute(&transaction, "SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOGIN_LOCK, &token_name])
        .await?;
    // Sign-ins are rare and the table small (at most 100 sessions a token), so each one sweeps out the expired.
    execute(&transaction, "DELETE FROM logins WHERE expires_at <= now()", &[]).await?;
    let insert = "INSERT INTO logins (id_hash, token_name, csrf, expires_at, created_at) \
                  VALUES ($1, $2, $3, $4, clock_timestamp()) \
                  ON CONFLICT (id_hash) DO UPDATE SET token_name = excluded.token_name, csrf = excluded.csrf, \
                      expires_at = excluded.expires_at, created_at = excluded.created_at";
    execute(
        &transaction,
        insert,
        &[&text(&login.id_hash), &token_name, &text(&login.csrf), &login.expires_at],
    )
    .await?;
    let trim = "DELETE FROM logins WHERE id_hash IN (SELECT id_hash FROM logins WHERE token_name = $1 \
                                                     ORDER BY created_at DESC, id_hash DESC OFFSET $2)";
    execute(&transaction, trim, &[&token_name, &LOGINS_PER_TOKEN]).await?;
    transaction.commit().await?;
    Ok(())
}

async fn get_login(client: &Client, id_hash: &str) -> Outcome<Option<LoginRecord>> {
    let rows = query(
        client,
        "SELECT id_hash, token_name, csrf, expires_at FROM logins WHERE id_hash = $1 AND expires_at > now()",
        &[&text(id_hash)],
    )
    .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let columns = Columns(row);
    Ok(Some(LoginRecord {
        id_hash: columns.get(0)?,
        token_name: columns.get(1)?,
        csrf: columns.get(2)?,
        expires_at: columns.get(3)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PostgresOptions, testing};

    /// 100,000 executions of five functions (two with a limit), of which 550 are unfinished: 500 queued, 50 running.
    const MANY_EXECUTIONS: &str = "
        INSERT INTO functions (id, name, description, backend, input_schema, config, max_concurrency, tags, metadata,
                               version, created_at, updated_at)
        SELECT ('00000000-0000-7000-8000-00000000000' || n)::uuid, 'f' || n, '', 'demo', '{}', '{}',
               CASE WHEN n % 2 = 0 THEN 2 END, '[]', '{}', 1, now(), now()
        FROM generate_series(1, 5) AS n;
        INSERT INTO executions (id, function, function_id, function_version, backend, input, status, attempt,
                                created_at, lease_owner, lease_expires_at)
        SELECT (lpad(to_hex(n), 8, '0') || '-0000-7000-8000-000000000000')::uuid, 'f1',
               ('00000000-0000-7000-8000-00000000000' || (1 + n % 5))::uuid, 1, 'demo', '{}',
               CASE WHEN n > 99500 THEN 'queued' WHEN n > 99450 THEN 'running' ELSE 'succeeded' END, 1, now(),
               CASE WHEN n > 99450 AND n <= 99600 THEN 'a' END,
               CASE WHEN n > 99450 AND n <= 99600 THEN now() + interval '1 minute' END
        FROM generate_series(1, 100000) AS n;
        ANALYZE executions;
        ANALYZE functions;";

    #[tokio::test]
    async fn claims_and_leases_read_the_unfinished_executions_only() {
        let Some(url) = testing::database("cluster_plans").await else { return };
        let store =
            PostgresStore::connect(PostgresOptions::new(&url)).await.expect("a store on the test database");
        let client = store.client().await.expect("a connection");
        client.batch_execute(MANY_EXECUTIONS).await.expect("100,000 executions");
        let some_ids = vec![Uuid::nil()];
        let instance = Some("a");
        let plans: [(&str, &str, &[&(dyn ToSql + Sync)]); 6] = [
            ("room", ROOM, &[]),
            ("candidates", CANDIDATES, &[&Uuid::nil(), &some_ids, &8_i64]),
            ("lease", LEASE, &[&"a", &30.0_f64, &some_ids]),
            ("renew", RENEW, &[&"a", &30.0_f64, &Vec::<uuid::Uuid>::new()]),
            ("release", RELEASE_ENDED, &[&instance]),
            ("orphans", ORPHANS, &[&instance, &100_i64]),
        ];
        for (name, statement, params) in plans {
            let rows = client.query(&format!("EXPLAIN {statement}"), params).await.expect("a plan");
            let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan on executions"), "{name} reads every execution:\n{plan}");
            assert!(plan.contains("Index"), "{name} uses no index:\n{plan}");
        }
    }
}
