//! Reading fields of Claude Code's stream-json messages: a missing or mistyped field reads as absent, never as an
//! error.

use serde_json::Value;

/// The string `field`.
pub(super) fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// The string `field`, empty when it is missing.
pub(super) fn owned(value: &Value, field: &str) -> String {
    text(value, field).unwrap_or_default().to_owned()
}

/// The count `field`.
pub(super) fn count(value: &Value, field: &str) -> Option<u64> {
    value.get(field).and_then(Value::as_u64)
}

/// The elements of the array `field`; none when it is missing or not an array.
pub(super) fn list<'a>(value: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    value.get(field).and_then(Value::as_array).into_iter().flatten()
}

/// The text of a tool result's `content`: a string as it is, or the text blocks of an array joined by line breaks.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => {
            blocks.iter().filter_map(|block| text(block, "text")).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}
