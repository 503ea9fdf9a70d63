//! The floor under `api`, `pages` and `auth`: what all three use — who the caller is, the execution id in a path,
//! what the route table says of a route, how a backend is shown, and what every HTML answer needs. Nothing here imports those three.

mod backend_view;
mod caller;
pub(crate) mod html;
mod ids;
pub(crate) mod route_info;

pub(crate) use backend_view::BackendView;
pub(crate) use caller::{Caller, Via};
pub(crate) use ids::{parse_approval_id, parse_execution_id};
