//! The route table: every route of the dashboard, with who may use it, declared once in `declare`. The router is
//! built from it (each route wrapped in the access check it declares), and the same declaration lists the routes for
//! the OpenAPI document and the tests, so none of them can drift from what the server answers.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};
use dashboard_backend_api::Scope;

pub use crate::common::route_info::{Access, RouteInfo};
use crate::{api, assets, auth, mcp, pages};

/// Every route of the dashboard, in registration order.
pub fn table() -> Vec<RouteInfo> {
    let mut table = Table(Vec::new());
    declare(&mut table);
    table.0
}

/// Where [`declare`] puts each route: the router, or the table.
pub(crate) trait RouteSink {
    /// Declares `handler` for `method` on `path`, usable by `access`.
    fn add<F, Args>(&mut self, method: Method, path: &'static str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;
}

/// The routes. `/functions/new` comes before `/functions/{key}` so that it wins.
pub(crate) fn declare<S: RouteSink>(routes: &mut S) {
    use Access::{Callback, Public};
    use Method as M;
    const READ: Access = Access::Scope(Scope::Read);
    const TRIGGER: Access = Access::Scope(Scope::Trigger);
    const ADMIN: Access = Access::Scope(Scope::Admin);
    routes
        .add(M::GET, "/healthz", Public, api::health::healthz)
        .add(M::GET, "/static/{path:.*}", Public, assets::serve_static)
        .add(M::GET, "/login", Public, pages::login::form)
        .add(M::POST, "/login", Public, pages::login::sign_in)
        .add(M::POST, "/logout", READ, pages::login::sign_out)
        .add(M::GET, "/metrics", READ, api::metrics::metrics)
        // The JSON API.
        .add(M::GET, "/api/openapi.json", READ, api::openapi::serve)
        .add(M::GET, "/api/functions", READ, api::functions::list)
        .add(M::POST, "/api/functions", ADMIN, api::functions::create)
        .add(M::GET, "/api/functions/{key}", READ, api::functions::get)
        .add(M::PUT, "/api/functions/{key}", ADMIN, api::functions::replace)
        .add(M::DELETE, "/api/functions/{key}", ADMIN, api::functions::delete)
        .add(M::GET, "/api/executions", READ, api::executions::list)
        .add(M::POST, "/api/executions", TRIGGER, api::executions::trigger)
        .add(M::GET, "/api/executions/{id}", READ, api::executions::get)
        .add(M::POST, "/api/executions/{id}/cancel", TRIGGER, api::executions::cancel)
        .add(M::POST, "/api/executions/{id}/retry", TRIGGER, api::executions::retry)
        .add(M::POST, "/api/executions/{id}/continue", TRIGGER, api::executions::continue_session)
        .add(M::GET, "/api/executions/{id}/logs", READ, api::logs::read)
        .add(M::GET, "/api/executions/{id}/items", READ, api::items::list)
        .add(M::GET, "/api/executions/{id}/diff", READ, api::diff::get)
        .add(M::POST, "/api/executions/{id}/logs", Callback, api::callbacks::logs)
        .add(M::POST, "/api/executions/{id}/status", Callback, api::callbacks::status)
        .add(M::POST, "/api/executions/{id}/mcp", Callback, api::permission_tool::message)
        .add(M::GET, "/api/executions/{id}/mcp", Callback, api::permission_tool::stream)
        .add(M::GET, "/api/executions/{id}/logs/stream", READ, api::streams::logs)
        .add(M::GET, "/api/events", READ, api::events::list)
        .add(M::GET, "/api/events/stream", READ, api::streams::events)
        .add(M::GET, "/api/approvals", READ, api::approvals::list)
        .add(M::GET, "/api/approvals/{id}", READ, api::approvals::get)
        .add(M::POST, "/api/approvals/{id}", TRIGGER, api::approvals::decide)
        .add(M::GET, "/api/backends", READ, api::backends::list)
        .add(M::GET, "/api/instances", READ, api::instances::list)
        .add(M::GET, "/api/notifications/deliveries", READ, api::notifications::list)
        .add(M::GET, "/api/schedules", READ, api::schedules::list)
        .add(M::POST, "/api/schedules", ADMIN, api::schedules::create)
        .add(M::GET, "/api/schedules/{id}", READ, api::schedules::get)
        .add(M::PUT, "/api/schedules/{id}", ADMIN, api::schedules::replace)
        .add(M::DELETE, "/api/schedules/{id}", ADMIN, api::schedules::delete)
        // The MCP server (streamable HTTP, stateless: no stream of its own, no session to end, so GET and DELETE get
        // the API's 405).
        .add(M::POST, "/mcp", READ, mcp::serve)
        // Inbound webhooks: public, each delivery verified by its function's webhook secret.
        .add(M::POST, "/hooks/{function}", Public, api::hooks::deliver)
        // The pages and their form posts.
        .add(M::GET, "/", READ, pages::overview::show)
        .add(M::GET, "/functions", READ, pages::functions::list)
        .add(M::GET, "/schedules", READ, pages::schedules::list)
        .add(M::POST, "/functions", ADMIN, pages::function_form::create)
        .add(M::GET, "/functions/new", READ, pages::function_form::new)
        .add(M::GET, "/functions/{key}", READ, pages::functions::detail)
        .add(M::POST, "/functions/{key}", ADMIN, pages::function_form::update)
        .add(M::GET, "/functions/{key}/edit", READ, pages::function_form::edit)
        .add(M::POST, "/functions/{key}/edit", ADMIN, pages::function_form::update)
        .add(M::POST, "/functions/{key}/delete", ADMIN, pages::functions::delete)
        .add(M::POST, "/functions/{key}/trigger", TRIGGER, pages::functions::trigger)
        .add(M::GET, "/executions", READ, pages::executions::list)
        .add(M::POST, "/executions/bulk", TRIGGER, pages::bulk::apply)
        .add(M::GET, "/executions/{id}", READ, pages::executions::detail)
        .add(M::POST, "/executions/{id}/cancel", TRIGGER, pages::executions::cancel)
        .add(M::POST, "/executions/{id}/retry", TRIGGER, pages::executions::retry)
        .add(M::POST, "/executions/{id}/continue", TRIGGER, pages::sessions::continue_session)
        .add(M::GET, "/approvals", READ, pages::approvals::inbox)
        .add(M::POST, "/approvals/{id}", TRIGGER, pages::approvals::decide)
        .add(M::GET, "/activity", READ, pages::activity::show)
        .add(M::GET, "/notifications", READ, pages::notifications::list)
        .add(M::GET, "/backends", READ, pages::backends::show);
}

/// Collects the declarations without handlers.
struct Table(Vec<RouteInfo>);

impl RouteSink for Table {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, access: Access, _handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.0.push(RouteInfo { method, path, access });
        self
    }
}

