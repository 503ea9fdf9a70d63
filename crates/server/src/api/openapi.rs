//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the JSON API, made so that it cannot drift from the code.
//! Its paths are the route table's ([`crate::routes::table`]); each operation is described once, in
//! [`operations`](operations) (a test fails when a route has no description or a description no route); its schemas
//! are derived from the Rust types the handlers read and write (utoipa's `ToSchema` and `IntoParams`); and the errors
//! every route can answer follow from its place in the table (its access, its path parameters, its body).

mod operations;
mod schemas;

use actix_web::HttpResponse;
use actix_web::http::Method;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

use crate::routes::{Access, RouteInfo};
use crate::state::State;

use operations::operations;
use schemas::schemas;

/// The document of this server: its request bodies may name only the backends it has.
pub(crate) async fn serve(state: State) -> HttpResponse {
    let backends = state.dashboard.backends().names();
    HttpResponse::Ok().json(document(&backends))
}

/// The whole document: every API route of the table, with its description. `backends` are the names of the
/// configured backends, the only ones a request body may name.
pub(crate) fn document(backends: &[String]) -> Value {
    let descriptions = operations();
    let mut paths = Map::new();
    for route in crate::routes::table().iter().filter(|route| route.is_api()) {
        let operation = match descriptions.iter().find(|operation| operation.is_for(route)) {
            Some(operation) => operation.to_json(route),
            // The tests keep this from happening; should it, the route is still listed rather than hidden.
            None => json!({"responses": {"default": {"description": "not described yet"}}}),
        };
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Agent Dashboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON API of Agent Dashboard, a self-hosted control plane for AI agents. With auth \
                on (`DASHBOARD_AUTH_TOKEN` or `[[auth.tokens]]`), every route but `/healthz` needs a bearer token \
                with the scope it names; the callback routes take only the execution's own callback token. Errors \
                are always `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(backends),
            "responses": error_responses(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user's token (`DASHBOARD_AUTH_TOKEN` or one of `[[auth.tokens]]`); its scope \
                        (`read`, `trigger`, `admin`) decides what it may do. Not needed while auth is off. A \
                        browser signed in through `/login` sends its session cookie instead, and then needs the \
                        `X-CSRF-Token` header on writes.",
                },
                "callbackToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The callback token a remote backend received with its execution; it works for \
                        that execution's callback routes only.",
                },
            },
        },
    });
    unsigned_bounds(&mut document);
    document
}

/// The description of one operation: what the route does and answers beyond what its place in the table implies.
struct Operation {
    method: Method,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    parameters: Vec<Value>,
    body: Option<Value>,
    answers: Vec<(u16, Value)>,
    errors: Vec<u16>,
}

fn operation(method: Method, path: &'static str, id: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        id,
        summary,
        parameters: Vec::new(),
        body: None,
        answers: Vec::new(),
        errors: Vec::new(),
    }
}

impl Operation {
    fn is_for(&self, route: &RouteInfo) -> bool {
        self.method == route.method && self.path == route.path
    }

    /// The query parameters of `T`, the struct the handler reads the query into.
    fn query<T: IntoParams>(mut self) -> Self {
        for parameter in T::into_params(|| Some(ParameterIn::Query)) {
            let mut parameter = to_json(&parameter);
            without_null(&mut parameter["schema"]);
            self.parameters.push(parameter);
        }
        self
    }

    fn header(mut self, name: &str, description: &str) -> Self {
        self.parameters.push(json!({
            "name": name, "in": "header", "required": false, "description": description, "schema": {"type": "string"},
        }));
        self
    }

