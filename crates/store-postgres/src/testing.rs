//! For tests: a fresh, empty database on the test server named by `DASHBOARD_TEST_POSTGRES` (a URL whose role may
//! `CREATE DATABASE`). Without it the PostgreSQL tests skip, saying why — unless `CI` is set or
//! `DASHBOARD_REQUIRE_POSTGRES=1`, where they fail instead.
//!
//! Test databases are named `<prefix>_<unix seconds at creation>_<random>`, and nothing drops a database when its
//! test ends (a store is dropped synchronously, after its runtime can no longer reach the server). Instead each call
//! sweeps the databases of its own prefix that earlier tests left: those older than a minute that nobody is connected
//! to (a plain `DROP DATABASE` refuses one in use, so a test still running keeps its own — its store holds
//! connections from its first minute on), and those older than an hour whatever holds them (a test process that hung
//! or was killed). The name carries its creation time, so the sweep needs no table of its own, and a prefix is only
//! ever swept by tests of the same prefix: other databases on the server are never touched.

use std::io::Write;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls};

/// The environment variable that names the test server.
pub const SERVER_VARIABLE: &str = "DASHBOARD_TEST_POSTGRES";

/// A database of a finished test older than this is dropped if nobody is connected to it.
const SWEEP_UNUSED_AFTER: Duration = Duration::from_secs(60);

/// A test database older than this is dropped even if something is still connected to it.
const SWEEP_ANY_AFTER: Duration = Duration::from_secs(60 * 60);

/// How long reaching the test server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest prefix kept, so that a name stays within PostgreSQL's 63 bytes.
const MAX_PREFIX: usize = 40;

/// The URL of a new empty database whose name starts with `prefix`, or `None` (having printed why, once per process)
/// when there is no test server and none is required.
///
/// # Panics
/// When a server is required but not given, or given but not reachable, or the database cannot be created.
pub async fn database(prefix: &str) -> Option<String> {
    let server = std::env::var(SERVER_VARIABLE).ok().filter(|url| !url.trim().is_empty());
    let Some(server) = server else {
        if is_required() {
            panic!(
                "{SERVER_VARIABLE} is not set, and a PostgreSQL server is required (CI is set, or \
                 DASHBOARD_REQUIRE_POSTGRES=1): set it to a server's URL whose role may CREATE DATABASE, e.g. \
                 postgres://postgres@127.0.0.1:55432/postgres (scripts/postgres start starts one)"
            );
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Straight to the process's stderr: the test harness captures `eprintln!` and shows it only for a
            // failed test, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PostgreSQL tests: {SERVER_VARIABLE} is not set (set it to a server's URL, e.g. \
                 postgres://postgres@127.0.0.1:55432/postgres; scripts/postgres start starts one)"
            );
        });
        return None;
    };
    let shown = crate::redacted_url(&server);
    let client = connect(&server).await.unwrap_or_else(|error| {
        panic!("{SERVER_VARIABLE}={shown}: could not reach the test server: {error}")
    });
    let prefix = clean_prefix(prefix);
    sweep(&client, &prefix).await;
    let name = format!("{prefix}_{}_{}", unix_seconds(SystemTime::now()), random_suffix());
    // template0: nobody may connect to it, so concurrent creations never find it "being accessed by other users".
    client.batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0")).await.unwrap_or_else(
        |error| panic!("{SERVER_VARIABLE}={shown}: could not create the database {name}: {error:?}"),
    );
    Some(with_database(&server, &name))
}

/// Whether the PostgreSQL tests must run: on CI, or when asked.
fn is_required() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty())
        || std::env::var("DASHBOARD_REQUIRE_POSTGRES").is_ok_and(|value| value == "1")
}

/// A store on the test database at `url` (from [`database`]), with the default options.
///
/// # Panics
/// When it cannot connect.
pub async fn store(url: &str) -> crate::PostgresStore {
    crate::PostgresStore::connect(crate::PostgresOptions::new(url))
        .await
        .expect("a store on the test database")
}

