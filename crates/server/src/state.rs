//! `AppState`: what every handler can reach — the engine, the templates, the settings.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_engine::Dashboard;
use dashboard_store::Cluster;

use crate::ServerConfig;
use crate::assets::Templates;

/// Shared by all handlers through `web::Data<AppState>`.
pub struct AppState {
    /// The engine.
    pub dashboard: Dashboard,
    /// The page templates.
    pub templates: Templates,
    /// The settings the server started with.
    pub config: ServerConfig,
    /// The tokens and login sessions (in memory, or in the shared store: [`AppState::with_shared_sessions`]).
    pub(crate) auth: crate::auth::Auth,
    /// The MCP server at `/mcp`.
    pub(crate) mcp: crate::mcp::Service,
}

/// The handlers' view of the state.
pub type State = web::Data<AppState>;

impl AppState {
    /// The state of a dashboard with these settings; `config.auth_tokens` decides whether auth is on. This is what an
    /// actix-web application that mounts the dashboard with [`crate::configure`] builds.
    pub fn new(dashboard: Dashboard, templates: Templates, config: ServerConfig) -> Self {
        let auth = crate::auth::Auth::new(config.auth_tokens.clone(), config.public_url.as_deref());
        let mcp = crate::mcp::service(dashboard.clone(), Duration::from_secs(config.mcp_wait_secs));
        Self { dashboard, templates, config, auth, mcp }
    }

    /// Keeps login sessions in the store whose shared side is `cluster` rather than in this process, so that a
    /// browser signed in on one instance is signed in on every instance sharing that store. [`crate::start`] does this
    /// when the store is shared (`DASHBOARD_STORE=postgres://…`).
    pub fn with_shared_sessions(mut self, cluster: Arc<dyn Cluster>) -> Self {
        self.auth.share_sessions(cluster);
        self
    }

    /// Renders a page template with `context`; a template error is logged and answered with a plain 500 page.
    pub fn render(&self, status: StatusCode, template: &str, context: &tera::Context) -> HttpResponse {
        match self.templates.render(template, context) {
            Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
            Err(error) => {
                log::error!("template {template}: {}", dashboard_core::error_chain(&error));
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("this page could not be rendered; see the server log")
            }
        }
    }
}
