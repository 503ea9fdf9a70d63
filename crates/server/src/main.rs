//! `agent-dashboard`: reads the settings (environment, then flags), starts the server, and waits for Ctrl-C or
//! SIGTERM.

use std::process::ExitCode;

use dashboard_server::{ServerConfig, start};

/// mimalloc rather than the system's malloc: the store's one writer thread is the bottleneck under load, and it spent
/// a tenth of its time in glibc's malloc and free (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
Usage: agent-dashboard [--config FILE] [--host ADDRESS] [--port PORT] [--store memory|sqlite:PATH]

Agent Dashboard: a control plane for AI agents. Flags override the DASHBOARD_* environment variables;
see README.md for all of them.

  --config FILE    backends and functions from a TOML file (DASHBOARD_CONFIG)
  --host ADDRESS   the address to listen on (DASHBOARD_HOST, default 0.0.0.0)
  --port PORT      the port (DASHBOARD_PORT, default 8000)
  --store STORE    memory, or sqlite:PATH (DASHBOARD_STORE, default sqlite:data/agent-dashboard.db)
  -h, --help       this text
  -V, --version    the version";

/// What the command line asks for.
enum Command {
    Run(Box<ServerConfig>),
    Print(String),
}

/// The settings from the environment, with the flags on top (later wins).
fn parse_command_line() -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut config = ServerConfig::from_env().map_err(|error| error.to_string())?;
    let mut overrides = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    while let Some(argument) = parser.next().map_err(|error| error.to_string())? {
        let variable = match argument {
            Long("config") => "DASHBOARD_CONFIG",
            Long("host") => "DASHBOARD_HOST",
            Long("port") => "DASHBOARD_PORT",
            Long("store") => "DASHBOARD_STORE",
            Short('h') | Long("help") => return Ok(Command::Print(USAGE.to_owned())),
            Short('V') | Long("version") => {
                return Ok(Command::Print(format!("agent-dashboard {}", env!("CARGO_PKG_VERSION"))));
            }
            other => return Err(format!("{}\n\n{USAGE}", other.unexpected())),
        };
        let value =
            parser.value().map_err(|error| error.to_string())?.string().map_err(|error| error.to_string())?;
        overrides.push((variable, value));
    }
    if !overrides.is_empty() {
        // A flag is read exactly like its variable, so both are checked and named the same way.
        let flags = ServerConfig::from_lookup(|name| {
            overrides.iter().find(|(variable, _)| *variable == name).map(|(_, value)| value.clone())
        })
        .map_err(|error| error.to_string())?;
        for (variable, _) in &overrides {
            match *variable {
                "DASHBOARD_CONFIG" => config.config_file = flags.config_file.clone(),
                "DASHBOARD_HOST" => config.host = flags.host,
                "DASHBOARD_PORT" => config.port = flags.port,
                _ => config.store = flags.store.clone(),
            }
        }
    }
    Ok(Command::Run(Box::new(config)))
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_command_line() {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Print(text)) => {
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
