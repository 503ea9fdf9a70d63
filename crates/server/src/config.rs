//! The one place the server's settings are merged, in one order (DESIGN.md §6): the environment (`DASHBOARD_*`),
//! then the command-line flags (each read exactly like its variable), then the config file the two name (backends,
//! functions and `[[auth.tokens]]`), into one [`ServerConfig`] that the rest of the server reads.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use dashboard_backend_api::Scope;
use dashboard_engine::DashboardBuilder;
use dashboard_store_sqlite::Synchronous;

use crate::auth::{ENV_TOKEN_NAME, TokenSpec};
use crate::config_file::{self, ConfigFileError, FileConfig};

/// The binary's usage text.
pub const USAGE: &str = "\
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
#[derive(Debug)]
pub enum Invocation {
    /// Serve with these settings, merged and with the config file read.
    Serve(Box<ServerConfig>),
    /// Print this text (help, version) and stop.
    Print(String),
}

/// Settings that could not be read: a variable or flag, or the config file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable or flag is wrong, or the command line cannot be understood.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file is wrong.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
}

/// Where the data lives when `DASHBOARD_STORE` is not set: relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/agent-dashboard.db";
/// How many days finished executions are kept when `DASHBOARD_RETENTION_DAYS` is not set.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention that can be asked for (a century); beyond it, say 0 to keep everything.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// Where the dashboard keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// In memory: lost when the process stops.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// A setting that could not be understood; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: String,
    /// What is wrong with its value.
    pub message: String,
}

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on (`DASHBOARD_HOST`, default `0.0.0.0`).
    pub host: IpAddr,
    /// The port (`DASHBOARD_PORT`, default 8000; 0 picks a free one).
    pub port: u16,
    /// Verbose logs and templates reloaded from disk (`DASHBOARD_DEBUG=1`).
    pub debug: bool,
    /// The store (`DASHBOARD_STORE`: `memory` or `sqlite:PATH`; default `sqlite:data/agent-dashboard.db`).
    pub store: StoreSpec,
    /// How far a SQLite commit goes before it is answered (`DASHBOARD_SQLITE_SYNC`: `full`, the default, survives a
    /// power loss; `normal` survives a crash of the process only).
    pub sqlite_sync: Synchronous,
    /// Finished executions older than this many days are deleted with their logs and events
    /// (`DASHBOARD_RETENTION_DAYS`, default 30; 0 keeps everything).
    pub retention_days: u32,
    /// Templates and static files from this folder instead of the embedded copy (`DASHBOARD_WEB_DIR`).
    pub web_dir: Option<PathBuf>,
    /// How backends reach this server (`DASHBOARD_PUBLIC_URL`, default `http://127.0.0.1:{port}`).
    pub public_url: Option<String>,
    /// The largest request body accepted (`DASHBOARD_MAX_BODY_BYTES`, default 1 MiB).
    pub max_body_bytes: usize,
    /// How many SSE streams may be open at once; more are answered 503 (`DASHBOARD_MAX_SSE_CLIENTS`, default 1000).
    pub max_sse_clients: usize,
    /// Register the demo backend and an example function when the store has no function (the newcomer's start).
    pub seed_example: bool,
    /// The config file with backends and functions (`DASHBOARD_CONFIG` or `--config`); without one, the dashboard
    /// runs the demo backend.
    pub config_file: Option<PathBuf>,
    /// How many log lines one execution may keep (`DASHBOARD_MAX_LOG_LINES`; the engine's default, 100,000, when
    /// unset). Past it one `system` line says so and the rest of the execution's log is dropped; the run goes on.
    pub max_log_lines: Option<u64>,
    /// How many bytes of log text one execution may keep (`DASHBOARD_MAX_LOG_BYTES`; the engine's default, 64 MiB,
    /// when unset), counted like `max_log_lines`.
    pub max_log_bytes: Option<u64>,
    /// How many transcript items one execution may keep (`DASHBOARD_MAX_ITEMS`; the engine's default, 100,000, when
    /// unset). Past it one `system` line says so and later new items are dropped; the items kept still change.
    pub max_items: Option<u64>,
    /// How many bytes of transcript items one execution may keep, each item as it now stands
    /// (`DASHBOARD_MAX_ITEM_BYTES`; the engine's default, 64 MiB, when unset). Past it one `system` line says so and
    /// later new items are dropped; an item kept still changes unless the change would grow the total past it.
    pub max_item_bytes: Option<u64>,
    /// The largest output a run may store, in bytes of JSON (`DASHBOARD_MAX_OUTPUT_BYTES`; the engine's default,
    /// 1 MiB, when unset); a larger one fails the run with an error naming the limit.
    pub max_output_bytes: Option<usize>,
    /// The tokens that may use the dashboard: `DASHBOARD_AUTH_TOKEN` becomes an `admin` token named "admin", and,
    /// once the config file is read, its `[[auth.tokens]]` follow. No token at all leaves auth off.
    pub auth_tokens: Vec<TokenSpec>,
    /// What the config file declares, once read ([`ServerConfig::read_config_file`]); its tokens are then part of
    /// `auth_tokens` already.
    pub file: Option<FileConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 8000,
            debug: false,
            store: StoreSpec::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH)),
            sqlite_sync: Synchronous::default(),
            retention_days: DEFAULT_RETENTION_DAYS,
            web_dir: None,
            public_url: None,
            max_body_bytes: 1024 * 1024,
            max_sse_clients: 1000,
            seed_example: true,
            max_log_lines: None,
            max_log_bytes: None,
            max_items: None,
            max_item_bytes: None,
            max_output_bytes: None,
            config_file: None,
            auth_tokens: Vec::new(),
            file: None,
        }
    }
}

