//! `agent-dashboard migrate-store --from sqlite:PATH --to postgres://…`: moves a dashboard from its SQLite file to a
//! PostgreSQL database that several instances can share, by copying everything the file holds into the empty
//! database (`dashboard_store_postgres::import_sqlite` does the copy; this names what went wrong where).

use std::path::PathBuf;

use dashboard_store::StoreError;
use dashboard_store_postgres::{ImportReport, PostgresOptions, PostgresStore, import_sqlite, redacted_url};

use crate::config::MigrateStore;

/// Why the copy did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// There is no file to copy.
    #[error("no SQLite file at {}", .0.display())]
    NoSource(PathBuf),
    /// The database could not be reached or prepared (its schema made or migrated).
    #[error("PostgreSQL at {url}: {source}")]
    Connect {
        /// The URL, its password hidden.
        url: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The copy failed: the database is not empty, the file cannot be read, or either store failed on the way.
    #[error("copying {} into {url}: {source}", from.display())]
    Copy {
        /// The SQLite file.
        from: PathBuf,
        /// The URL, its password hidden.
        url: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// Copies the SQLite file `migrate.from` into the PostgreSQL database `migrate.to` (creating its schema) and says
/// what was copied. The server that uses the file must be stopped: the copy is of the file as it is now.
pub async fn migrate_store(migrate: &MigrateStore) -> Result<ImportReport, MigrateError> {
    // Opening a path that names no file would make an empty database there, and copy nothing.
    if !migrate.from.is_file() {
        return Err(MigrateError::NoSource(migrate.from.clone()));
    }
    let url = redacted_url(&migrate.to);
    let options =
        PostgresOptions { pool_size: migrate.pg_pool_size, ..PostgresOptions::new(migrate.to.as_str()) };
    let store = PostgresStore::connect(options)
        .await
        .map_err(|source| MigrateError::Connect { url: url.clone(), source })?;
    log::info!("migrate-store: copying {} into {url}", migrate.from.display());
    import_sqlite(&migrate.from, &store).await.map_err(|source| MigrateError::Copy {
        from: migrate.from.clone(),
        url,
        source,
    })
}
