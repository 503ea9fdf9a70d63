//! What the route table says of a route — its method, path and who may use it — as the guard, the OpenAPI document
//! and the tests read it.

use actix_web::http::Method;
use dashboard_backend_api::Scope;

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, also when auth is on: the health check, the static files, the login form, and the webhooks (a
    /// delivery proves itself by its signature, checked by the handler).
    Public,
    /// A remote backend, with the execution's own callback token (checked by the handler, never a user's token).
    Callback,
    /// A user's token (or session) with at least this scope; with auth off, anyone.
    Scope(Scope),
}

/// One route: its method, its path pattern (as actix-web writes it, `{name}` for a segment) and its access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: Method,
    /// The full path pattern, such as `/api/executions/{id}/cancel`.
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
}

impl RouteInfo {
    /// Whether the route belongs to the JSON API (and `/metrics`, `/healthz`): errors there are JSON, never pages.
    pub fn is_api(&self) -> bool {
        is_api_path(self.path)
    }
}

/// Whether a path is answered in JSON (or Prometheus text) rather than with pages: the API, the webhooks, the
/// metrics, the health check and the MCP server.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/hooks/")
        || path == "/metrics"
        || path == "/healthz"
        || path == "/mcp"
}