    /// A JSON body of the schema `name` in the components.
    fn body(mut self, name: &str) -> Self {
        self.body =
            Some(json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}}));
        self
    }

    /// A JSON body of any shape (a webhook's payload).
    fn any_body(mut self, description: &str) -> Self {
        self.body = Some(json!({
            "required": true, "description": description, "content": {"application/json": {"schema": {}}},
        }));
        self
    }

    /// A JSON answer of the schema `name`; `None` for an answer without a body.
    fn answer(self, status: u16, description: &str, name: Option<&str>) -> Self {
        let content = name.map(|name| json!({"application/json": {"schema": schema_ref(name)}}));
        self.answer_with(status, description, content)
    }

    fn answer_with(mut self, status: u16, description: &str, content: Option<Value>) -> Self {
        let mut answer = json!({"description": description});
        if let Some(content) = content {
            answer["content"] = content;
        }
        self.answers.push((status, answer));
        self
    }

    /// Adds a `Location` header to the answer with `status`.
    fn location(mut self, status: u16) -> Self {
        if let Some((_, answer)) = self.answers.iter_mut().find(|(answered, _)| *answered == status) {
            answer["headers"] = json!({"Location": {
                "description": "The URL of the resource.", "schema": {"type": "string"},
            }});
        }
        self
    }

    /// Links from the answer with `status` to the operations that take one of its fields as their path parameter:
    /// `(operation id, parameter, field)`. Clients and fuzzers follow them from a created resource to its routes.
    fn links(mut self, status: u16, targets: &[(&str, &str, &str)]) -> Self {
        if let Some((_, answer)) = self.answers.iter_mut().find(|(answered, _)| *answered == status) {
            for (operation_id, parameter, field) in targets {
                answer["links"][*operation_id] = json!({
                    "operationId": operation_id,
                    "parameters": {*parameter: format!("$response.body#/{field}")},
                });
            }
        }
        self
    }

    /// Error answers particular to this operation.
    fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }

    fn to_json(&self, route: &RouteInfo) -> Value {
        let mut errors = self.errors.clone();
        let (security, who) = match route.access {
            Access::Public if route.path.starts_with("/hooks/") => {
                errors.push(403);
                let who = "Needs no token: the delivery is verified with the function's webhook secret \
                    (`[functions.webhook]`: Standard Webhooks, GitHub's signature or a bearer token).";
                (json!([]), who.to_owned())
            }
            Access::Public => {
                // With auth off, a request for another Host is refused everywhere (DNS rebinding).
                errors.push(403);
                (json!([]), "Open to anyone, also with auth on.".to_owned())
            }
            Access::Callback => {
                errors.extend([401, 403]);
                (json!([{"callbackToken": []}]), "Only the execution's callback token works here.".to_owned())
            }
            Access::Scope(scope) => {
                errors.extend([401, 403]);
                let who =
                    format!("Needs a token with the `{scope}` scope (or any caller while auth is off).");
                (json!([{"bearerAuth": []}]), who)
            }
        };
        if route.path.contains('{') {
            errors.push(404);
        }
        if self.body.is_some() {
            errors.extend([400, 413, 415, 422]);
        }
        if self.parameters.iter().any(|parameter| parameter["in"] != "path") {
            errors.push(400);
        }
        if route.path.starts_with("/api/") {
            errors.push(503);
        }
        errors.sort_unstable();
        errors.dedup();
        let mut responses = Map::new();
        for (status, answer) in &self.answers {
            responses.insert(status.to_string(), answer.clone());
        }
        for status in errors {
            // An answer the operation describes itself (the MCP server's) stands.
            if let Some((_, name, _)) = ERRORS.iter().find(|(known, _, _)| *known == status) {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
            }
        }
        let mut parameters = path_parameters(route.path);
        parameters.extend(self.parameters.iter().cloned());
        let tag = match route.access {
            Access::Callback => "callbacks",
            _ if route.path.starts_with("/hooks/") => "webhooks",
            _ => route.path.strip_prefix("/api/").and_then(|rest| rest.split('/').next()).unwrap_or("meta"),
        };
        let mut operation = json!({
            "operationId": self.id,
            "summary": self.summary,
            "description": who,
            "tags": [if tag == "openapi.json" { "meta" } else { tag }],
            "security": security,
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = &self.body {
            operation["requestBody"] = body.clone();
        }
        operation
    }
}

/// The `{name}` segments of a path, each a required string.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = match name {
                "key" => "The function's id or name.",
                "function" => "The name of a function with a webhook (`[functions.webhook]` in the config file).",
                "id" if path.starts_with("/api/approvals/") => "The approval's id.",
                "id" => "The execution's id.",
                _ => "",
            };
            let schema = json!({"type": "string"});
            json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
        })
        .collect()
}
/// utoipa writes `u32` and `u64` as `int32` and `int64` with a `minimum` of 0 (or more), which validators and fuzzers
/// read as the signed ranges: this gives them their real upper bound instead. (The API has no signed integers.)
fn unsigned_bounds(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let maximum = match (fields.get("format").and_then(Value::as_str), fields.get("minimum")) {
                (Some("int32"), Some(minimum)) if minimum.as_u64().is_some() => Some(json!(u32::MAX)),
                (Some("int64"), Some(minimum)) if minimum.as_u64().is_some() => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(maximum) = maximum {
                fields.remove("format");
                fields.entry("maximum").or_insert(maximum);
            }
            fields.values_mut().for_each(unsigned_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_bounds),
        _ => {}
    }
}

/// Takes `null` out of a query parameter's schema: an absent parameter is `None`, and a query has no null to send.
fn without_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|name| name != "null");
        if let [only] = types.as_slice() {
            schema["type"] = only.clone();
        }
    }
    let inner = schema.get("oneOf").and_then(Value::as_array).and_then(|choices| match choices.as_slice() {
        [inner, null] | [null, inner] if null == &json!({"type": "null"}) => Some(inner.clone()),
        _ => None,
    });
    if let Some(inner) = inner {
        *schema = inner;
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("utoipa's OpenAPI types serialize to JSON")
}

