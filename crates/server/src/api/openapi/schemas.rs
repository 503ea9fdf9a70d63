//! The schemas of the document: derived from the Rust types the handlers read and write (utoipa's `ToSchema`), and
//! the wrappers the handlers build with `json!` (or that another crate defines), composed of those types.

use dashboard_core::{Event, Execution, ExecutionId, Function, FunctionSpec, LogLine};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::to_json;
use crate::api::backends::BackendView;
use crate::api::callbacks::{LogsBody, StatusBody};
use crate::api::executions::TriggerBody;

/// The schemas of answers whose every field is always sent.
const ANSWERS: &[&str] = &[
    "Function",
    "Execution",
    "LogLine",
    "Event",
    "Backend",
    "FunctionList",
    "ExecutionPage",
    "LogsPage",
    "LogsReceived",
    "EventsPage",
    "BackendList",
];

/// Every schema the operations name, with the schemas those refer to.
pub(super) fn schemas(backends: &[String]) -> Map<String, Value> {
    let mut found: Vec<(String, RefOr<Schema>)> = Vec::new();
    collect::<Function>(&mut found);
    collect::<FunctionSpec>(&mut found);
    collect::<FunctionList>(&mut found);
    collect::<Execution>(&mut found);
    collect::<ExecutionPage>(&mut found);
    collect::<TriggerBody>(&mut found);
    collect::<LogsPage>(&mut found);
    collect::<LogsBody>(&mut found);
    collect::<LogsReceived>(&mut found);
    collect::<StatusBody>(&mut found);
    collect::<EventsPage>(&mut found);
    collect::<BackendList>(&mut found);
    collect::<ErrorBody>(&mut found);
    collect::<Health>(&mut found);
    let mut schemas: Map<String, Value> =
        found.iter().map(|(name, schema)| (name.clone(), to_json(schema))).collect();
    // Answers are exact: every field is always sent (`null` when empty), and none other is.
    for name in ANSWERS {
        if let Some(Value::Object(schema)) = schemas.get_mut(*name) {
            let fields: Vec<Value> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map_or_else(Vec::new, |properties| properties.keys().map(|field| json!(field)).collect());
            schema.insert("required".to_owned(), Value::Array(fields));
            schema.insert("additionalProperties".to_owned(), json!(false));
        }
    }
    for name in ["ErrorBody", "ErrorDetail", "Health"] {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            schema.insert("additionalProperties".to_owned(), json!(false));
        }
    }
    // A tag is 1 to 64 characters, not all blank (`FunctionSpec::validate`); utoipa has no attribute for the items of
    // a list.
    if let Some(items) =
        schemas.get_mut("FunctionSpec").and_then(|spec| spec.pointer_mut("/properties/tags/items"))
    {
        items["minLength"] = json!(1);
        items["maxLength"] = json!(64);
        items["pattern"] = json!("\\S");
    }
    // A replace is a whole function spec plus an optional `expected_version`, which the handler takes out first.
    let mut replace = schemas.get("FunctionSpec").cloned().unwrap_or_else(|| json!({"type": "object"}));
    replace["description"] =
        json!("A whole function spec, plus an optional `expected_version` (409 on mismatch).");
    replace["properties"]["expected_version"] = json!({
        "type": ["integer", "null"], "minimum": 0, "maximum": u32::MAX,
        "description": "The version the client last saw; the replace is refused with 409 if it is not current.",
    });
    schemas.insert("FunctionReplace".to_owned(), replace);
    // A request names a configured backend: the ones this server has.
    for (schema, nullable) in [("FunctionSpec", false), ("FunctionReplace", false), ("TriggerBody", true)] {
        if let Some(property) =
            schemas.get_mut(schema).and_then(|schema| schema.pointer_mut("/properties/backend"))
        {
            let mut names: Vec<Value> = backends.iter().map(|name| json!(name)).collect();
            if nullable {
                names.push(Value::Null);
            }
            property["enum"] = Value::Array(names);
        }
    }
    schemas
}

fn collect<T: ToSchema>(found: &mut Vec<(String, RefOr<Schema>)>) {
    let name = T::name().into_owned();
    if !found.iter().any(|(known, _)| *known == name) {
        found.push((name, T::schema()));
    }
    let mut dependencies = Vec::new();
    T::schemas(&mut dependencies);
    for (name, schema) in dependencies {
        if !found.iter().any(|(known, _)| *known == name) {
            found.push((name, schema));
        }
    }
}

// The wrappers the handlers build with `json!` (or that another crate defines): described here by composition of
// the derived types. The OpenAPI test checks real answers against them, which keeps them honest.

/// `GET /api/functions`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct FunctionList {
    /// Sorted by name.
    items: Vec<Function>,
}

/// `GET /api/executions`: `dashboard_store::ExecutionPage`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct ExecutionPage {
    /// Newest first.
    items: Vec<Execution>,
    /// The `before` of the next page; null on the last one.
    next_cursor: Option<ExecutionId>,
}

/// `GET /api/executions/{id}/logs`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct LogsPage {
    /// In seq order.
    items: Vec<LogLine>,
    /// The `after` of the next request.
    next_after: u64,
    /// Whether the execution has ended and this answer holds its last line.
    finished: bool,
}

/// `POST /api/executions/{id}/logs`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct LogsReceived {
    /// The seq of the last line stored.
    last_seq: u64,
}

/// `GET /api/events`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct EventsPage {
    /// Oldest first.
    items: Vec<Event>,
    /// The `after` of the next request.
    next_after: u64,
}

/// `GET /api/backends`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct BackendList {
    /// Sorted by name.
    items: Vec<BackendView>,
}

/// Every error answer of the API (`crate::error::ApiError`).
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// The error itself.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct ErrorDetail {
    /// A stable kebab-case code clients can branch on.
    #[schema(pattern = "^[a-z]+(-[a-z]+)*$")]
    code: String,
    /// One clear sentence.
    message: String,
    /// Structured details (the field, the path, the current status…); absent when there are none.
    details: Option<Value>,
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)] // Described, never built.
struct Health {
    /// `ok` or `unavailable`.
    status: String,
    /// Why it is unavailable.
    detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_named_as_exact_exists() {
        let schemas = schemas(&["demo".to_owned()]);
        for name in ANSWERS {
            assert_eq!(schemas[*name]["additionalProperties"], json!(false), "{name}");
        }
        assert_eq!(schemas["FunctionSpec"]["properties"]["backend"]["enum"], json!(["demo"]));
        assert_eq!(schemas["TriggerBody"]["properties"]["backend"]["enum"], json!(["demo", null]));
        assert!(schemas["FunctionReplace"]["properties"]["expected_version"].is_object());
    }
}
