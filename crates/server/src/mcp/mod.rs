//! The MCP server at `/mcp` (DESIGN.md §14): each function is a tool, plus tools to read and steer executions and
//! approvals; rmcp's streamable-HTTP transport (stateless) speaks the protocol, bridged to actix here.

mod bridge;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use dashboard_engine::Dashboard;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub(crate) use bridge::serve;

/// The MCP service: built once, cloned into each request (Arcs inside).
pub(crate) type Service = StreamableHttpService<tools::McpHandler, NeverSessionManager>;

/// The service over `dashboard`, whose function tools wait up to `wait` for an execution's end.
pub(crate) fn service(dashboard: Dashboard, wait: Duration) -> Service {
    let config = StreamableHttpServerConfig::default()
        // Stateless: no `Mcp-Session-Id`, so any instance of a cluster serves any POST.
        .with_legacy_session_mode(false)
        // The `authenticate` middleware already checks the Host header against DNS rebinding.
        .disable_allowed_hosts()
        .with_sse_keep_alive(Some(Duration::from_secs(15)));
    StreamableHttpService::new(
        move || Ok(tools::McpHandler::new(dashboard.clone(), wait)),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
