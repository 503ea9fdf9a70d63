//! The one place the server's settings are merged, in one order (DESIGN.md §6): the environment (`DASHBOARD_*`),
//! then the command-line flags (each read exactly like its variable), then the config file the two name (backends,
//! functions and `[[auth.tokens]]`), into one [`ServerConfig`] that the rest of the server reads.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use dashboard_backend_api::Scope;
use dashboard_engine::DashboardBuilder;
use dashboard_store_postgres::{is_postgres_url, redacted_url};
use dashboard_store_sqlite::Synchronous;

use crate::auth::{ENV_TOKEN_NAME, TokenSpec};
use crate::config_file::{self, ConfigFileError, FileConfig};

/// The binary's usage text.
pub const USAGE: &str = "\
Usage: agent-dashboard [serve] [--config FILE] [--host ADDRESS] [--port PORT] [--store STORE]
       agent-dashboard migrate-store --from sqlite:PATH --to postgres://USER:PASSWORD@HOST:PORT/DATABASE
       agent-dashboard [--url URL] [--token TOKEN] [--json] COMMAND …   (a client of a running dashboard)

Agent Dashboard: a control plane for AI agents. Flags override the DASHBOARD_* environment variables;
see README.md for all of them.

  --config FILE    backends and functions from a TOML file (DASHBOARD_CONFIG)
  --host ADDRESS   the address to listen on (DASHBOARD_HOST, default 0.0.0.0)
  --port PORT      the port (DASHBOARD_PORT, default 8000)
  --store STORE    memory, sqlite:PATH or postgres://… (DASHBOARD_STORE, default sqlite:data/agent-dashboard.db)
  -h, --help       this text
  -V, --version    the version

  migrate-store    copies a SQLite file into an empty PostgreSQL database (stop the server on the file first)

Client commands (`agent-dashboard COMMAND --help` for each; docs/cli.md):
  functions, trigger, ls, show, logs, cancel, retry, continue, approvals, approve, decline";

/// The subcommands of the command-line client (`crates/server/src/cli`): any of them, or one of its global flags
/// (`--url`, `--token`, `--json`), makes the command line a client's.
pub const CLIENT_COMMANDS: [&str; 11] = [
    "functions",
    "trigger",
    "ls",
    "show",
    "logs",
    "cancel",
    "retry",
    "continue",
    "approvals",
    "approve",
    "decline",
];

/// The client's global flags, which may stand before its subcommand.
const CLIENT_FLAGS: [&str; 3] = ["url", "token", "json"];

/// Whether a client subcommand's name is among the arguments.
fn has_client_command(args: &[OsString]) -> bool {
    args.iter().any(|arg| CLIENT_COMMANDS.iter().any(|name| arg == *name))
}

/// The usage text of `agent-dashboard migrate-store`.
pub const MIGRATE_USAGE: &str = "\
Usage: agent-dashboard migrate-store --from sqlite:PATH --to postgres://USER:PASSWORD@HOST:PORT/DATABASE

Copies everything a SQLite file holds (functions, executions, their logs, transcripts and events, approvals) into an
empty PostgreSQL database, which it creates the schema of. Stop the server that uses the file first.

  --from sqlite:PATH     the SQLite file
  --to postgres://…      the PostgreSQL database (also postgresql://…); it must hold no data yet
  -h, --help             this text";

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Serve with these settings, merged and with the config file read.
    Serve(Box<ServerConfig>),
    /// Copy a SQLite file into a PostgreSQL database (`agent-dashboard migrate-store`).
    MigrateStore(MigrateStore),
    /// Print this text (help, version) and stop.
    Print(String),
    /// Run a client subcommand against a running dashboard; the arguments as given (without the program's name), for
    /// the client's own parser.
    Client(Vec<OsString>),
}