/// The error answers, each with the codes it carries.
const ERRORS: [(u16, &str, &str); 10] = [
    (
        400,
        "BadRequest",
        "The body is not valid JSON or cannot be read (`malformed-json`, `bad-body`), or a query parameter \
         (`invalid-query`) or a header (`invalid-header`) cannot be understood.",
    ),
    (
        401,
        "Unauthorized",
        "No credentials, or wrong ones; a webhook delivery whose signature or token does not verify, or whose \
         timestamp is too old (`unauthorized`).",
    ),
    (
        403,
        "Forbidden",
        "The token's scope or backends do not allow this, a callback token of another execution, a cross-site \
         write, or (with auth off) a Host that is not this server's (`forbidden`, `cross-site-request`, \
         `csrf-token-missing`, `host-not-allowed`).",
    ),
    (
        404,
        "NotFound",
        "No such function, execution or approval, or no webhook for that function (`not-found`; `details.entity`, \
         `details.key`).",
    ),
    (
        409,
        "Conflict",
        "A duplicate name, a version mismatch, a finished or unfinished execution, or an idempotency key reused \
         with another request, or an approval decided already (`duplicate-name`, `version-mismatch`, \
         `execution-finished`, `execution-not-finished`, `idempotency-key-reused`, `illegal-transition`, \
         `status-changed`, `approval-decided`).",
    ),
    (413, "BodyTooLarge", "The body is over `DASHBOARD_MAX_BODY_BYTES` (`body-too-large`)."),
    (415, "UnsupportedMediaType", "The body is not sent as JSON (`unsupported-media-type`)."),
    (
        429,
        "BudgetExhausted",
        "A daily budget of the function or the token is spent (`budget-exhausted`; `details.budget`, \
         `details.spent`, `details.limit`).",
    ),
    (
        422,
        "Unprocessable",
        "Valid JSON that breaks a rule: an unknown, missing or invalid field, or an input the function's schema \
         refuses (`unknown-field`, `missing-field`, `invalid-field`, `invalid-input`; `details.field`).",
    ),
    (
        503,
        "Unavailable",
        "The server is stopping, its store does not answer, or too many streams are open (`shutting-down`, \
         `store-unavailable`, `too-many-streams`).",
    ),
];

fn error_responses() -> Map<String, Value> {
    ERRORS
        .iter()
        .map(|(_, name, description)| {
            let content = json!({"application/json": {"schema": schema_ref("ErrorBody")}});
            let answer = json!({"description": description, "content": content});
            ((*name).to_owned(), answer)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_described_and_every_description_has_a_route() {
        let table = crate::routes::table();
        let routes: Vec<&RouteInfo> = table.iter().filter(|route| route.is_api()).collect();
        let descriptions = operations();
        for route in &routes {
            let count = descriptions.iter().filter(|operation| operation.is_for(route)).count();
            assert_eq!(count, 1, "{} {} needs one description in api/openapi.rs", route.method, route.path);
        }
        for operation in &descriptions {
            assert!(
                routes.iter().any(|route| operation.is_for(route)),
                "{} {} is described in api/openapi.rs but is no API route of routes.rs",
                operation.method,
                operation.path
            );
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let descriptions = operations();
        for (index, operation) in descriptions.iter().enumerate() {
            assert!(
                !descriptions[..index].iter().any(|other| other.id == operation.id),
                "{} twice",
                operation.id
            );
        }
    }

    /// Every `$ref` of the document names something in its components.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, document: &Value, at: &str) {
            match value {
                Value::Object(fields) => {
                    if let Some(Value::String(target)) = fields.get("$ref") {
                        let pointer = target.strip_prefix('#').unwrap_or(target);
                        assert!(document.pointer(pointer).is_some(), "{at}: {target} resolves to nothing");
                    }
                    for (name, field) in fields {
                        walk(field, document, &format!("{at}/{name}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| walk(item, document, at)),
                _ => {}
            }
        }
        let document = document(&["demo".to_owned()]);
        walk(&document, &document, "");
    }

    #[test]
    fn links_lead_to_operations_with_that_parameter() {
        use operations::{APPROVAL_LINKS, EXECUTION_LINKS, FUNCTION_LINKS};
        let descriptions = operations();
        for targets in [FUNCTION_LINKS, EXECUTION_LINKS, APPROVAL_LINKS] {
            for (operation_id, parameter, _) in targets {
                let target = descriptions.iter().find(|operation| operation.id == *operation_id);
                let target =
                    target.unwrap_or_else(|| panic!("a link to {operation_id}, which is not described"));
                assert!(
                    target.path.contains(&format!("{{{parameter}}}")),
                    "{operation_id} has no {parameter}"
                );
            }
        }
    }

    #[test]
    fn unsigned_integers_have_their_real_range() {
        let document = document(&["demo".to_owned()]);
        let seq = &document["components"]["schemas"]["LogLine"]["properties"]["seq"];
        assert_eq!(
            (&seq["minimum"], &seq["maximum"], &seq["format"]),
            (&json!(0), &json!(u64::MAX), &Value::Null)
        );
        let limit = &document["paths"]["/api/executions"]["get"]["parameters"][4];
        assert_eq!((&limit["name"], &limit["schema"]["maximum"]), (&json!("limit"), &json!(500)));
    }

    #[test]
    fn writes_need_a_token_and_the_health_check_does_not() {
        let document = document(&["demo".to_owned()]);
        assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
        assert_eq!(document["paths"]["/api/functions"]["post"]["security"], json!([{"bearerAuth": []}]));
        assert_eq!(
            document["paths"]["/api/executions/{id}/status"]["post"]["security"],
            json!([{"callbackToken": []}])
        );
    }
}
