//! Reading fields of Codex's JSON (exec mode's events, app-server's notifications): a missing or mistyped field reads
//! as absent, never as an error.

use serde_json::Value;

/// The elements of the array `field`; none when it is missing or not an array.
pub(super) fn list<'a>(value: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    value.get(field).and_then(Value::as_array).into_iter().flatten()
}

/// The string `field`.
pub(super) fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// The string `field`, empty when it is missing.
pub(super) fn owned(value: &Value, field: &str) -> String {
    text(value, field).unwrap_or_default().to_owned()
}
