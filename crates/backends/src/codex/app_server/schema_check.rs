//! Checks the messages the dashboard sends against the protocol of the installed Codex: the schema that
//! `codex app-server generate-json-schema` prints. Every method must be one the server knows and every field one
//! its params have, with an allowed value where the schema lists them, and every field the schema requires sent;
//! every answer to an approval request (each decision, the permission grant, a question's answers) must fit the
//! request's response. The answers, notifications and requests whose fields the dashboard reads (a resumed thread's
//! id, the thread's usage, an approval request's item and command, a question's id and text) are checked to carry
//! them. Without `codex` on `PATH` the test skips, saying why — unless `CI` and `DASHBOARD_REQUIRE_CODEX=1` are set,
//! where it fails.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::approvals::{self, every_response};
use super::protocol::every_message_sent;

/// The schema bundle of the installed Codex, or `None` (after saying why) when there is no `codex` to ask.
fn generated_schema(test: &str) -> Option<PathBuf> {
    let required = std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1")
        && std::env::var("DASHBOARD_REQUIRE_CODEX").is_ok_and(|value| value == "1");
    let out = std::env::temp_dir().join(format!("codex-schema-{}-{test}", std::process::id()));
    let generated = std::process::Command::new("codex")
        .args(["app-server", "generate-json-schema", "--out"])
        .arg(&out)
        .output();
    match generated {
        Ok(output) if output.status.success() => Some(out),
        Ok(output) => panic!(
            "`codex app-server generate-json-schema` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) if required => panic!("codex is required here (DASHBOARD_REQUIRE_CODEX=1) but: {error}"),
        Err(error) => {
            eprintln!(
                "skipped: the Codex CLI is not on PATH ({error}); npm install -g @openai/codex@0.169.0"
            );
            None
        }
    }
}

fn load(dir: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|error| panic!("{file}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"))
}

/// The schema `reference` (`#/definitions/Name`) points to in `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/definitions/");
            resolve(root, &root["definitions"][name])
        }
        None => schema,
    }
}

/// Whether `value` fits `schema` as far as the dashboard cares: every object member is a property the schema (or
/// one of its alternatives) has, every required member is there, every listed value is allowed, recursively.
fn fits(root: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    let schema = resolve(root, schema);
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let mut errors = Vec::new();
            for alternative in alternatives {
                match fits(root, alternative, value) {
                    Ok(()) => return Ok(()),
                    Err(error) => errors.push(error),
                }
            }
            // An alternative with no properties of its own (`oneOf` beside them) leaves the check to the rest.
            if schema.get("properties").is_none() {
                return Err(errors.join(" / "));
            }
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        return if allowed.contains(value) {
            Ok(())
        } else {
            Err(format!("{value} is not one of {allowed:?}"))
        };
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|name| is_of_type(name, value)) {
        return Err(format!("{value} is not of type {types:?}"));
    }
    match value {
        Value::Object(members) => {
            let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
            if let Some(missing) =
                required.filter_map(Value::as_str).find(|name| !members.contains_key(*name))
            {
                return Err(format!("no required field {missing:?}"));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            // A map's values (`additionalProperties` a schema) fit that schema; `true` lets any through.
            let others = schema.get("additionalProperties").filter(|others| others.is_object());
            for (name, member) in members {
                let property = properties.and_then(|properties| properties.get(name)).or(others);
                let Some(property) = property else {
                    return Err(format!("no field {name:?}"));
                };
                fits(root, property, member).map_err(|error| format!("{name}: {error}"))?;
            }
            Ok(())
        }
        Value::Array(elements) => match schema.get("items") {
            Some(items) => elements.iter().try_for_each(|element| fits(root, items, element)),
            None => Err("not an array".into()),
        },
        _ => Ok(()),
    }
}

fn is_of_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

/// The params schema of `method` in a bundle of requests or notifications (`ClientRequest.json`, …).
fn params_of<'a>(bundle: &'a Value, method: &str) -> Option<&'a Value> {
    bundle["oneOf"].as_array()?.iter().find_map(|variant| {
        let methods = variant["properties"]["method"]["enum"].as_array()?;
        methods.contains(&json!(method)).then(|| variant["properties"].get("params").unwrap_or(&Value::Null))
    })
}