impl ServerConfig {
    /// The binary's settings: the environment from `lookup`, then the flags in `args` (without the program's name),
    /// then the config file they name — or the help or version text the flags ask for.
    pub fn load(
        lookup: impl Fn(&str) -> Option<String>,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<Invocation, SettingsError> {
        use lexopt::prelude::*;
        let flag_error = |message: String| ConfigError { variable: "command line".to_owned(), message };
        let mut overrides: Vec<(&str, String)> = Vec::new();
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(argument) = parser.next().map_err(|error| flag_error(error.to_string()))? {
            let variable = match argument {
                Long("config") => "DASHBOARD_CONFIG",
                Long("host") => "DASHBOARD_HOST",
                Long("port") => "DASHBOARD_PORT",
                Long("store") => "DASHBOARD_STORE",
                Short('h') | Long("help") => return Ok(Invocation::Print(USAGE.to_owned())),
                Short('V') | Long("version") => {
                    return Ok(Invocation::Print(format!("agent-dashboard {}", env!("CARGO_PKG_VERSION"))));
                }
                other => return Err(flag_error(format!("{}\n\n{USAGE}", other.unexpected())).into()),
            };
            let value = parser
                .value()
                .map_err(|error| flag_error(error.to_string()))?
                .string()
                .map_err(|error| flag_error(error.to_string()))?;
            overrides.push((variable, value));
        }
        // A flag is read exactly like its variable, and wins over it: the same checks, the same names in errors.
        let mut config = Self::from_lookup(|name| {
            let flag = overrides.iter().rev().find(|(variable, _)| *variable == name);
            flag.map(|(_, value)| value.clone()).or_else(|| lookup(name))
        })?;
        config.read_config_file()?;
        Ok(Invocation::Serve(Box::new(config)))
    }

    /// Reads the config file named by `config_file`, if it is not read yet: its backends and functions into `file`,
    /// its tokens after those of the environment in `auth_tokens`. A server started with a `config_file` but without
    /// `file` reads it here first, so an embedder may set either.
    pub fn read_config_file(&mut self) -> Result<(), ConfigFileError> {
        let Some(path) = &self.config_file else { return Ok(()) };
        if self.file.is_some() {
            return Ok(());
        }
        let mut file = config_file::load(path)?;
        self.auth_tokens.append(&mut file.tokens);
        self.file = Some(file);
        Ok(())
    }

    /// The settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let var =
            |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        if let Some(host) = var("DASHBOARD_HOST") {
            config.host = host
                .parse()
                .map_err(|_| invalid("DASHBOARD_HOST", format!("{host:?} is not an IP address")))?;
        }
        if let Some(port) = var("DASHBOARD_PORT") {
            config.port = port
                .parse()
                .map_err(|_| invalid("DASHBOARD_PORT", format!("{port:?} is not a port number")))?;
        }
        if let Some(debug) = var("DASHBOARD_DEBUG") {
            config.debug = matches!(debug.as_str(), "1" | "true" | "yes" | "on");
        }
        if let Some(store) = var("DASHBOARD_STORE") {
            config.store = parse_store(&store)?;
        }
        if let Some(sync) = var("DASHBOARD_SQLITE_SYNC") {
            config.sqlite_sync =
                sync.parse().map_err(|error| invalid("DASHBOARD_SQLITE_SYNC", format!("{error}")))?;
        }
        if let Some(days) = var("DASHBOARD_RETENTION_DAYS") {
            config.retention_days = days.parse().ok().filter(|days| *days <= MAX_RETENTION_DAYS).ok_or_else(|| {
                invalid(
                    "DASHBOARD_RETENTION_DAYS",
                    format!("{days:?} is not a number of days from 0 (keep everything) to {MAX_RETENTION_DAYS}"),
                )
            })?;
        }
        if let Some(token) = var("DASHBOARD_AUTH_TOKEN") {
            if token.len() < 16 {
                return Err(invalid(
                    "DASHBOARD_AUTH_TOKEN",
                    "is shorter than 16 characters; use a long random one (`openssl rand -hex 32`)".into(),
                ));
            }
            config.auth_tokens.push(TokenSpec::from_secret(ENV_TOKEN_NAME, &token, Scope::Admin));
        }
        config.web_dir = var("DASHBOARD_WEB_DIR").map(PathBuf::from);
        config.config_file = var("DASHBOARD_CONFIG").map(PathBuf::from);
        config.public_url = var("DASHBOARD_PUBLIC_URL").map(|url| url.trim_end_matches('/').to_owned());
        if let Some(bytes) = var("DASHBOARD_MAX_BODY_BYTES") {
            config.max_body_bytes = bytes.parse().ok().filter(|bytes| *bytes >= 1024).ok_or_else(|| {
                invalid("DASHBOARD_MAX_BODY_BYTES", format!("{bytes:?} is not a byte count of at least 1024"))
            })?;
        }
        if let Some(clients) = var("DASHBOARD_MAX_SSE_CLIENTS") {
            config.max_sse_clients =
                clients.parse().ok().filter(|clients| *clients >= 1).ok_or_else(|| {
                    invalid(
                        "DASHBOARD_MAX_SSE_CLIENTS",
                        format!("{clients:?} is not a number of streams of at least 1"),
                    )
                })?;
        }
        config.max_log_lines = count(&var, "DASHBOARD_MAX_LOG_LINES", 1, "lines")?;
        config.max_log_bytes = count(&var, "DASHBOARD_MAX_LOG_BYTES", 1024, "bytes")?;
        config.max_items = count(&var, "DASHBOARD_MAX_ITEMS", 1, "items")?;
        config.max_item_bytes = count(&var, "DASHBOARD_MAX_ITEM_BYTES", 1024, "bytes")?;
        config.max_output_bytes = count(&var, "DASHBOARD_MAX_OUTPUT_BYTES", 1024, "bytes")?
            .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(config)
    }

