//! The Agent Dashboard server: the JSON API, the pages, the static files and the settings, around one
//! [`dashboard_engine::Dashboard`].
//!
//! This is the only crate that knows HTTP: status codes, JSON error bodies, cookies and page templates live here and
//! nowhere else. It composes the layers below — it owns no domain rule and never writes an execution's status
//! itself. Other actix-web applications can mount the whole dashboard with [`configure`].

pub mod config;
pub mod config_file;
pub mod notify;
pub mod routes;
pub mod webhook;

mod access_log;
mod api;
mod assets;
mod auth;
mod common;
mod error;
mod http1;
mod mcp;
mod migrate;
mod pages;
mod seed;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpRequest, HttpResponse, web};
use dashboard_backends::DemoBackend;
use dashboard_engine::{ClusterSettings, Dashboard, RetentionPolicy};
use dashboard_store::{Cluster, DashboardStore, MemoryStore};
use dashboard_store_postgres::{PostgresOptions, PostgresStore, redacted_url};
use dashboard_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

pub use assets::{Templates, WebSource};
pub use auth::{ENV_TOKEN_NAME, TokenSpec};
pub use config::{
    ConfigError, InstanceId, Invocation, MIGRATE_USAGE, MigrateStore, ServerConfig, SettingsError, StoreSpec,
    USAGE,
};
pub use config_file::{ConfigFileError, FileConfig};
pub use error::{ApiError, ErrorCode};
pub use migrate::{MigrateError, migrate_store};
pub use state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file is wrong.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The store could not be opened.
    #[error("could not open the store: {0}")]
    Store(String),
    /// A page template is broken.
    #[error("could not load the page templates: {0}")]
    Templates(#[from] tera::Error),
    /// The address could not be bound.
    #[error("could not listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The engine, and — when its store is shared by several instances — the store's cluster side, which also keeps the
/// login sessions.
struct Built {
    dashboard: Dashboard,
    cluster: Option<Arc<dyn Cluster>>,
}

/// Opens the configured store and builds the engine: with the config file's backends and functions, or, without a
/// file, with the demo backend and the example function. On PostgreSQL the engine is one of the instances sharing
/// the store.
async fn build_dashboard(config: &ServerConfig) -> Result<Built, StartError> {
    let mut cluster = None;
    let store: Arc<dyn DashboardStore> = match &config.store {
        StoreSpec::Memory => {
            log::info!("store: in memory (DASHBOARD_STORE=memory); everything is lost when the server stops");
            Arc::new(MemoryStore::default())
        }
        StoreSpec::Sqlite(path) => Arc::new(open_sqlite(path, config.sqlite_sync).await?),
        StoreSpec::Postgres(url) => {
            let store = Arc::new(open_postgres(url, config).await?);
            let secret = store.shared_secret().await.map_err(|error| {
                StartError::Store(format!(
                    "{}: could not read the cluster's secret: {error}",
                    redacted_url(url)
                ))
            })?;
            let shared: Arc<dyn Cluster> = store.clone();
            cluster = Some(ClusterSettings { cluster: shared, lease: config.lease(), secret });
            store
        }
    };
    if let Some(file) = &config.file {
        // Before anything is recorded: the outbox is written with the events that call for it.
        store.set_outbox_rules(notify::outbox_rules(&file.notifications));
    }
    let mut builder = config.configure_engine(Dashboard::builder().store(store));
    if let Some(settings) = &cluster {
        builder = builder.cluster(settings.clone());
    }
    let cluster = cluster.map(|settings| settings.cluster);
    let (Some(path), Some(file)) = (&config.config_file, &config.file) else {
        let dashboard = builder.backend("demo", DemoBackend).build();
        if config.seed_example {
            seed::example_function(&dashboard).await.map_err(|error| StartError::Store(error.to_string()))?;
        }
        return Ok(Built { dashboard, cluster });
    };
    let dashboard = builder.backends(file.backends.clone()).build();
    let (created, updated) = config_file::sync_functions(&dashboard, &file.functions)
        .await
        .map_err(|message| ConfigFileError { path: path.clone(), message })?;
    let (schedules_created, schedules_updated) = config_file::sync_schedules(&dashboard, &file.schedules)
        .await
        .map_err(|message| ConfigFileError { path: path.clone(), message })?;
    log::info!(
        "config {}: backends {}; {created} functions created, {updated} updated; {schedules_created} schedules \
         created, {schedules_updated} updated",
        path.display(),
        dashboard.backends().names().join(", ")
    );
    Ok(Built { dashboard, cluster })
}

/// Connects to PostgreSQL, which creates or migrates the schema; an unreachable server is a start error naming the
/// URL (its password hidden).
async fn open_postgres(url: &str, config: &ServerConfig) -> Result<PostgresStore, StartError> {
    let options = PostgresOptions { pool_size: config.pg_pool_size, ..PostgresOptions::new(url) };
    let shown = redacted_url(url);
    let store = PostgresStore::connect(options)
        .await
        .map_err(|error| StartError::Store(format!("PostgreSQL at {shown}: {error}")))?;
    log::info!(
        "store: PostgreSQL at {shown} (pool of {} connections, lease {} s), shared with the other instances",
        config.pg_pool_size,
        config.lease_secs
    );
    Ok(store)
}

/// Opens the SQLite store off the async runtime: opening reads files and may migrate the schema.
async fn open_sqlite(path: &std::path::Path, synchronous: Synchronous) -> Result<SqliteStore, StartError> {
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let owned_path = path.to_path_buf();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(owned_path, options))
        .await
        .map_err(|error| StartError::Store(format!("{}: {error}", path.display())))?
        .map_err(|error| StartError::Store(error.to_string()))?;
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    log::info!("store: SQLite at {} (synchronous = {synchronous})", shown.display());
    Ok(store)
}