/// Builds one actix resource per path, each route wrapped in its access check; an API path answers a method it does
/// not have with the JSON 405.
#[derive(Default)]
pub(crate) struct Router {
    resources: Vec<(&'static str, actix_web::Resource)>,
}

impl Router {
    /// Registers every resource, in declaration order.
    pub(crate) fn register(self, config: &mut web::ServiceConfig) {
        for (_, resource) in self.resources {
            config.service(resource);
        }
    }
}

impl RouteSink for Router {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let info = RouteInfo { method: method.clone(), path, access };
        let mut route = web::method(method).to(handler);
        match access {
            Access::Public => {}
            Access::Callback => route = route.wrap(actix_web::middleware::from_fn(auth::guard::callback)),
            Access::Scope(scope) => {
                let check = auth::guard::Check::new(scope, &info);
                route = route.wrap(actix_web::middleware::from_fn(move |request, next| {
                    auth::guard::require(check, request, next)
                }));
            }
        }
        let index = match self.resources.iter().position(|(existing, _)| *existing == path) {
            Some(index) => index,
            None => {
                let mut resource = web::resource(path);
                if info.is_api() {
                    resource = resource.default_service(web::to(api::method_not_allowed));
                }
                self.resources.push((path, resource));
                self.resources.len() - 1
            }
        };
        let (_, resource) = &mut self.resources[index];
        *resource = std::mem::replace(resource, web::resource(path)).route(route);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_declared_once_and_writes_need_more_than_read() {
        let table = table();
        for (index, route) in table.iter().enumerate() {
            assert!(
                !table[..index].iter().any(|other| other.method == route.method && other.path == route.path),
                "{} {} declared twice",
                route.method,
                route.path
            );
            let writes = route.method != Method::GET;
            // A webhook's delivery proves itself by its signature, which its handler checks.
            // The MCP server reads with `read`; each tool that changes something needs the scope the engine checks.
            let is_self_verified = route.path.starts_with("/hooks/") || route.path == "/mcp";
            if writes && route.path != "/logout" && route.path != "/login" && !is_self_verified {
                assert!(
                    matches!(route.access, Access::Callback | Access::Scope(Scope::Trigger | Scope::Admin)),
                    "{} {} changes something with only {:?}",
                    route.method,
                    route.path,
                    route.access
                );
            }
        }
    }
}