/// `agent-dashboard migrate-store --from sqlite:PATH --to postgres://…`: what to copy where.
#[derive(Clone, PartialEq, Eq)]
pub struct MigrateStore {
    /// The SQLite file.
    pub from: PathBuf,
    /// The PostgreSQL URL (it may hold a password: [`redacted_url`] before showing it).
    pub to: String,
    /// The most connections the copy may hold (`DASHBOARD_PG_POOL_SIZE`).
    pub pg_pool_size: usize,
}

impl std::fmt::Debug for MigrateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateStore")
            .field("from", &self.from)
            .field("to", &redacted_url(&self.to))
            .field("pg_pool_size", &self.pg_pool_size)
            .finish()
    }
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
    /// A subcommand was used wrongly (a missing or unknown flag); the message ends with its usage text.
    #[error("{0}")]
    Usage(String),
}

/// Where the data lives when `DASHBOARD_STORE` is not set: relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/agent-dashboard.db";
/// How many days finished executions are kept when `DASHBOARD_RETENTION_DAYS` is not set.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention that can be asked for (a century); beyond it, say 0 to keep everything.
const MAX_RETENTION_DAYS: u32 = 36_500;
/// How long an instance's claim on an execution lasts without a heartbeat when `DASHBOARD_LEASE_SECS` is not set.
pub const DEFAULT_LEASE_SECS: u64 = 30;
/// The shortest and longest lease (`DASHBOARD_LEASE_SECS`): heartbeats come every sixth of it, so a shorter one
/// would cost the database more than two heartbeats a second per instance, and a longer one leaves a dead instance's
/// runs `running` for over an hour.
const LEASE_SECS: std::ops::RangeInclusive<u64> = 3..=3600;
/// How long an MCP tool call waits for its execution's end when `DASHBOARD_MCP_WAIT_SECS` is not set.
pub const DEFAULT_MCP_WAIT_SECS: u64 = 60;
/// The longest an MCP tool call may wait (`DASHBOARD_MCP_WAIT_SECS`): an hour; 0 answers at once with the id.
const MCP_WAIT_SECS: std::ops::RangeInclusive<u64> = 0..=3600;
/// How many connections an instance's pool may hold when `DASHBOARD_PG_POOL_SIZE` is not set.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;
/// The most connections one instance's pool may be given (`DASHBOARD_PG_POOL_SIZE`).
const MAX_PG_POOL_SIZE: usize = 1000;
/// How many executions one instance runs at once when `DASHBOARD_MAX_RUNNING` is not set.
pub const DEFAULT_MAX_RUNNING: usize = 32;
/// The most executions one instance may be asked to run at once (`DASHBOARD_MAX_RUNNING`).
const MAX_MAX_RUNNING: usize = 10_000;
/// The longest instance id (`DASHBOARD_INSTANCE_ID`): it is a label in logs and metrics.
const MAX_INSTANCE_ID_CHARS: usize = 64;

/// Where the dashboard keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In memory: lost when the process stops.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL (`postgres://…` or `postgresql://…`), which several instances may share. The
    /// URL may hold a password: it is shown only through [`StoreSpec::describe`] (or `Debug`), which hide it.
    Postgres(String),
}

impl StoreSpec {
    /// The store as it may be shown in a log or an error: the password of a PostgreSQL URL replaced by `***`.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory => "memory".to_owned(),
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres(url) => redacted_url(url),
        }
    }
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redacted_url(url)).finish(),
        }
    }
}

/// Who this instance is among those that share a store (`DASHBOARD_INSTANCE_ID`): shown in every log line, on
/// `/metrics` and `GET /api/instances`, and recorded on the executions it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceId {
    /// Named by `DASHBOARD_INSTANCE_ID`.
    Named(String),
    /// Chosen at random when the settings were read, since none was named: `i-` and 12 hex digits.
    Random(String),
}

impl InstanceId {
    /// A new random id: `i-` and 12 hex digits.
    pub fn random() -> Self {
        let mut bytes = [0u8; 6];
        // The kernel's random source does not fail on the systems this runs on; if it did, no id could be drawn.
        getrandom::fill(&mut bytes).expect("the system's random source is readable");
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Self::Random(format!("i-{hex}"))
    }

