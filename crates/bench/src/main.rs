//! The Agent Dashboard load benchmark: starts the real server in this process on 127.0.0.1 with a fresh SQLite file
//! (durable settings, `synchronous = FULL`), measures it with N concurrent keep-alive clients, measures a minimal
//! actix-web echo handler the same way as the ceiling, and prints a markdown table.
//!
//! Run with: `cargo run --release -p dashboard-bench` (options: `--help`).

#![allow(clippy::print_stdout, reason = "the report on stdout is what a benchmark is for")]

mod approvals;
mod echo;
mod load;
mod phases;
mod sse;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use dashboard_server::{ServerConfig, StoreSpec};
use dashboard_store_sqlite::Synchronous;

/// The allocator of the `agent-dashboard` binary, so that the server measured here is the one that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The function every trigger names: on the demo backend, it finishes at once with `{"steps": 0}`.
pub const QUICK_FUNCTION: &str = "bench-quick";

/// What the command line asks for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent keep-alive clients of each HTTP phase.
    pub clients: usize,
    /// Measured seconds of each HTTP phase (after a short warm-up).
    pub seconds: f64,
    /// Store sizes at which the list latency is measured.
    pub list_sizes: Vec<u64>,
    /// Seeding past this many seconds is skipped (and said so).
    pub seed_budget: Duration,
    /// SSE subscribers (0 skips the phase).
    pub subscribers: usize,
    /// Triggers whose delivery each subscriber times.
    pub sse_triggers: usize,
    /// The in-memory store instead of SQLite (`--store memory`): not durable, so never the measured product; it
    /// shows what the rest of the server costs when storing costs nothing.
    pub memory_store: bool,
    /// `synchronous = NORMAL` instead of FULL (`--sync normal`): no flush per commit, so not durable against a power
    /// loss; like the in-memory store, a comparison only.
    pub sync_normal: bool,
}

impl Options {
    /// How the report names the store under test.
    pub fn store_label(&self) -> &'static str {
        match (self.memory_store, self.sync_normal) {
            (true, _) => "in-memory store, not durable",
            (false, true) => "SQLite with synchronous = NORMAL, not durable against a power loss",
            (false, false) => "durable SQLite",
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clients: 16,
            seconds: 5.0,
            list_sizes: vec![10_000, 1_000_000],
            seed_budget: Duration::from_secs(150),
            subscribers: 1000,
            sse_triggers: 20,
            memory_store: false,
            sync_normal: false,
        }
    }
}

const USAGE: &str = "dashboard-bench [--clients N] [--seconds S] [--list-sizes 10000,1000000] [--seed-budget S] \
                     [--subscribers N] [--sse-triggers N] [--store sqlite|memory] [--sync full|normal]";

fn parse_options() -> Options {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value; usage: {USAGE}"));
        let number = |value: &str| -> f64 {
            value.parse().unwrap_or_else(|_| panic!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--clients" => options.clients = number(&value).max(1.0) as usize,
            "--seconds" => options.seconds = number(&value).max(0.5),
            "--list-sizes" => {
                options.list_sizes =
                    value.split(',').filter(|s| !s.is_empty()).map(|s| number(s) as u64).collect()
            }
            "--seed-budget" => options.seed_budget = Duration::from_secs_f64(number(&value)),
            "--subscribers" => options.subscribers = number(&value) as usize,
            "--sse-triggers" => options.sse_triggers = (number(&value) as usize).max(1),
            "--store" => {
                options.memory_store = match value.as_str() {
                    "sqlite" => false,
                    "memory" => true,
                    _ => panic!("--store: {value:?} is neither sqlite nor memory"),
                }
            }
            "--sync" => {
                options.sync_normal = match value.as_str() {
                    "full" => false,
                    "normal" => true,
                    _ => panic!("--sync: {value:?} is neither full nor normal"),
                }
            }
            _ => panic!("unknown option {flag}; usage: {USAGE}"),
        }
    }
    options
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // reqwest is built without a TLS provider of its own; the ring one is installed once, before any client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    if args.get(1).map(String::as_str) == Some("sse-clients") {
        runtime.block_on(sse::child(&args[2..]));
        return;
    }
    let options = parse_options();
    let directory = std::env::temp_dir().join(format!("dashboard-bench-{}", std::process::id()));
    let report = runtime.block_on(run(&options, directory.join("bench.db")));
    if let Err(error) = std::fs::remove_dir_all(&directory) {
        eprintln!("could not remove {}: {error}", directory.display());
    }
    println!("{report}");
}

async fn run(options: &Options, database: PathBuf) -> String {
    let config = ServerConfig {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        store: if options.memory_store { StoreSpec::Memory } else { StoreSpec::Sqlite(database.clone()) },
        seed_example: false,
        retention_days: 0,
        max_sse_clients: options.subscribers + 64,
        sqlite_sync: if options.sync_normal { Synchronous::Normal } else { Synchronous::Full },
        ..ServerConfig::default()
    };
    let sync = config.sqlite_sync;
    let server = dashboard_server::start(config).await.expect("the dashboard starts");
    if options.memory_store {
        eprintln!("dashboard on {} (in-memory store)", server.url());
    } else {
        eprintln!("dashboard on {} (SQLite {}, synchronous = {sync})", server.url(), database.display());
    }
    let report = phases::all(options, &server).await;
    server.stop().await;
    report
}
