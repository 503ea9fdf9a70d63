//! Runs the store conformance suite against `PostgresStore`, each case on a fresh database of the test server
//! (`DASHBOARD_TEST_POSTGRES`; see `dashboard_store_postgres::testing`). Without a server each case skips at once,
//! having said why once — unless `CI` is set or `DASHBOARD_REQUIRE_POSTGRES=1`, where it fails.

use dashboard_store_postgres::{PostgresOptions, PostgresStore, testing};

/// A store on a new empty database; `None` when there is no test server (and none is required).
async fn fresh_store() -> Option<PostgresStore> {
    let url = testing::database("store_conformance").await?;
    // A small pool: the cases are many and run side by side on one server.
    let options = PostgresOptions { pool_size: 4, ..PostgresOptions::new(url) };
    Some(PostgresStore::connect(options).await.expect("a store on a fresh database"))
}

dashboard_store::conformance_tests!(match fresh_store().await {
    Some(store) => store,
    // Leaves the case's async block: the case is skipped.
    None => return,
});