/// Mounts the dashboard — API, pages, static files, error answers — into an actix-web app.
pub fn configure(
    state: web::Data<AppState>,
    web_source: web::Data<WebSource>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config: &mut web::ServiceConfig| {
        let max_body_bytes = state.config.max_body_bytes;
        config
            .app_data(state)
            .app_data(web_source)
            .app_data(web::PayloadConfig::new(max_body_bytes))
            .app_data(web::FormConfig::default().limit(max_body_bytes))
            .app_data(api::query_config())
            .service(
                // Every route of the table, behind the authentication middleware; each route checks its own access.
                // Before it, requests whose framing or host is ambiguous are refused.
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(auth::guard::authenticate))
                    .wrap(actix_web::middleware::from_fn(http1::refuse_ambiguous_requests))
                    .configure(|config| {
                        let mut router = routes::Router::default();
                        routes::declare(&mut router);
                        router.register(config);
                    })
                    .default_service(web::to(not_found)),
            );
    }
}

/// The security headers of every answer. The pages use no inline script or style, so the policy can forbid both.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}

/// With no token configured and an address others can reach, what that exposes: with a backend that runs local
/// programs (`command`, `codex`), anyone who can connect can run code on this machine.
fn exposure_warning(
    config: &ServerConfig,
    tokens: &[TokenSpec],
    backends: &dashboard_backend_api::BackendRegistry,
) -> Option<String> {
    if config.is_loopback() || !tokens.is_empty() {
        return None;
    }
    let local_programs: Vec<String> = backends
        .iter()
        .filter(|(_, backend)| backend.runs_local_programs())
        .map(|(name, backend)| format!("{name} ({})", backend.kind()))
        .collect();
    Some(if local_programs.is_empty() {
        format!(
            "listening on {} with no authentication: anyone who can reach this address can trigger executions; \
             set DASHBOARD_AUTH_TOKEN or [[auth.tokens]] (docs/security.md)",
            config.host
        )
    } else {
        format!(
            "DANGER: listening on {} with no authentication while backends that run local programs are configured \
             ({}): anyone who can reach this address can run commands on this machine as this user; set \
             DASHBOARD_AUTH_TOKEN or [[auth.tokens]], or listen on 127.0.0.1 (docs/security.md)",
            config.host,
            local_programs.join(", ")
        )
    })
}

