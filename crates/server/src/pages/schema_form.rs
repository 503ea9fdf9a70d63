//! The trigger form generated from a function's input schema: the fields it shows (server-rendered, so it works
//! without JavaScript) and the JSON input assembled from what was posted.
//!
//! Each property of the schema becomes one field named `input.<name>` (`input.<parent>.<child>` one level down),
//! the same path the engine names when the input breaks the schema, so its errors land beside the right field.
//! Kinds: string → text, number and integer → number inputs, boolean → checkbox, `enum` → select, array of strings
//! → a textarea with one item per line, object → a fieldset of its own fields; anything else (and anything deeper)
//! → a small JSON textarea for that property alone.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// One field of the generated form, as the template shows it.
#[derive(Debug, Serialize)]
pub(super) struct SchemaField {
    /// The form field's name: `input.steps`, `input.repo.url`.
    name: String,
    label: String,
    /// `string`, `number`, `integer`, `boolean`, `enum`, `array`, `object` or `json`.
    kind: &'static str,
    is_required: bool,
    description: String,
    /// What the field shows: the posted text, else the default.
    value: String,
    is_checked: bool,
    options: Vec<EnumOption>,
    children: Vec<SchemaField>,
    error: Option<String>,
}

/// A choice of an `enum` field: the text shown and posted, and the JSON value it stands for (which the script
/// puts in the raw JSON when the user switches to it).
#[derive(Debug, Serialize)]
struct EnumOption {
    text: String,
    json: String,
}

/// The posted form: field name → text (a checkbox that is not ticked is absent).
pub(super) type Posted = HashMap<String, String>;

/// The fields of `schema`, filled from `posted` when given (a form shown again) or else from the defaults. `None`
/// when the schema lists no properties: the raw JSON textarea is then the whole form.
pub(super) fn fields(schema: &Value, posted: Option<&Posted>, errors: &Posted) -> Option<Vec<SchemaField>> {
    let properties = schema.get("properties")?.as_object().filter(|properties| !properties.is_empty())?;
    Some(object_fields(schema, properties, "input", posted, errors, true))
}

fn object_fields(
    schema: &Value,
    properties: &Map<String, Value>,
    prefix: &str,
    posted: Option<&Posted>,
    errors: &Posted,
    may_nest: bool,
) -> Vec<SchemaField> {
    let required = required_names(schema);
    let mut fields: Vec<SchemaField> = properties
        .iter()
        .map(|(key, property)| {
            let name = format!("{prefix}.{key}");
            let kind = kind_of(property, may_nest);
            let default = property.get("default");
            let value = match posted {
                Some(posted) => posted.get(&name).cloned().unwrap_or_default(),
                None => default.map(|value| text_of(kind, value)).unwrap_or_default(),
            };
            let is_checked = match posted {
                Some(posted) => posted.contains_key(&name),
                None => default.and_then(Value::as_bool).unwrap_or(false),
            };
            let children = match (kind, property.get("properties").and_then(Value::as_object)) {
                ("object", Some(inner)) => object_fields(property, inner, &name, posted, errors, false),
                _ => Vec::new(),
            };
            SchemaField {
                label: property.get("title").and_then(Value::as_str).unwrap_or(key).to_owned(),
                kind,
                is_required: required.contains(&key.as_str()),
                description: property.get("description").and_then(Value::as_str).unwrap_or("").to_owned(),
                value,
                is_checked,
                options: enum_values(property)
                    .iter()
                    .map(|value| EnumOption { text: option_text(value), json: value.to_string() })
                    .collect(),
                children,
                error: errors.get(&name).cloned(),
                name,
            }
        })
        .collect();
    // Required fields first; the rest keep the schema's order.
    fields.sort_by_key(|field| !field.is_required);
    fields
}

fn required_names(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |names| names.iter().filter_map(Value::as_str).collect())
}

fn enum_values(property: &Value) -> &[Value] {
    property.get("enum").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Which field shows a property.
fn kind_of(property: &Value, may_nest: bool) -> &'static str {
    if !enum_values(property).is_empty() {
        return "enum";
    }
    match property.get("type").and_then(Value::as_str) {
        Some("string") => "string",
        Some("number") => "number",
        Some("integer") => "integer",
        Some("boolean") => "boolean",
        Some("array") if property.pointer("/items/type").and_then(Value::as_str) == Some("string") => "array",
        Some("object") if may_nest && property.get("properties").is_some_and(Value::is_object) => "object",
        _ => "json",
    }
}

/// An enum value as the text of its option: strings as they are, anything else as JSON.
fn option_text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// A default as the text its field shows.
fn text_of(kind: &str, value: &Value) -> String {
    match (kind, value) {
        ("array", Value::Array(items)) => items.iter().map(option_text).collect::<Vec<_>>().join("\n"),
        ("json", value) => serde_json::to_string_pretty(value).unwrap_or_default(),
        (_, value) => option_text(value),
    }
}

/// The JSON input the posted fields describe, converted per the schema; or the problems, by field name. A field
/// left empty is left out (the schema then says whether it was required); a required one is named here at once.
pub(super) fn assemble(schema: &Value, posted: &Posted) -> Result<Value, Posted> {
    let mut errors = Posted::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    let input = match properties {
        Some(properties) => assemble_object(schema, properties, "input", posted, &mut errors, true),
        None => Map::new(),
    };
    if errors.is_empty() { Ok(Value::Object(input)) } else { Err(errors) }
}

