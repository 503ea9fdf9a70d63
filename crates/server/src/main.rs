//! `agent-dashboard`: reads the settings (`ServerConfig::load`: environment, flags, config file), starts the server,
//! and waits for Ctrl-C or SIGTERM — or, as `agent-dashboard migrate-store`, copies a SQLite file into PostgreSQL, or,
//! with a client subcommand (`ls`, `trigger`, `logs -f`…), talks to a running dashboard (`cli`).

mod cli;

use std::io::Write;
use std::process::ExitCode;

use dashboard_server::{Invocation, MigrateStore, ServerConfig, SettingsError, migrate_store, start};

/// mimalloc rather than the system's malloc: the store's one writer thread is the bottleneck under load, and it spent
/// a tenth of its time in glibc's malloc and free (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit status of a command line that cannot be understood, as is usual for command-line tools.
const USAGE_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ServerConfig::load(|name| std::env::var(name).ok(), std::env::args_os().skip(1)) {
        Ok(Invocation::Serve(config)) => *config,
        Ok(Invocation::MigrateStore(migrate)) => return run_migrate_store(&migrate).await,
        Ok(Invocation::Client(args)) => return cli::run(args, |name| std::env::var(name).ok()).await,
        Ok(Invocation::Print(text)) => {
            #[allow(clippy::print_stdout)] // Help and version go to standard output, as every CLI does.
            {
                println!("{text}");
            }
            return ExitCode::SUCCESS;
        }
        Err(error @ SettingsError::Usage(_)) => {
            eprintln!("agent-dashboard: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
        Err(error) => {
            eprintln!("agent-dashboard: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logger(config.debug, Some(config.instance_id.as_str()));
    let server = match start(config).await {
        Ok(server) => server,
        Err(error) => {
            log::error!("agent-dashboard could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "Agent Dashboard is listening on {} (open http://localhost:{})",
        server.address,
        server.address.port()
    );
    match server.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("agent-dashboard stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `agent-dashboard migrate-store`: the copy's report on standard output and 0, or the error on standard error and 1.
async fn run_migrate_store(migrate: &MigrateStore) -> ExitCode {
    init_logger(false, None);
    match migrate_store(migrate).await {
        Ok(report) => {
            #[allow(clippy::print_stdout)] // The report is the command's output.
            {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("agent-dashboard migrate-store: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The log on standard error, filtered by `RUST_LOG` (default `info`, `debug` with `DASHBOARD_DEBUG`; PostgreSQL's
/// notices, such as "relation … already exists, skipping" at every start, only from `warn` on); each line names the
/// instance, so that the logs of several instances can be told apart once gathered:
/// `[2026-01-02T03:04:05Z INFO  web-1 agent_dashboard::http] GET /healthz HTTP/1.1 200 0ms`.
fn init_logger(debug: bool, instance: Option<&str>) {
    let default_filter = if debug { "debug,tokio_postgres=warn" } else { "info,tokio_postgres=warn" };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    if let Some(instance) = instance {
        let instance = instance.to_owned();
        builder.format(move |buf, record| {
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "[{} {style}{:<5}{style:#} {instance} {}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    builder.init();
}