async fn not_found(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if request.path().starts_with("/api/") || request.path() == "/api" {
        return actix_web::ResponseError::error_response(&ApiError::new(
            ErrorCode::NotFound,
            format!("no route {} {}", request.method(), request.path()),
        ));
    }
    common::html::not_found_page(&state, request.path())
}

/// A server that is running.
pub struct RunningServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub address: SocketAddr,
    /// The engine behind it.
    pub dashboard: Dashboard,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The notification sender, when notifications are configured: it ends after the engine's shutdown, once the
    /// attempts it has going are over.
    notifier: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// `http://{address}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Waits until the server stops (Ctrl-C or SIGTERM), then shuts the engine down gracefully.
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.task.await.unwrap_or_else(|error| Err(std::io::Error::other(error)));
        self.dashboard.shutdown(Duration::from_secs(10)).await;
        notifier_stopped(self.notifier).await;
        result
    }

    /// Stops the server and the engine.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.dashboard.shutdown(Duration::from_secs(1)).await;
        notifier_stopped(self.notifier).await;
    }
}

/// Waits for the notification sender to end its attempts (their requests time out within 10 s), 15 s at most.
async fn notifier_stopped(notifier: Option<tokio::task::JoinHandle<()>>) {
    if let Some(notifier) = notifier
        && tokio::time::timeout(Duration::from_secs(15), notifier).await.is_err()
    {
        log::warn!("notifications: the sender did not end its attempts within 15 s");
    }
}

