//! The Agent Dashboard load benchmark: starts the real server in this process on 127.0.0.1 with a fresh SQLite file
//! (durable settings, `synchronous = FULL`) — or, with `--store postgres://…`, one or more instances (`--instances
//! N`) on a fresh database of that PostgreSQL server — measures it with N concurrent keep-alive clients (spread over
//! the instances), measures a minimal actix-web echo handler the same way as the ceiling, and prints a markdown table.
//!
//! Run with: `cargo run --release -p dashboard-bench` (options: `--help`).

#![allow(clippy::print_stdout, reason = "the report on stdout is what a benchmark is for")]

mod approvals;
mod automation;
mod echo;
mod load;
mod phases;
mod postgres;
mod sse;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use dashboard_server::{InstanceId, ServerConfig, StoreSpec};
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
    /// A PostgreSQL server (`--store postgres://…`): the bench makes a fresh database on it, runs there, and drops
    /// it at the end (the phases get the fresh database's URL here).
    pub postgres: Option<String>,
    /// Instances of the dashboard sharing the PostgreSQL database (`--instances N`, default 1).
    pub instances: usize,
}

impl Options {
    /// How the report names the store under test.
    pub fn store_label(&self) -> String {
        if self.postgres.is_some() {
            let instances = if self.instances == 1 {
                "1 instance".to_owned()
            } else {
                format!("{} instances", self.instances)
            };
            return format!("PostgreSQL, {instances}");
        }
        match (self.memory_store, self.sync_normal) {
            (true, _) => "in-memory store, not durable",
            (false, true) => "SQLite with synchronous = NORMAL, not durable against a power loss",
            (false, false) => "durable SQLite",
        }
        .to_owned()
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
            postgres: None,
            instances: 1,
        }
    }
}

const USAGE: &str = "dashboard-bench [--clients N] [--seconds S] [--list-sizes 10000,1000000] [--seed-budget S] \
                     [--subscribers N] [--sse-triggers N] [--store sqlite|memory|postgres://…] [--sync full|normal] \
                     [--instances N]";

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
            "--store" if dashboard_store_postgres::is_postgres_url(&value) => options.postgres = Some(value),
            "--store" => {
                options.memory_store = match value.as_str() {
                    "sqlite" => false,
                    "memory" => true,
                    _ => panic!("--store: {value:?} is neither sqlite, memory nor a postgres:// URL"),
                }
            }
            "--instances" => options.instances = (number(&value) as usize).max(1),
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
    assert!(
        options.instances == 1 || options.postgres.is_some(),
        "--instances needs --store postgres://…: only instances on PostgreSQL share their work"
    );
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
    let fresh = match &options.postgres {
        Some(server) => Some(postgres::FreshDatabase::create(server).await),
        None => None,
    };
    let config = |index: usize| ServerConfig {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        store: match (&fresh, options.memory_store) {
            (Some(fresh), _) => StoreSpec::Postgres(fresh.url.clone()),
            (None, true) => StoreSpec::Memory,
            (None, false) => StoreSpec::Sqlite(database.clone()),
        },
        instance_id: InstanceId::Named(format!("bench-{}", index + 1)),
        seed_example: false,
        retention_days: 0,
        max_sse_clients: options.subscribers + 64,
        sqlite_sync: if options.sync_normal { Synchronous::Normal } else { Synchronous::Full },
        ..ServerConfig::default()
    };
    let mut servers = Vec::new();
    for index in 0..options.instances {
        servers.push(dashboard_server::start(config(index)).await.expect("the dashboard starts"));
    }
    let sync = config(0).sqlite_sync;
    for server in &servers {
        match (&fresh, options.memory_store) {
            (Some(fresh), _) => eprintln!(
                "dashboard {} on {} (PostgreSQL {})",
                server.dashboard.instance_id(),
                server.url(),
                fresh.name
            ),
            (None, true) => eprintln!("dashboard on {} (in-memory store)", server.url()),
            (None, false) => eprintln!(
                "dashboard on {} (SQLite {}, synchronous = {sync})",
                server.url(),
                database.display()
            ),
        }
    }
    // The phases seed the database in use, not the server's default one.
    let mut measured = options.clone();
    measured.postgres = fresh.as_ref().map(|fresh| fresh.url.clone());
    let report = phases::all(&measured, &servers).await;
    for server in servers {
        server.stop().await;
    }
    if let Some(fresh) = fresh {
        fresh.drop_database().await;
    }
    report
}
