//! `agent-dashboard`: reads the settings (`ServerConfig::load`: environment, flags, config file), starts the server,
//! and waits for Ctrl-C or SIGTERM.

use std::process::ExitCode;

use dashboard_server::{Invocation, ServerConfig, start};

/// mimalloc rather than the system's malloc: the store's one writer thread is the bottleneck under load, and it spent
/// a tenth of its time in glibc's malloc and free (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ServerConfig::load(|name| std::env::var(name).ok(), std::env::args_os().skip(1)) {
        Ok(Invocation::Serve(config)) => *config,
        Ok(Invocation::Print(text)) => {
            #[allow(clippy::print_stdout)] // Help and version go to standard output, as every CLI does.
            {
                println!("{text}");
            }
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("agent-dashboard: {error}");
            return ExitCode::FAILURE;
        }
    };
    let default_level = if config.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level)).init();
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
