//! `PostgresStore`: the dashboard's store on a PostgreSQL server, which any number of dashboard instances may share
//! (DESIGN.md §13). Selected by `DASHBOARD_STORE=postgres://…`; SQLite stays the default.
//!
//! It implements [`DashboardStore`] — the conformance suite runs on it unchanged (`tests/conformance.rs`) — and
//! [`Cluster`](dashboard_store::Cluster): claims with `FOR UPDATE SKIP LOCKED` under leases, heartbeats, the
//! instances, login sessions, and signals between instances by `LISTEN/NOTIFY` (`listener.rs`, `signals.rs`). The
//! schema is made and migrated at connect (`schema.rs`, the append-only files in `migrations/`) under an advisory
//! lock, so instances that start together migrate once.
//!
//! Why tokio-postgres with deadpool-postgres, not sqlx: the queries are few and hand-written, so sqlx's macros and
//! its checking against a live database at build time buy nothing here, while its tree (a runtime layer, a
//! TLS layer, the macros) is several times the size; tokio-postgres is the maintained async driver under both, and
//! deadpool-postgres a small pool made for it. No TLS: the dashboard reaches its database on a trusted network (or
//! through a local proxy), as docs/operations.md says.
//!
//! What it must never do: let a PostgreSQL type out of this crate — errors become [`StoreError`]s where they enter
//! (`codec.rs`).

mod cluster;
mod codec;
mod import;
mod listener;
mod schema;
mod signals;

#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_store::{SignalSink, StoreError};

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

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let password = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Whether `store` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// The dashboard's store on PostgreSQL. Cheap to share (`Arc`); every method borrows a pooled connection for one
/// transaction.
pub struct PostgresStore {
    pub(crate) pool: deadpool_postgres::Pool,
    pub(crate) options: PostgresOptions,
    /// Who hears the signals the listener receives.
    pub(crate) sinks: Arc<Mutex<Vec<SignalSink>>>,
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
        let _ = &options;
        Err(StoreError::Unavailable { message: "not built yet".into(), source: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        assert_eq!(redacted_url("postgres://dash:s3cret@db:5432/dash"), "postgres://dash:***@db:5432/dash");
        assert_eq!(redacted_url("postgres://dash@db/dash"), "postgres://dash@db/dash");
        assert_eq!(redacted_url("postgresql://db/dash"), "postgresql://db/dash");
        assert!(!format!("{:?}", PostgresOptions::new("postgres://u:pw@h/d")).contains("pw"));
    }
}
