//! The schema: the append-only migrations in `migrations/`, applied at connect under an advisory lock.
//!
//! The table `dashboard_schema` holds one row, the number of migrations the database has run. Migrating is one
//! transaction that first takes a transaction-level advisory lock, so instances that start together migrate once —
//! the others wait for the lock, then find the schema current — and a migration that fails leaves nothing behind
//! (PostgreSQL's DDL is transactional), lock included.

use std::time::Duration;

use dashboard_store::StoreError;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::codec::{OpResult, unavailable};
use crate::session::{IDLE_IN_TRANSACTION_TIMEOUT, shown};

/// Every migration, in order; the table `dashboard_schema` holds how many of them the database has. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_schema.sql"),
    include_str!("../migrations/0002_schedules_and_notifications.sql"),
];

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The key of the advisory lock held while migrating ("dashmigr" in ASCII). Other advisory locks of the dashboard
/// must use other keys.
const MIGRATION_LOCK: i64 = 0x6461_7368_6d69_6772;

/// Brings the schema of the database `client` is connected to up to [`SCHEMA_VERSION`], or refuses a database whose
/// schema is newer than this build knows.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let failed = |error| unavailable(error, "could not migrate the database schema");
    let transaction = client.transaction().await.map_err(failed)?;
    // A migration may rewrite a large table, and an instance starting meanwhile waits for it under the lock: neither
    // is cut short by the session's timeouts (`session.rs`). A migrating session that froze is still ended by the
    // server when idle in its transaction.
    transaction
        .batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await
        .map_err(failed)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS dashboard_schema (version bigint NOT NULL)")
        .await
        .map_err(failed)?;
    let row = transaction.query_opt("SELECT version FROM dashboard_schema", &[]).await.map_err(failed)?;
    let found: i64 = match &row {
        Some(row) => row.try_get(0).map_err(failed)?,
        None => 0,
    };
    let current = i64::from(SCHEMA_VERSION);
    if found > current {
        return Err(StoreError::Unavailable {
            message: format!(
                "the database has schema version {found}, written by a newer Agent Dashboard; this one knows versions \
                 up to {SCHEMA_VERSION}: upgrade this instance"
            ),
            source: None,
        });
    }
    if found == current {
        return Ok(());
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        transaction.batch_execute(migration).await.map_err(|error| {
            unavailable(error, &format!("could not apply migration {} of the database schema", index + 1))
        })?;
    }
    let written = if row.is_some() {
        transaction.execute("UPDATE dashboard_schema SET version = $1", &[&current]).await
    } else {
        transaction.execute("INSERT INTO dashboard_schema (version) VALUES ($1)", &[&current]).await
    };
    written.map_err(failed)?;
    transaction.commit().await.map_err(failed)?;
    log::info!("database schema migrated from version {found} to {SCHEMA_VERSION}");
    Ok(())
}

/// How long the probe waits for the event counter's row: far longer than any write holds it (until its commit, a
/// few milliseconds), far shorter than a health check waits.
const PROBE_LOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// The health check's probe, in a transaction that is rolled back: the schema version written back unchanged — it goes
/// through the server's checks of a write, so a standby or a read-only database refuses it — and the `event_counter`
/// row locked as every write that records an event locks it, waiting at most [`PROBE_LOCK_TIMEOUT`]. A counter that
/// another session holds (one that froze in the middle of a write) lets no write through, and fails the probe too.
pub(crate) async fn probe(client: &mut Client) -> OpResult<()> {
    let transaction = client.transaction().await?;
    transaction.execute("UPDATE dashboard_schema SET version = version", &[]).await?;
    let wait = format!("SET LOCAL lock_timeout = {}", PROBE_LOCK_TIMEOUT.as_millis());
    transaction.batch_execute(&wait).await?;
    let counter = transaction.execute("SELECT last_id FROM event_counter FOR UPDATE", &[]).await;
    if let Err(error) = counter {
        if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return Err(StoreError::Unavailable {
                message: format!(
                    "the event counter (table event_counter) stayed locked by another database session for over {}: \
                     no write that records an event gets through until that session lets go (the server ends an \
                     instance's session idle in a transaction within {})",
                    shown(PROBE_LOCK_TIMEOUT),
                    shown(IDLE_IN_TRANSACTION_TIMEOUT)
                ),
                source: None,
            }
            .into());
        }
        return Err(error.into());
    }
    transaction.rollback().await?;
    Ok(())
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrating_again_changes_nothing_and_the_probe_fails_where_writes_would() {
        let Some(url) = crate::testing::database("store_schema").await else { return };
        let (mut client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("a connection");
        tokio::spawn(connection);
        migrate(&mut client).await.expect("an empty database is migrated");
        migrate(&mut client).await.expect("a current one is left as it is");
        let version: i64 =
            client.query_one("SELECT version FROM dashboard_schema", &[]).await.expect("a version").get(0);
        assert_eq!(version, i64::from(SCHEMA_VERSION));
        probe(&mut client).await.map_err(|error| error.0).expect("a writable database passes");

        client.batch_execute("SET default_transaction_read_only = on").await.expect("a read-only session");
        match probe(&mut client).await.map_err(|error| error.0) {
            Err(StoreError::Unavailable { message, .. }) => {
                assert!(message.contains("read-only"), "{message}")
            }
            other => panic!("a database that refuses writes must fail the probe, not {other:?}"),
        }
    }
}
