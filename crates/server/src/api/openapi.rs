//! `GET /api/openapi.json`: the OpenAPI document of the JSON API, generated from the route table and the types.

use actix_web::HttpResponse;
use serde_json::json;

/// The document (a first outline: the paths of the route table).
pub(crate) async fn serve() -> HttpResponse {
    let mut paths = serde_json::Map::new();
    for route in crate::routes::table().into_iter().filter(|route| route.path.starts_with("/api/")) {
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] =
            json!({"responses": {"default": {"description": "see docs/api.md"}}});
    }
    HttpResponse::Ok().json(json!({
        "openapi": "3.1.0",
        "info": {"title": "Agent Dashboard", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
    }))
}
