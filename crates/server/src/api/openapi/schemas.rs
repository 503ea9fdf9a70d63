//! The schemas of the document: derived from the Rust types the handlers read and write (utoipa's `ToSchema`), the
//! answers' wrappers included, so the document describes what is really sent.

use dashboard_core::{Approval, Execution, Function, FunctionSpec, Schedule, ScheduleSpec, Usage};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::to_json;
use crate::api::approvals::{ApprovalList, DecideBody, StatusFilter};
use crate::api::backends::BackendList;
use crate::api::callbacks::{LogsBody, LogsReceived, StatusBody};
use crate::api::events::EventsPage;
use crate::api::executions::{ContinueBody, ExecutionPage, TriggerBody};
use crate::api::functions::FunctionList;
use crate::api::health::Health;
use crate::api::instances::InstanceList;
use crate::api::items::ItemsPage;
use crate::api::logs::LogsPage;
use crate::api::notifications::DeliveryPage;
use crate::api::schedules::ScheduleList;
use crate::error::{ErrorBody, ErrorCode};

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
    "ItemsPage",
    "LogsReceived",
    "EventsPage",
    "BackendList",
    "Approval",
    "ApprovalList",
    "InstanceList",
    "InstanceView",
    "Delivery",
    "DeliveryPage",
    "Schedule",
    "ScheduleList",
];

/// Every schema the operations name, with the schemas those refer to.
pub(super) fn schemas(backends: &[String]) -> Map<String, Value> {
    let mut found: Vec<(String, RefOr<Schema>)> = Vec::new();
    collect::<Function>(&mut found);
    collect::<FunctionSpec>(&mut found);
    collect::<FunctionList>(&mut found);
    collect::<Schedule>(&mut found);
    collect::<ScheduleSpec>(&mut found);
    collect::<ScheduleList>(&mut found);
    collect::<Execution>(&mut found);
    collect::<Usage>(&mut found);
    collect::<ExecutionPage>(&mut found);
    collect::<TriggerBody>(&mut found);
    collect::<ContinueBody>(&mut found);
    collect::<LogsPage>(&mut found);
    collect::<ItemsPage>(&mut found);
    collect::<LogsBody>(&mut found);
    collect::<LogsReceived>(&mut found);
    collect::<StatusBody>(&mut found);
    collect::<EventsPage>(&mut found);
    collect::<BackendList>(&mut found);
    collect::<Approval>(&mut found);
    collect::<ApprovalList>(&mut found);
    collect::<DecideBody>(&mut found);
    collect::<StatusFilter>(&mut found);
    collect::<ErrorBody<'static>>(&mut found);
    collect::<Health>(&mut found);
    collect::<InstanceList>(&mut found);
    collect::<DeliveryPage>(&mut found);
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
    // The error codes are a closed set: the table of `ErrorCode`, each described.
    if let Some(code) =
        schemas.get_mut("ErrorDetail").and_then(|detail| detail.pointer_mut("/properties/code"))
    {
        code["enum"] = ErrorCode::ALL.iter().map(|code| json!(code.as_str())).collect();
        let rows: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|code| format!("- `{code}` ({}): {}", code.status().as_u16(), code.description()))
            .collect();
        code["description"] =
            json!(format!("A stable kebab-case code clients can branch on:\n{}", rows.join("\n")));
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
    // The budgets' upper bounds (`FunctionSpec::validate`), which utoipa's attributes on the core type leave out.
    for (field, maximum) in [
        ("max_cost_usd", json!(1_000_000)),
        ("daily_cost_usd", json!(1_000_000)),
        ("daily_tokens", json!(i64::MAX)),
    ] {
        if let Some(property) =
            schemas.get_mut("FunctionSpec").and_then(|spec| spec.pointer_mut(&format!("/properties/{field}")))
        {
            property["maximum"] = maximum;
        }
    }
    // An execution's usage is stored in the one shape (`Usage`), whatever its backend reported; the shape stays open
    // (a usage stored before it, by an older version, has other names), and `raw` is the backend's report as it came,
    // any JSON.
    if let Some(usage) = schemas.get_mut("Usage") {
        usage["properties"]["raw"] =
            json!({"description": "What the backend reported, as it reported it (any JSON)."});
        usage["properties"]["cost_usd"]["minimum"] = json!(0);
    }
    if let Some(property) =
        schemas.get_mut("Execution").and_then(|execution| execution.pointer_mut("/properties/usage"))
    {
        *property = json!({
            "description": "What the run spent, in the one shape every backend's report is read into (tokens by \
                kind, `cost_usd`, `model`, `raw`), once its backend reported usage.",
            "anyOf": [{"$ref": "#/components/schemas/Usage"}, {"type": "null"}],
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_is_one_of_the_table() {
        let schemas = schemas(&["demo".to_owned()]);
        let codes = schemas["ErrorDetail"]["properties"]["code"]["enum"].as_array().expect("an enum").clone();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert!(
            codes.contains(&json!("not-found")) && codes.contains(&json!("store-unavailable")),
            "{codes:?}"
        );
    }

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

    #[test]
    fn functions_describe_their_budgets_and_executions_their_usage() {
        let schemas = schemas(&["demo".to_owned()]);
        for schema in ["FunctionSpec", "FunctionReplace", "Function"] {
            for field in ["max_cost_usd", "daily_cost_usd", "daily_tokens"] {
                assert!(schemas[schema]["properties"][field].is_object(), "{schema}.{field}");
            }
        }
        let spec = &schemas["FunctionSpec"]["properties"];
        assert_eq!(
            (&spec["max_cost_usd"]["exclusiveMinimum"], &spec["max_cost_usd"]["maximum"]),
            (&json!(0), &json!(1_000_000))
        );
        assert_eq!(spec["daily_tokens"]["minimum"], json!(1));
        assert_eq!(
            schemas["Execution"]["properties"]["usage"]["anyOf"][0]["$ref"],
            json!("#/components/schemas/Usage")
        );
        assert!(schemas["Usage"]["properties"]["cost_usd"].is_object());
    }
}