#[test]
fn every_message_sent_is_in_the_installed_protocol() {
    let Some(dir) = generated_schema("sent") else { return };
    let requests = load(&dir, "ClientRequest.json");
    let notifications = load(&dir, "ClientNotification.json");
    for (method, params) in every_message_sent() {
        let (bundle, schema) = match params_of(&requests, method) {
            Some(schema) => (&requests, schema),
            None => match params_of(&notifications, method) {
                Some(schema) => (&notifications, schema),
                None => panic!("the installed Codex has no method {method}"),
            },
        };
        if let Err(error) = fits(bundle, schema, &params) {
            panic!("{method}: {error} ({params})");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_answer_to_a_server_request_is_in_the_installed_protocol() {
    let Some(dir) = generated_schema("answers") else { return };
    let requests = load(&dir, "ServerRequest.json");
    let response_of = |method: &str| match method {
        approvals::COMMAND_APPROVAL => "CommandExecutionRequestApprovalResponse.json",
        approvals::FILE_CHANGE_APPROVAL => "FileChangeRequestApprovalResponse.json",
        approvals::PERMISSIONS_APPROVAL => "PermissionsRequestApprovalResponse.json",
        approvals::QUESTION => "ToolRequestUserInputResponse.json",
        approvals::LEGACY_COMMAND_APPROVAL => "ExecCommandApprovalResponse.json",
        approvals::LEGACY_PATCH_APPROVAL => "ApplyPatchApprovalResponse.json",
        other => panic!("no response schema known for {other}"),
    };
    for (method, answer) in every_response() {
        assert!(params_of(&requests, method).is_some(), "the installed Codex makes no request {method}");
        let schema = load(&dir, response_of(method));
        if let Err(error) = fits(&schema, &schema, &answer) {
            panic!("{method}: {error} ({answer})");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `path` (property names, from `schema`) is a property the schema requires at every step.
fn requires(root: &Value, schema: &Value, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else { return true };
    let schema = resolve(root, schema);
    let is_required = schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|required| required.contains(&json!(first)));
    is_required && schema["properties"].get(*first).is_some_and(|property| requires(root, property, rest))
}

#[test]
fn what_the_dashboard_reads_is_always_sent_by_the_installed_codex() {
    let Some(dir) = generated_schema("read") else { return };
    let resumed = load(&dir, "v2/ThreadResumeResponse.json");
    assert!(requires(&resumed, &resumed, &["thread", "id"]), "thread/resume's answer names its thread");
    let usage = load(&dir, "v2/ThreadTokenUsageUpdatedNotification.json");
    for path in [["tokenUsage", "total"], ["tokenUsage", "last"]] {
        assert!(requires(&usage, &usage, &path), "thread/tokenUsage/updated has {path:?}");
    }
    assert!(requires(&usage, &usage, &["turnId"]), "thread/tokenUsage/updated names its turn");
    for (file, path) in [
        ("CommandExecutionRequestApprovalParams.json", ["itemId"].as_slice()),
        ("FileChangeRequestApprovalParams.json", &["itemId"]),
        ("PermissionsRequestApprovalParams.json", &["itemId"]),
        ("PermissionsRequestApprovalParams.json", &["permissions"]),
        ("ToolRequestUserInputParams.json", &["itemId"]),
        ("ToolRequestUserInputParams.json", &["questions"]),
        ("ExecCommandApprovalParams.json", &["command"]),
        ("ApplyPatchApprovalParams.json", &["fileChanges"]),
        ("v2/ServerRequestResolvedNotification.json", &["requestId"]),
    ] {
        let schema = load(&dir, file);
        assert!(requires(&schema, &schema, path), "{file} has {path:?}");
    }
    let command = load(&dir, "CommandExecutionRequestApprovalParams.json");
    for field in ["command", "cwd", "reason", "kind", "networkApprovalContext"] {
        assert!(command["properties"].get(field).is_some(), "a command approval request may have {field:?}");
    }
    let question = load(&dir, "ToolRequestUserInputParams.json");
    let question = &question["definitions"]["ToolRequestUserInputQuestion"];
    for field in ["id", "question"] {
        assert!(requires(question, question, &[field]), "a question has {field:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The check itself, on a schema small enough to read: it must catch an unknown field and a value not allowed.
#[test]
fn the_check_finds_unknown_fields_and_values() {
    let root = json!({"definitions": {
        "Mode": {"enum": ["a", "b"], "type": "string"},
        "Params": {"properties": {"mode": {"anyOf": [{"$ref": "#/definitions/Mode"}, {"type": "null"}]},
                                  "list": {"items": {"properties": {"x": {"type": "string"}}, "required": ["x"]},
                                           "type": "array"}}}
    }});
    let schema = json!({"$ref": "#/definitions/Params"});
    let check = |value: Value| fits(&root, &schema, &value);
    assert_eq!(check(json!({"mode": "a", "list": [{"x": "1"}]})), Ok(()));
    assert!(check(json!({"mood": "a"})).is_err());
    assert!(check(json!({"mode": "c"})).is_err());
    assert!(check(json!({"list": [{"y": "1"}]})).is_err());
    assert!(check(json!({"list": [{}]})).is_err(), "a required field missing");
    let map = json!({"properties": {"answers": {"additionalProperties": {"$ref": "#/definitions/Answer"},
                                                "type": "object"}},
                     "definitions": {"Answer": {"properties": {"answers": {"items": {"type": "string"},
                                                                           "type": "array"}},
                                                "required": ["answers"]}}});
    assert_eq!(fits(&map, &map, &json!({"answers": {"q": {"answers": ["a"]}}})), Ok(()));
    assert!(fits(&map, &map, &json!({"answers": {"q": ["a"]}})).is_err(), "a map's values fit its schema");
}