fn assemble_object(
    schema: &Value,
    properties: &Map<String, Value>,
    prefix: &str,
    posted: &Posted,
    errors: &mut Posted,
    may_nest: bool,
) -> Map<String, Value> {
    let required = required_names(schema);
    let mut object = Map::new();
    for (key, property) in properties {
        let name = format!("{prefix}.{key}");
        let kind = kind_of(property, may_nest);
        let text = posted.get(&name).map(String::as_str).unwrap_or("");
        let value = match kind {
            "boolean" => Ok(Some(Value::Bool(posted.contains_key(&name)))),
            "object" => {
                let inner =
                    property.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                let nested = assemble_object(property, &inner, &name, posted, errors, false);
                let is_needed = !nested.is_empty() || required.contains(&key.as_str());
                Ok(Some(Value::Object(nested)).filter(|_| is_needed))
            }
            _ if text.trim().is_empty() => Ok(None),
            _ => convert(kind, property, text).map(Some),
        };
        match value {
            Ok(Some(value)) => {
                object.insert(key.clone(), value);
            }
            Ok(None) if required.contains(&key.as_str()) => {
                errors.insert(name, "is required".to_owned());
            }
            Ok(None) => {}
            Err(message) => {
                errors.insert(name, message);
            }
        }
    }
    object
}

/// A field's text as the JSON value its kind asks for.
fn convert(kind: &str, property: &Value, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    match kind {
        "number" => trimmed
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{trimmed:?} is not a number")),
        "integer" => {
            trimmed.parse::<i64>().map(Value::from).map_err(|_| format!("{trimmed:?} is not a whole number"))
        }
        "enum" => enum_values(property)
            .iter()
            .find(|value| option_text(value) == trimmed)
            .cloned()
            .ok_or_else(|| format!("{trimmed:?} is not one of the choices")),
        "array" => Ok(Value::Array(
            text.lines().map(str::trim).filter(|item| !item.is_empty()).map(Value::from).collect(),
        )),
        "json" => serde_json::from_str(trimmed).map_err(|error| format!("is not valid JSON: {error}")),
        _ => Ok(Value::from(text.replace("\r\n", "\n"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["title"],
            "properties": {
                "title": {"type": "string"},
                "steps": {"type": "integer", "default": 3},
                "ratio": {"type": "number"},
                "loud": {"type": "boolean", "default": true},
                "mood": {"enum": ["calm", "busy", 3]},
                "labels": {"type": "array", "items": {"type": "string"}},
                "repo": {"type": "object", "properties": {"url": {"type": "string"}, "depth": {"type": "integer"}}},
                "extra": {"type": "array", "items": {"type": "object"}}
            }
        })
    }

    fn posted(pairs: &[(&str, &str)]) -> Posted {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    fn check(pairs: &[(&str, &str)], expected: Value) {
        assert_eq!(assemble(&schema(), &posted(pairs)), Ok(expected));
    }

    fn check_error(pairs: &[(&str, &str)], field: &str, message: &str) {
        let errors = assemble(&schema(), &posted(pairs)).expect_err("the form was accepted");
        assert!(errors.get(field).is_some_and(|text| text.contains(message)), "{errors:?}");
    }

    #[test]
    fn fields_become_typed_input() {
        check(&[("input.title", "hi")], json!({"title": "hi", "loud": false}));
        check(
            &[
                ("input.title", "hi"),
                ("input.steps", " 7 "),
                ("input.ratio", "0.5"),
                ("input.loud", "true"),
                ("input.mood", "3"),
                ("input.labels", "a\r\n\r\n b \n"),
                ("input.repo.url", "x"),
                ("input.extra", "[{\"k\": 1}]"),
            ],
            json!({"title": "hi", "steps": 7, "ratio": 0.5, "loud": true, "mood": 3, "labels": ["a", "b"],
                   "repo": {"url": "x"}, "extra": [{"k": 1}]}),
        );
    }

    #[test]
    fn bad_fields_are_named() {
        check_error(&[], "input.title", "is required");
        check_error(&[("input.title", "x"), ("input.steps", "2.5")], "input.steps", "whole number");
        check_error(&[("input.title", "x"), ("input.ratio", "abc")], "input.ratio", "not a number");
        check_error(&[("input.title", "x"), ("input.mood", "sad")], "input.mood", "not one of");
        check_error(
            &[("input.title", "x"), ("input.repo.depth", "deep")],
            "input.repo.depth",
            "whole number",
        );
        check_error(&[("input.title", "x"), ("input.extra", "[")], "input.extra", "not valid JSON");
    }

    #[test]
    fn fields_show_defaults_and_kinds() {
        let shown = fields(&schema(), None, &Posted::new()).expect("the schema has properties");
        let kinds: Vec<_> = shown.iter().map(|field| (field.name.as_str(), field.kind)).collect();
        assert!(kinds.contains(&("input.repo", "object")) && kinds.contains(&("input.extra", "json")));
        let steps = shown.iter().find(|field| field.name == "input.steps").expect("steps is shown");
        assert_eq!(steps.value, "3");
        assert!(shown.iter().any(|field| field.name == "input.loud" && field.is_checked));
        assert!(shown.iter().any(|field| field.name == "input.title" && field.is_required));
        assert!(fields(&json!({"type": "object"}), None, &Posted::new()).is_none());
    }
}