    /// The id itself.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Named(id) | Self::Random(id) => id,
        }
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self::random()
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The store (`DASHBOARD_STORE`: `memory`, `sqlite:PATH` or `postgres://…`; default
    /// `sqlite:data/agent-dashboard.db`).
    pub store: StoreSpec,
    /// This instance's id (`DASHBOARD_INSTANCE_ID`; a random one when unset).
    pub instance_id: InstanceId,
    /// How long, in seconds, an instance's claim on an execution holds without a heartbeat, on PostgreSQL
    /// (`DASHBOARD_LEASE_SECS`, default 30, from 3 to 3600): an instance that dies leaves its runs `running` at most
    /// this long.
    pub lease_secs: u64,
    /// How long, in seconds, an MCP tool call that runs a function waits for its end before answering with the
    /// execution's id and status (`DASHBOARD_MCP_WAIT_SECS`, default 60, from 0 to 3600).
    pub mcp_wait_secs: u64,
    /// The most connections of this instance's PostgreSQL pool (`DASHBOARD_PG_POOL_SIZE`, default 16, from 1 to
    /// 1000); its listener holds one more.
    pub pg_pool_size: usize,
    /// How many executions this instance runs at once (`DASHBOARD_MAX_RUNNING`, default 32); more wait `queued`.
    pub max_running: usize,
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
            instance_id: InstanceId::random(),
            lease_secs: DEFAULT_LEASE_SECS,
            mcp_wait_secs: DEFAULT_MCP_WAIT_SECS,
            pg_pool_size: DEFAULT_PG_POOL_SIZE,
            max_running: DEFAULT_MAX_RUNNING,
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
        let args: Vec<OsString> = args.into_iter().collect();
        let mut overrides: Vec<(&str, String)> = Vec::new();
        let mut is_serve = false;
        let mut parser = lexopt::Parser::from_args(args.clone());
        while let Some(argument) = parser.next().map_err(|error| flag_error(error.to_string()))? {
            let variable = match argument {
                Value(command) if command == "migrate-store" && overrides.is_empty() && !is_serve => {
                    let config = Self::from_lookup(&lookup)?;
                    return migrate_store(&mut parser, config.pg_pool_size);
                }
                Value(command) if command == "serve" && !is_serve => {
                    is_serve = true;
                    continue;
                }
                // The client parses its command line itself: its flags may stand before or after its subcommand.
                Value(command) if !is_serve && CLIENT_COMMANDS.iter().any(|name| command == *name) => {
                    return Ok(Invocation::Client(args));
                }
                Long(flag) if !is_serve && CLIENT_FLAGS.contains(&flag) => {
                    return Ok(Invocation::Client(args));
                }
                Long("config") => "DASHBOARD_CONFIG",
                Long("host") => "DASHBOARD_HOST",
                Long("port") => "DASHBOARD_PORT",
                Long("store") => "DASHBOARD_STORE",
                Short('h') | Long("help") => return Ok(Invocation::Print(USAGE.to_owned())),
                Short('V') | Long("version") => {
                    return Ok(Invocation::Print(format!("agent-dashboard {}", env!("CARGO_PKG_VERSION"))));
                }
                // A flag of a client subcommand before it (`--follow trigger …`): the client reads it.
                _ if !is_serve && has_client_command(&args) => return Ok(Invocation::Client(args)),
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
        // A login session names its token (it may be kept in a shared store): two tokens of one name could not be told
        // apart, nor could their executions' `triggered_by`.
        let taken = |name: &str| self.auth_tokens.iter().any(|token| token.name == name);
        if let Some((index, token)) = file.tokens.iter().enumerate().find(|(_, token)| taken(&token.name)) {
            return Err(ConfigFileError {
                path: path.clone(),
                message: format!(
                    "auth.tokens[{index}] ({:?}): name: the token of DASHBOARD_AUTH_TOKEN is called {:?}; give this \
                     one another name",
                    token.name, token.name
                ),
            });
        }
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
        if let Some(id) = var("DASHBOARD_INSTANCE_ID") {
            config.instance_id = InstanceId::Named(parse_instance_id(&id)?);
        }
        config.lease_secs =
            within(&var, "DASHBOARD_LEASE_SECS", LEASE_SECS, "seconds")?.unwrap_or(DEFAULT_LEASE_SECS);
        config.mcp_wait_secs = within(&var, "DASHBOARD_MCP_WAIT_SECS", MCP_WAIT_SECS, "seconds")?
            .unwrap_or(DEFAULT_MCP_WAIT_SECS);
        config.pg_pool_size =
            within(&var, "DASHBOARD_PG_POOL_SIZE", 1..=MAX_PG_POOL_SIZE as u64, "connections")?
                .map_or(DEFAULT_PG_POOL_SIZE, |size| size as usize);
        config.max_running = within(&var, "DASHBOARD_MAX_RUNNING", 1..=MAX_MAX_RUNNING as u64, "executions")?
            .map_or(DEFAULT_MAX_RUNNING, |count| count as usize);
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
        let mut builder = builder
            .public_url(self.public_url.clone())
            .instance_id(Some(self.instance_id.as_str().to_owned()))
            .max_concurrency(self.max_running);
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

    /// How long a claim holds without a heartbeat (`lease_secs`).
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs)
    }
}