    /// The engine's settings that come from here — the public URL and the limits on what one execution may store —
    /// applied to `builder`.
    pub fn configure_engine(&self, builder: DashboardBuilder) -> DashboardBuilder {
        let mut builder = builder.public_url(self.public_url.clone());
        if let Some(lines) = self.max_log_lines {
            builder = builder.max_log_lines(lines);
        }
        if let Some(bytes) = self.max_log_bytes {
            builder = builder.max_log_bytes(bytes);
        }
        if let Some(items) = self.max_items {
            builder = builder.max_items(items);
        }
        if let Some(bytes) = self.max_item_bytes {
            builder = builder.max_item_bytes(bytes);
        }
        if let Some(bytes) = self.max_output_bytes {
            builder = builder.max_output_bytes(bytes);
        }
        if let Some(file) = &self.file {
            builder = builder.prices(file.prices.clone());
        }
        let budgets = self
            .auth_tokens
            .iter()
            .filter_map(|token| token.daily_cost_usd.map(|limit| (token.name.clone(), limit)))
            .collect();
        builder.token_budgets(budgets)
    }

    /// Whether the server listens on a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.host.is_loopback()
    }
}

fn parse_store(text: &str) -> Result<StoreSpec, ConfigError> {
    if text == "memory" {
        return Ok(StoreSpec::Memory);
    }
    match text.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(StoreSpec::Sqlite(PathBuf::from(path))),
        _ => Err(invalid("DASHBOARD_STORE", format!("{text:?}: expected `memory` or `sqlite:PATH`"))),
    }
}

