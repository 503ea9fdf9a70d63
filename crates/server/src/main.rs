//! `agent-dashboard`: reads the settings, starts the server, and waits for Ctrl-C or SIGTERM.

use std::process::ExitCode;

use dashboard_server::{ServerConfig, start};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ServerConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("agent-dashboard: {error}");
            return ExitCode::FAILURE;
        }
    };
    let default_level = if config.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level)).init();
    if !config.is_loopback() {
        log::warn!(
            "listening on {} with no authentication: anyone who can reach this address can trigger executions",
            config.host
        );
    }
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
