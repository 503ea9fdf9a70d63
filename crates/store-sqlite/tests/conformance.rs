//! Runs the store conformance suite against `SqliteStore`: each case on a fresh temporary file, deleted afterwards.

use dashboard_store::conformance::{CASES, run_all};
use dashboard_store_sqlite::SqliteStore;

dashboard_store::conformance_tests!(SqliteStore::open_temporary().expect("a temporary SQLite store"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_every_case() {
    assert!(CASES.len() >= 30, "the suite lost cases: {}", CASES.len());
    run_all(|| async { SqliteStore::open_temporary().expect("a temporary SQLite store") }).await;
}