/// The rest of `agent-dashboard migrate-store …` after its name: `--from sqlite:PATH --to postgres://…`.
fn migrate_store(parser: &mut lexopt::Parser, pg_pool_size: usize) -> Result<Invocation, SettingsError> {
    use lexopt::prelude::*;
    let usage =
        |message: String| SettingsError::Usage(format!("migrate-store: {message}\n\n{MIGRATE_USAGE}"));
    let (mut from, mut to) = (None, None);
    while let Some(argument) = parser.next().map_err(|error| usage(error.to_string()))? {
        let slot = match argument {
            Long("from") => &mut from,
            Long("to") => &mut to,
            Short('h') | Long("help") => return Ok(Invocation::Print(MIGRATE_USAGE.to_owned())),
            other => return Err(usage(other.unexpected().to_string())),
        };
        let value = parser.value().map_err(|error| usage(error.to_string()))?;
        *slot = Some(value.string().map_err(|error| usage(error.to_string()))?);
    }
    let from = match from.as_deref().map(|from| from.strip_prefix("sqlite:")) {
        None => return Err(usage("--from sqlite:PATH is missing".into())),
        Some(Some(path)) if !path.is_empty() => PathBuf::from(path),
        Some(_) => return Err(usage("--from must be sqlite:PATH, the SQLite file to copy".into())),
    };
    let to = match to {
        None => return Err(usage("--to postgres://… is missing".into())),
        Some(url) if is_postgres_url(&url) => url,
        Some(url) => {
            let shown = shown_store(&url);
            return Err(usage(format!("--to {shown} is no PostgreSQL URL (postgres://… or postgresql://…)")));
        }
    };
    Ok(Invocation::MigrateStore(MigrateStore { from, to, pg_pool_size }))
}

fn parse_store(text: &str) -> Result<StoreSpec, ConfigError> {
    if text == "memory" {
        return Ok(StoreSpec::Memory);
    }
    if is_postgres_url(text) {
        return Ok(StoreSpec::Postgres(text.to_owned()));
    }
    match text.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(StoreSpec::Sqlite(PathBuf::from(path))),
        _ => Err(invalid(
            "DASHBOARD_STORE",
            format!(
                "{}: expected `memory`, `sqlite:PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`",
                shown_store(text)
            ),
        )),
    }
}