/// A count read from `variable`, at least `minimum`; `None` when it is not set.
fn count(
    var: &impl Fn(&str) -> Option<String>,
    variable: &str,
    minimum: u64,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let Some(text) = var(variable) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(value) if value >= minimum => Ok(Some(value)),
        _ => Err(invalid(variable, format!("{text:?} is not a number of {unit} of at least {minimum}"))),
    }
}

fn invalid(variable: &str, message: String) -> ConfigError {
    ConfigError { variable: variable.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServerConfig::from_lookup(|name| map.get(name).cloned())
    }

    /// The binary's settings from `pairs` of variables and the command-line `flags`.
    fn load(pairs: &[(&str, &str)], flags: &[&str]) -> Result<Invocation, SettingsError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServerConfig::load(|name| map.get(name).cloned(), flags.iter().map(OsString::from))
    }

    fn served(invocation: Result<Invocation, SettingsError>) -> ServerConfig {
        match invocation {
            Ok(Invocation::Serve(config)) => *config,
            Ok(Invocation::Print(text)) => panic!("printed {text:?} instead of serving"),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn flags_win_over_variables_and_the_file_they_name_is_read_with_its_tokens() {
        let dir = std::env::temp_dir().join(format!("dashboard-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let (env_file, flag_file) = (dir.join("env.toml"), dir.join("flag.toml"));
        std::fs::write(&env_file, "this is not toml").expect("written");
        let hash = "a".repeat(64);
        let flag_text = format!(
            "[[backends]]\nname = \"a\"\nkind = \"demo\"\n\n[[auth.tokens]]\nname = \"ci\"\ntoken_sha256 = \"{hash}\"\n\
             scopes = [\"trigger\"]\n"
        );
        std::fs::write(&flag_file, flag_text).expect("written");
        let env_path = env_file.to_str().expect("a UTF-8 path");
        let flag_path = flag_file.to_str().expect("a UTF-8 path");
        let variables = [
            ("DASHBOARD_PORT", "9000"),
            ("DASHBOARD_CONFIG", env_path),
            ("DASHBOARD_AUTH_TOKEN", "an-admin-token-0123456789"),
        ];
        let config = served(load(&variables, &["--port", "9100", "--config", flag_path]));
        assert_eq!(config.port, 9100, "the flag wins");
        assert_eq!(
            config.config_file.as_deref(),
            Some(flag_file.as_path()),
            "the flag's file is the one read"
        );
        let names: Vec<&str> = config.auth_tokens.iter().map(|token| token.name.as_str()).collect();
        assert_eq!(names, ["admin", "ci"], "the environment's token, then the file's, from the start");
        let file = config.file.as_ref().expect("the file is read");
        assert_eq!(file.backends.names(), ["a"]);

        // Without the flag the variable's file is read, and its error names it.
        let error = load(&variables, &[]).expect_err("a broken file");
        assert!(error.to_string().contains("env.toml"), "{error}");
        // A flag is checked like its variable, and named the same way.
        let error = load(&[], &["--port", "eighty"]).expect_err("not a port");
        assert!(error.to_string().starts_with("DASHBOARD_PORT:"), "{error}");
        assert!(matches!(load(&[], &["--help"]), Ok(Invocation::Print(text)) if text == USAGE));
        assert!(load(&[], &["--no-such-flag"]).is_err());
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!((config.port, config.debug), (8000, false));
        assert_eq!(config.store, StoreSpec::Sqlite(DEFAULT_SQLITE_PATH.into()), "durable by default");
        assert_eq!((config.sqlite_sync, config.retention_days), (Synchronous::Full, 30));
        assert_eq!(config.max_sse_clients, 1000);
        assert_eq!((config.max_log_lines, config.max_log_bytes, config.max_output_bytes), (None, None, None));
        assert_eq!((config.max_items, config.max_item_bytes), (None, None));
    }

    #[test]
    fn the_limits_of_one_execution_are_read() {
        let config = config(&[
            ("DASHBOARD_MAX_LOG_LINES", "500"),
            ("DASHBOARD_MAX_LOG_BYTES", "65536"),
            ("DASHBOARD_MAX_OUTPUT_BYTES", "2048"),
            ("DASHBOARD_MAX_ITEMS", "300"),
            ("DASHBOARD_MAX_ITEM_BYTES", "1048576"),
        ])
        .expect("valid settings");
        assert_eq!(
            (config.max_log_lines, config.max_log_bytes, config.max_output_bytes, config.max_items),
            (Some(500), Some(65536), Some(2048), Some(300))
        );
        assert_eq!(config.max_item_bytes, Some(1_048_576));
    }

    #[test]
    fn variables_are_read_and_bad_ones_named() {
        let config =
            config(&[("DASHBOARD_PORT", "0"), ("DASHBOARD_STORE", "sqlite:x.db"), ("DASHBOARD_DEBUG", "1")])
                .expect("valid settings");
        assert_eq!((config.port, config.store, config.debug), (0, StoreSpec::Sqlite("x.db".into()), true));
        let config = super::tests::config(&[
            ("DASHBOARD_STORE", "memory"),
            ("DASHBOARD_SQLITE_SYNC", "normal"),
            ("DASHBOARD_RETENTION_DAYS", "0"),
        ])
        .expect("valid settings");
        assert_eq!(
            (config.store, config.sqlite_sync, config.retention_days),
            (StoreSpec::Memory, Synchronous::Normal, 0)
        );
        for (name, value) in [
            ("DASHBOARD_PORT", "eighty"),
            ("DASHBOARD_STORE", "postgres"),
            ("DASHBOARD_STORE", "sqlite:"),
            ("DASHBOARD_HOST", "x"),
            ("DASHBOARD_SQLITE_SYNC", "off"),
            ("DASHBOARD_RETENTION_DAYS", "-1"),
            ("DASHBOARD_RETENTION_DAYS", "a month"),
            ("DASHBOARD_RETENTION_DAYS", "99999999"),
            ("DASHBOARD_MAX_SSE_CLIENTS", "0"),
            ("DASHBOARD_MAX_LOG_LINES", "0"),
            ("DASHBOARD_MAX_LOG_LINES", "many"),
            ("DASHBOARD_MAX_LOG_BYTES", "100"),
            ("DASHBOARD_MAX_OUTPUT_BYTES", "-1"),
            ("DASHBOARD_MAX_ITEMS", "0"),
            ("DASHBOARD_MAX_ITEM_BYTES", "100"),
        ] {
            let error = super::tests::config(&[(name, value)]).expect_err("bad value accepted");
            assert_eq!(error.variable, name);
        }
    }
}
