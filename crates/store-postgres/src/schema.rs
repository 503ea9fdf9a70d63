//! The schema: the append-only migrations in `migrations/`, applied at connect under an advisory lock.
//!
//! The table `dashboard_schema` holds one row, the number of migrations the database has run. Migrating is one
//! transaction that first takes a transaction-level advisory lock, so instances that start together migrate once —
//! the others wait for the lock, then find the schema current — and a migration that fails leaves nothing behind
//! (PostgreSQL's DDL is transactional), lock included.

use dashboard_store::StoreError;
use tokio_postgres::Client;

use crate::codec::{OpResult, unavailable};

/// Every migration, in order; the table `dashboard_schema` holds how many of them the database has. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_schema.sql")];

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

/// The health check's probe: the schema version written back unchanged in a transaction that is rolled back. It goes
/// through the server's checks of a write — a standby or a read-only database refuses it — and takes only the
/// `dashboard_schema` row's lock, which nothing else holds after start.
pub(crate) async fn probe(client: &mut Client) -> OpResult<()> {
    let transaction = client.transaction().await?;
    transaction.execute("UPDATE dashboard_schema SET version = version", &[]).await?;
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