/// A plain connection to the test database at `url`, beside the store's: another instance's session, or a look at
/// what no store method shows (leases, locks, backends to kill).
///
/// # Panics
/// When it cannot connect.
pub async fn plain_connection(url: &str) -> Client {
    match connect(url).await {
        Ok(client) => client,
        Err(error) => panic!("a plain connection to the test database: {error}"),
    }
}

async fn connect(url: &str) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| format!("{error:?}"))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls));
    let (client, connection) = connecting
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|error| format!("{error:?}"))?;
    tokio::spawn(async move {
        // The connection ends with the client; an error then is of no interest to the test.
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops the databases that earlier tests of `prefix` left (see the module docs); failures are ignored (a database
/// in use, or dropped meanwhile by another test).
async fn sweep(client: &Client, prefix: &str) {
    let Ok(rows) = client.query("SELECT datname FROM pg_database", &[]).await else { return };
    let now = unix_seconds(SystemTime::now());
    for row in rows {
        let Ok(name) = row.try_get::<_, String>(0) else { continue };
        let Some(created) = created_at(&name, prefix) else { continue };
        let age = now.saturating_sub(created);
        if age >= SWEEP_ANY_AFTER.as_secs() {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        } else if age >= SWEEP_UNUSED_AFTER.as_secs() {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await;
        }
    }
}

/// When the test database `name` of `prefix` was made (its Unix seconds), or `None` for any other database.
fn created_at(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('_')?;
    let (seconds, suffix) = rest.split_once('_')?;
    let is_suffix = !suffix.is_empty() && suffix.bytes().all(|byte| byte.is_ascii_hexdigit());
    if seconds.is_empty() || !seconds.bytes().all(|byte| byte.is_ascii_digit()) || !is_suffix {
        return None;
    }
    seconds.parse().ok()
}

/// `prefix` as a database name may begin: lowercase ASCII letters, digits and `_`, not too long.
fn clean_prefix(prefix: &str) -> String {
    let cleaned: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(MAX_PREFIX)
        .collect();
    if cleaned.is_empty() { "dashboard_test".to_owned() } else { cleaned }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Eight random hex digits (from a UUID v7's random part), which tell apart the databases of one second.
fn random_suffix() -> String {
    let random = uuid::Uuid::now_v7().as_u128() & 0xffff_ffff;
    format!("{random:08x}")
}

/// `url` naming the database `name` instead of its own: a URL's path is replaced (its query kept), a key=value
/// string gets a `dbname` at its end (which wins over an earlier one).
fn with_database(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return format!("{url} dbname={name}") };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split_once('/').map_or(before_query, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_is_named_in_the_server_url() {
        let check = |url: &str, expected: &str| assert_eq!(with_database(url, "t_1_ab"), expected, "{url}");
        check("postgres://postgres@127.0.0.1:55432/postgres", "postgres://postgres@127.0.0.1:55432/t_1_ab");
        check("postgres://u:p@h/db?sslmode=disable", "postgres://u:p@h/t_1_ab?sslmode=disable");
        check("postgresql://h:5432", "postgresql://h:5432/t_1_ab");
        check("postgres://h?connect_timeout=3", "postgres://h/t_1_ab?connect_timeout=3");
        check("host=h user=u", "host=h user=u dbname=t_1_ab");
    }

    #[test]
    fn only_databases_of_the_prefix_are_swept() {
        assert_eq!(created_at("conf_1700000000_0a1b2c3d", "conf"), Some(1_700_000_000));
        assert_eq!(created_at("conf_x_1700000000_0a1b2c3d", "conf"), None, "another prefix");
        assert_eq!(created_at("conformance_1700000000_0a1b2c3d", "conf"), None, "a longer prefix");
        assert_eq!(created_at("conf_1700000000", "conf"), None);
        assert_eq!(created_at("conf_17x_0a1b2c3d", "conf"), None);
        assert_eq!(created_at("postgres", "conf"), None);
        assert_eq!(clean_prefix("Store-Conformance"), "store_conformance");
    }
}