/// A store value that was refused, as its error may show it — it may be a mistyped database address with a password
/// in it: a URL or a key=value string with its passwords hidden ([`redacted_url`], which shows nothing of what it
/// cannot read), a plain value with no `@`, `=` or space (`memroy`, `sqlite:`, `postgres:/db`) as it is, and
/// anything else (`postgres:/dash:secret@db/dash`) not at all.
fn shown_store(text: &str) -> String {
    if text.contains("://") || text.contains('=') {
        format!("{:?}", redacted_url(text))
    } else if text.contains('@') || text.contains(char::is_whitespace) {
        "the value (not shown: it may hold a password)".to_owned()
    } else {
        format!("{text:?}")
    }
}

/// An instance id as `DASHBOARD_INSTANCE_ID` gives it: 1 to 64 letters, digits, `.`, `_` or `-` (it is a label in
/// logs and metrics, and a key in the database).
fn parse_instance_id(text: &str) -> Result<String, ConfigError> {
    let is_allowed = |char: char| char.is_ascii_alphanumeric() || matches!(char, '.' | '_' | '-');
    if text.chars().count() > MAX_INSTANCE_ID_CHARS || !text.chars().all(is_allowed) {
        return Err(invalid(
            "DASHBOARD_INSTANCE_ID",
            format!(
                "{text:?} is not an instance id: use 1 to {MAX_INSTANCE_ID_CHARS} letters, digits, `.`, `_` or `-` \
                 (such as `web-1`), and give each instance its own"
            ),
        ));
    }
    Ok(text.to_owned())
}