/// Starts the dashboard with `config`: builds the engine, recovers unfinished executions, and listens.
pub async fn start(mut config: ServerConfig) -> Result<RunningServer, StartError> {
    // Bind first: the public URL, and so every callback URL, needs the real port when 0 was asked for.
    let address = SocketAddr::new(config.host, config.port);
    let bind_error = |source| StartError::Bind { address: address.to_string(), source };
    let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    let is_public_url_set = config.public_url.is_some();
    config.public_url.get_or_insert_with(|| format!("http://127.0.0.1:{}", address.port()));

    // Read by `ServerConfig::load` already, unless an embedder named a file without reading it.
    config.read_config_file()?;
    match &config.instance_id {
        InstanceId::Named(id) => log::info!("instance {id} (DASHBOARD_INSTANCE_ID)"),
        InstanceId::Random(id) => {
            log::info!("instance {id} (drawn at random for this run; DASHBOARD_INSTANCE_ID names it)")
        }
    }
    let Built { dashboard, cluster } = build_dashboard(&config).await?;
    if let Some(warning) = exposure_warning(&config, &config.auth_tokens, dashboard.backends()) {
        log::warn!("{warning}");
    }
    let report = dashboard.recover().await.map_err(|error| StartError::Store(error.to_string()))?;
    if report.interrupted + report.requeued > 0 {
        log::info!("recovery: {} interrupted, {} queued again", report.interrupted, report.requeued);
    }
    // The task ends when the engine shuts down.
    drop(dashboard.spawn_schedules());
    match RetentionPolicy::days(config.retention_days) {
        Some(policy) => {
            log::info!("retention: finished executions are kept {} days", config.retention_days);
            // The task ends with the store; its handle is not needed.
            drop(dashboard.spawn_retention(policy));
        }
        None => {
            log::info!("retention: off (DASHBOARD_RETENTION_DAYS=0), finished executions are kept for ever")
        }
    }
    let mut notifier = None;
    if let Some(file) = config.file.as_ref().filter(|file| !file.notifications.is_empty()) {
        let public_url = config.public_url.clone().unwrap_or_default();
        if !is_public_url_set {
            log::warn!(
                "notifications: DASHBOARD_PUBLIC_URL is not set, so their links to executions start with {public_url}, \
                 which a receiver elsewhere may not reach"
            );
        }
        notifier = notify::spawn(
            dashboard.clone(),
            file.notifications.clone(),
            public_url,
            config.instance_id.as_str().to_owned(),
        );
    }
    let web_source = WebSource::choose(config.web_dir.as_deref(), config.debug);
    let templates = Templates::load(&web_source)?;
    let mut state = AppState::new(dashboard.clone(), templates, config);
    if let Some(cluster) = cluster.filter(|_| dashboard.is_clustered()) {
        state = state.with_shared_sessions(cluster);
    }
    let state = web::Data::new(state);
    let web_source = web::Data::new(web_source);
    let http_metrics = web::Data::new(api::metrics::HttpMetrics::default());
    let max_body_bytes = state.config.max_body_bytes;
    let server = http1::serve(listener, max_body_bytes, move || {
        App::new()
            .app_data(http_metrics.clone())
            .wrap(api::metrics::CountRequests(http_metrics.clone()))
            .wrap(security_headers())
            .wrap(access_log::logger())
            .configure(configure(state.clone(), web_source.clone()))
    })
    .map_err(bind_error)?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer { address, dashboard, handle, task, notifier })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dashboard_backend_api::{BackendRegistry, Scope};
    use dashboard_backends::{CommandBackend, CommandConfig, DemoBackend};

    use super::*;

    /// An application of its own mounts the dashboard with `configure` and gets the same routes and checks.
    #[actix_web::test]
    async fn an_embedding_app_gets_the_routes_and_their_checks() {
        use actix_web::test::{TestRequest, call_service, init_service};
        let dashboard =
            Dashboard::builder().store(Arc::new(MemoryStore::default())).backend("demo", DemoBackend).build();
        let web_source = WebSource::choose(None, false);
        let templates = Templates::load(&web_source).expect("the embedded templates load");
        let config = ServerConfig {
            auth_tokens: vec![TokenSpec::from_secret("embedder", "an-embedders-token-0123", Scope::Read)],
            ..ServerConfig::default()
        };
        let state = web::Data::new(AppState::new(dashboard, templates, config));
        let app = init_service(App::new().configure(configure(state, web::Data::new(web_source)))).await;
        let status = |request: TestRequest| {
            let app = &app;
            async move { call_service(app, request.to_request()).await.status().as_u16() }
        };
        assert_eq!(status(TestRequest::get().uri("/api/functions")).await, 401);
        let with_token = TestRequest::get()
            .uri("/api/functions")
            .insert_header(("Authorization", "Bearer an-embedders-token-0123"));
        assert_eq!(status(with_token).await, 200);
        assert_eq!(status(TestRequest::get().uri("/healthz")).await, 200);
    }

    #[test]
    fn an_open_address_without_auth_is_a_warning_and_local_programs_a_danger() {
        let mut backends = BackendRegistry::default();
        backends.insert("demo", Arc::new(DemoBackend));
        let exposed = ServerConfig::default();
        let local = ServerConfig { host: [127, 0, 0, 1].into(), ..ServerConfig::default() };
        let token = [TokenSpec::from_secret("admin", "a-long-enough-token", Scope::Admin)];
        assert_eq!(exposure_warning(&local, &[], &backends), None);
        assert_eq!(exposure_warning(&exposed, &token, &backends), None);
        let warning = exposure_warning(&exposed, &[], &backends).expect("a warning");
        assert!(warning.starts_with("listening on 0.0.0.0 with no authentication"), "{warning}");
        let config: CommandConfig =
            serde_json::from_value(serde_json::json!({"command": "sh"})).expect("a command config");
        backends.insert("shell", Arc::new(CommandBackend::new(config)));
        let danger = exposure_warning(&exposed, &[], &backends).expect("a warning");
        assert!(danger.starts_with("DANGER") && danger.contains("shell (command)"), "{danger}");
    }
}
