//! Runs the store conformance suite against `MemoryStore`: once as one test per case, and once through `run_all`.

use dashboard_store::MemoryStore;
use dashboard_store::conformance::{CASES, run_all};

dashboard_store::conformance_tests!(MemoryStore::default());

#[tokio::test]
async fn run_all_runs_every_case() {
    assert!(CASES.len() >= 30, "the suite lost cases: {}", CASES.len());
    run_all(|| async { MemoryStore::default() }).await;
}