/// A whole number of `unit` read from `variable`, within `range`; `None` when it is not set.
fn within(
    var: &impl Fn(&str) -> Option<String>,
    variable: &str,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let Some(text) = var(variable) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(value) if range.contains(&value) => Ok(Some(value)),
        _ => Err(invalid(
            variable,
            format!("{text:?} is not a number of {unit} from {} to {}", range.start(), range.end()),
        )),
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
    use std::time::Duration;

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
            Ok(Invocation::MigrateStore(migrate)) => panic!("{migrate:?} instead of serving"),
            Ok(Invocation::Client(args)) => panic!("a client command {args:?} instead of serving"),
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
    fn a_file_token_may_not_take_the_name_of_the_environments() {
        let dir = std::env::temp_dir().join(format!("dashboard-token-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let file = dir.join("tokens.toml");
        let hash = "b".repeat(64);
        let text = format!(
            "[[backends]]\nname = \"a\"\nkind = \"demo\"\n\n[[auth.tokens]]\nname = \"admin\"\n\
             token_sha256 = \"{hash}\"\nscopes = [\"read\"]\n"
        );
        std::fs::write(&file, text).expect("written");
        let path = file.to_str().expect("a UTF-8 path");
        let variables = [("DASHBOARD_CONFIG", path), ("DASHBOARD_AUTH_TOKEN", "an-admin-token-0123456789")];
        let error = load(&variables, &[]).expect_err("two tokens called admin");
        assert!(error.to_string().contains("auth.tokens[0] (\"admin\"): name:"), "{error}");
        let alone = served(load(&[("DASHBOARD_CONFIG", path)], &[]));
        assert_eq!(alone.auth_tokens.len(), 1, "without the environment's token the name is free");
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
            ("DASHBOARD_STORE", "postgres:/db"),
            ("DASHBOARD_STORE", "mysql://u:p@h/d"),
            ("DASHBOARD_INSTANCE_ID", "web 1"),
            ("DASHBOARD_INSTANCE_ID", "web/1"),
            ("DASHBOARD_INSTANCE_ID", "é"),
            ("DASHBOARD_LEASE_SECS", "2"),
            ("DASHBOARD_LEASE_SECS", "3601"),
            ("DASHBOARD_LEASE_SECS", "half a minute"),
            ("DASHBOARD_MCP_WAIT_SECS", "3601"),
            ("DASHBOARD_MCP_WAIT_SECS", "a minute"),
            ("DASHBOARD_PG_POOL_SIZE", "0"),
            ("DASHBOARD_PG_POOL_SIZE", "1001"),
            ("DASHBOARD_MAX_RUNNING", "0"),
        ] {
            let error = super::tests::config(&[(name, value)]).expect_err("bad value accepted");
            assert_eq!(error.variable, name);
        }
        let long_id = "a".repeat(65);
        let error =
            super::tests::config(&[("DASHBOARD_INSTANCE_ID", &long_id)]).expect_err("a 65-character id");
        assert!(error.to_string().starts_with("DASHBOARD_INSTANCE_ID:"), "{error}");
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_its_password_never_shows() {
        for url in ["postgres://dash:s3cret@db:5432/dash", "postgresql://dash:s3cret@db/dash"] {
            let config = config(&[("DASHBOARD_STORE", url)]).expect("a PostgreSQL URL");
            assert_eq!(config.store, StoreSpec::Postgres(url.to_owned()));
            assert!(!config.store.describe().contains("s3cret"), "{}", config.store.describe());
            assert!(!format!("{config:?}").contains("s3cret"), "Debug shows no password");
        }
        let error = config(&[("DASHBOARD_STORE", "pg://dash:s3cret@db/dash")]).expect_err("not a store");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn an_unknown_store_is_shown_only_without_its_password() {
        let check = |value: &str, shown: &str| {
            let error = config(&[("DASHBOARD_STORE", value)]).expect_err("not a store").to_string();
            assert!(
                error.starts_with(&format!("DASHBOARD_STORE: {shown}: expected `memory`")),
                "{value}: {error}"
            );
            assert!(!error.contains("s3cr") && !error.contains("et@"), "{value}: {error}");
        };
        check("memroy", "\"memroy\"");
        check("sqlite:", "\"sqlite:\"");
        check("postgres:/db", "\"postgres:/db\"");
        check("pg://dash:s3cr/et@db/dash", "\"pg://dash:***@db/dash\"");
        check("mysql://db/dash?password=s3cret", "\"mysql://db/dash?password=***\"");
        check("host=db password=s3cret", "\"host=db password=***\"");
        check("host=db password='s3cret", &format!("{:?}", dashboard_store_postgres::UNREADABLE_ADDRESS));
        let hidden = "the value (not shown: it may hold a password)";
        check("postgres:/dash:s3cret@db/dash", hidden);
        check("postgres:dash:s3cr/et@db", hidden);
        check("dash:s3cret @db", hidden);

        let to = |url: &str| match load(&[], &["migrate-store", "--from", "sqlite:x.db", "--to", url]) {
            Err(SettingsError::Usage(message)) => message,
            other => panic!("{url}: {other:?}"),
        };
        let message = to("postgres:/dash:s3cret@db/dash");
        assert!(message.contains("--to the value (not shown") && !message.contains("s3cret"), "{message}");
        assert!(to("sqlite:y.db").contains("--to \"sqlite:y.db\" is no PostgreSQL URL"));
    }

    #[test]
    fn the_settings_of_several_instances_are_read_with_their_defaults() {
        let defaults = config(&[]).expect("defaults are valid");
        assert_eq!((defaults.lease_secs, defaults.pg_pool_size, defaults.max_running), (30, 16, 32));
        assert_eq!(defaults.mcp_wait_secs, 60);
        assert_eq!(config(&[("DASHBOARD_MCP_WAIT_SECS", "0")]).expect("valid").mcp_wait_secs, 0);
        let InstanceId::Random(id) = &defaults.instance_id else { panic!("{:?}", defaults.instance_id) };
        assert!(id.starts_with("i-") && id.len() == 14, "{id}");
        assert_ne!(defaults.instance_id, config(&[]).expect("valid").instance_id, "each start draws its own");
        let named = config(&[
            ("DASHBOARD_INSTANCE_ID", "web-1.eu_west"),
            ("DASHBOARD_LEASE_SECS", "3"),
            ("DASHBOARD_PG_POOL_SIZE", "1000"),
            ("DASHBOARD_MAX_RUNNING", "4"),
        ])
        .expect("valid settings");
        assert_eq!(named.instance_id, InstanceId::Named("web-1.eu_west".into()));
        assert_eq!((named.lease(), named.pg_pool_size, named.max_running), (Duration::from_secs(3), 1000, 4));
    }

    #[test]
    fn migrate_store_reads_its_source_and_target_and_refuses_bad_usage() {
        let url = "postgres://dash:s3cret@db/dash";
        let variables = [("DASHBOARD_PG_POOL_SIZE", "4")];
        match load(&variables, &["migrate-store", "--from", "sqlite:data/x.db", "--to", url]) {
            Ok(Invocation::MigrateStore(migrate)) => {
                assert_eq!(migrate.from, PathBuf::from("data/x.db"));
                assert_eq!((migrate.to.as_str(), migrate.pg_pool_size), (url, 4));
                assert!(!format!("{migrate:?}").contains("s3cret"), "Debug shows no password");
            }
            other => panic!("{other:?}"),
        }
        let help = load(&[], &["migrate-store", "--help"]);
        assert!(matches!(help, Ok(Invocation::Print(text)) if text == MIGRATE_USAGE));
        for (flags, expected) in [
            (&["migrate-store", "--to", url][..], "--from sqlite:PATH is missing"),
            (&["migrate-store", "--from", "sqlite:x.db"][..], "--to postgres://… is missing"),
            (&["migrate-store", "--from", "x.db", "--to", url][..], "--from must be sqlite:PATH"),
            (&["migrate-store", "--from", "sqlite:x.db", "--to", "sqlite:y.db"][..], "is no PostgreSQL URL"),
            (&["migrate-store", "--from", "sqlite:x.db", "--to", url, "--port", "1"][..], "--port"),
            (&["migrate-store", "--from"][..], "--from"),
        ] {
            match load(&[], flags) {
                Err(SettingsError::Usage(message)) => {
                    assert!(message.contains(expected), "{flags:?}: {message}");
                    assert!(message.ends_with(MIGRATE_USAGE), "{message}");
                    assert!(!message.contains("s3cret"), "{message}");
                }
                other => panic!("{flags:?}: {other:?}"),
            }
        }
        // A bad variable is still named, also for the subcommand.
        let error =
            load(&[("DASHBOARD_PG_POOL_SIZE", "0")], &["migrate-store"]).expect_err("a bad pool size");
        assert!(error.to_string().starts_with("DASHBOARD_PG_POOL_SIZE:"), "{error}");
        // Without a subcommand it serves, as ever.
        assert!(matches!(load(&[], &[]), Ok(Invocation::Serve(_))));
    }

    #[test]
    fn a_client_command_or_flag_hands_the_whole_command_line_to_the_client() {
        for flags in [
            &["ls"][..],
            &["--url", "http://h:1", "ls", "--json"][..],
            &["--json", "functions"][..],
            &["--token=secret", "trigger", "hello-agent"][..],
            &["approve", "some-id"][..],
            &["--follow", "-i", "steps=2", "trigger", "hello-agent"][..],
        ] {
            match load(&[], flags) {
                Ok(Invocation::Client(args)) => {
                    assert_eq!(args, flags.iter().map(OsString::from).collect::<Vec<_>>())
                }
                other => panic!("{flags:?}: {other:?}"),
            }
        }
        // `serve` is the server, flags before or after it; an unknown word is an error as before.
        assert_eq!(served(load(&[], &["serve", "--port", "9001"])).port, 9001);
        assert_eq!(served(load(&[], &["--port", "9002", "serve"])).port, 9002);
        for flags in [
            &["lss"][..],
            &["--follow"][..],
            &["serve", "ls"][..],
            &["serve", "--url", "x"][..],
            &["serve", "--follow", "ls"][..],
            &["serve", "serve"][..],
        ] {
            assert!(matches!(load(&[], flags), Err(SettingsError::Config(_))), "{flags:?}");
        }
    }
}
