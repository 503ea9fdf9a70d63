//! What the tests of several instances on one PostgreSQL share: the real binary started as instances of one cluster
//! (`instance.rs`), a reader of the events stream that keeps every message (`sse.rs`), and a PostgreSQL server of
//! the test's own that it may stop and start again (`server.rs`).

#![allow(dead_code)] // Each test file uses part of it.

pub mod instance;
pub mod server;
pub mod sse;

/// Whether a missing PostgreSQL fails the test instead of skipping it: under `CI`, or with
/// `DASHBOARD_REQUIRE_POSTGRES=1` (as `dashboard_store_postgres::testing` decides).
pub fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|ci| !ci.is_empty())
        || std::env::var("DASHBOARD_REQUIRE_POSTGRES").is_ok_and(|value| value == "1")
}
