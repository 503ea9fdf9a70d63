//! The Agent Dashboard server: the JSON API, the pages, the static files and the settings, around one
//! [`dashboard_engine::Dashboard`].
//!
//! This is the only crate that knows HTTP: status codes, JSON error bodies, cookies and page templates live here and
//! nowhere else. It composes the layers below — it owns no domain rule and never writes an execution's status
//! itself. Other actix-web applications can mount the whole dashboard with [`configure`].

pub mod config;

mod api;
mod assets;
mod error;
mod pages;
mod seed;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use dashboard_backends::DemoBackend;
use dashboard_engine::Dashboard;
use dashboard_store::{DashboardStore, MemoryStore};

pub use assets::{Templates, WebSource};
pub use config::{ConfigError, ServerConfig, StoreSpec};
pub use error::ApiError;
pub use state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// Opens the configured store and builds the engine with the default backends (`demo`).
pub async fn build_dashboard(config: &ServerConfig) -> Result<Dashboard, StartError> {
    let store: Arc<dyn DashboardStore> = match &config.store {
        StoreSpec::Memory => Arc::new(MemoryStore::default()),
        StoreSpec::Sqlite(path) => {
            return Err(StartError::Store(format!(
                "{}: the SQLite store is not built into this version yet; use DASHBOARD_STORE=memory",
                path.display()
            )));
        }
    };
    let dashboard = Dashboard::builder().store(store).backend("demo", DemoBackend).build();
    if config.seed_example {
        seed::example_function(&dashboard).await.map_err(|error| StartError::Store(error.to_string()))?;
    }
    Ok(dashboard)
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
            .route("/healthz", web::get().to(api::health::healthz))
            .route("/static/{path:.*}", web::get().to(assets::serve_static))
            .service(web::scope("/api").configure(api::routes))
            .configure(pages::routes)
            .default_service(web::to(not_found));
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

async fn not_found(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if request.path().starts_with("/api/") || request.path() == "/api" {
        return actix_web::ResponseError::error_response(&ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not-found",
            format!("no route {} {}", request.method(), request.path()),
        ));
    }
    pages::not_found_page(&state, request.path())
}

/// A server that is running.
pub struct RunningServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub address: SocketAddr,
    /// The engine behind it.
    pub dashboard: Dashboard,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
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
        result
    }

    /// Stops the server and the engine.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.dashboard.shutdown(Duration::from_secs(1)).await;
    }
}

/// Starts the dashboard with `config`: builds the engine, recovers unfinished executions, and listens.
pub async fn start(mut config: ServerConfig) -> Result<RunningServer, StartError> {
    let dashboard = build_dashboard(&config).await?;
    let report = dashboard.recover().await.map_err(|error| StartError::Store(error.to_string()))?;
    if report.interrupted + report.requeued > 0 {
        log::info!("recovery: {} interrupted, {} queued again", report.interrupted, report.requeued);
    }
    let web_source = WebSource::choose(config.web_dir.as_deref(), config.debug);
    let templates = Templates::load(&web_source)?;
    let address = SocketAddr::new(config.host, config.port);
    let bind_error = |source| StartError::Bind { address: address.to_string(), source };
    let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    config.public_url.get_or_insert_with(|| format!("http://127.0.0.1:{}", address.port()));

    let state = web::Data::new(AppState { dashboard: dashboard.clone(), templates, config });
    let web_source = web::Data::new(web_source);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(security_headers())
            .wrap(Logger::new("%r %s %Dms").log_target("agent_dashboard::http"))
            .configure(configure(state.clone(), web_source.clone()))
    })
    .listen(listener)
    .map_err(bind_error)?
    .shutdown_timeout(5)
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer { address, dashboard, handle, task })
}
