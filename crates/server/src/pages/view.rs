//! What the templates see: domain values turned into plain structs with times, durations and JSON already
//! formatted, because tera has no date filter and the pages must not guess at formats.

use std::fmt::Write as _;

use dashboard_core::{Event, Execution, ExecutionStatus, Function, LogLine, Timestamp, now};
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::usage_view::UsageView;

/// A point in time: RFC 3339 for `<time datetime>` (which the script turns into "3 s ago"), and readable text.
#[derive(Serialize)]
pub(super) struct TimeView {
    iso: String,
    text: String,
}

/// A time for a template.
pub(super) fn time_view(ts: Timestamp) -> TimeView {
    let readable = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    TimeView { iso: ts.format(&Rfc3339).unwrap_or_default(), text: ts.format(readable).unwrap_or_default() }
}

/// A duration as a person reads it: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 07 min`.
pub(super) fn duration_text(duration: time::Duration) -> String {
    let millis = duration.whole_milliseconds().max(0);
    let secs = millis / 1000;
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{}.{} s", secs, (millis % 1000) / 100),
        60_000..3_600_000 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// JSON as indented text for a `<pre>`.
pub(super) fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The last 8 characters of an id: the random tail of a UUID v7 (its head is a timestamp, shared by neighbours).
pub(super) fn short_id(id: &impl ToString) -> String {
    let text = id.to_string();
    let start = text.len().saturating_sub(8);
    text.get(start..).unwrap_or(&text).to_owned()
}

/// At most `max_chars` characters of `text`, with an ellipsis when cut.
pub(super) fn shorten(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() { format!("{}…", head.trim_end()) } else { head }
}

/// An execution as a row of a table.
#[derive(Serialize)]
pub(super) struct ExecutionRow {
    id: String,
    short_id: String,
    function: String,
    backend: String,
    status: ExecutionStatus,
    attempt: u32,
    created_at: TimeView,
    duration: Option<String>,
    /// When a running execution started (RFC 3339), so that the page can keep its duration ticking.
    running_since: Option<String>,
    /// What it cost (`$0.30`), when its usage says.
    cost: Option<String>,
}

impl ExecutionRow {
    pub(super) fn new(execution: &Execution) -> Self {
        Self {
            id: execution.id.to_string(),
            short_id: short_id(&execution.id),
            function: execution.function.clone(),
            backend: execution.backend.clone(),
            status: execution.status,
            attempt: execution.attempt,
            created_at: time_view(execution.created_at),
            duration: execution.duration(now()).map(duration_text),
            running_since: execution
                .started_at
                .filter(|_| matches!(execution.status, ExecutionStatus::Running | ExecutionStatus::Waiting))
                .and_then(|started| started.format(&Rfc3339).ok()),
            cost: super::usage_view::cost_of(execution.usage.as_ref()),
        }
    }
}

/// An execution with everything the status page shows.
#[derive(Serialize)]
pub(super) struct ExecutionDetail {
    id: String,
    short_id: String,
    function: String,
    function_version: u32,
    backend: String,
    status: ExecutionStatus,
    is_terminal: bool,
    input: String,
    output: Option<String>,
    error: Option<String>,
    usage: Option<String>,
    /// The usage as a table: tokens by kind, the model, the cost or why there is none.
    usage_view: Option<UsageView>,
    attempt: u32,
    retry_of: Option<String>,
    idempotency_key: Option<String>,
    triggered_by: Option<String>,
    /// The dashboard instance that ran it, once one started it.
    instance: Option<String>,
    session_id: Option<String>,
    continues: Option<String>,
    created_at: TimeView,
    started_at: Option<TimeView>,
    finished_at: Option<TimeView>,
    duration: Option<String>,
}

impl ExecutionDetail {
    pub(super) fn new(execution: &Execution) -> Self {
        Self {
            id: execution.id.to_string(),
            short_id: short_id(&execution.id),
            function: execution.function.clone(),
            function_version: execution.function_version,
            backend: execution.backend.clone(),
            status: execution.status,
            is_terminal: execution.status.is_terminal(),
            input: pretty_json(&execution.input),
            output: execution.output.as_ref().map(pretty_json),
            error: execution.error.clone(),
            usage: execution.usage.as_ref().map(pretty_json),
            usage_view: execution.usage.as_ref().map(UsageView::new),
            attempt: execution.attempt,
            retry_of: execution.retry_of.map(|id| id.to_string()),
            idempotency_key: execution.idempotency_key.clone(),
            triggered_by: execution.triggered_by.clone(),
            instance: execution.instance.clone(),
            session_id: execution.session_id.clone(),
            continues: execution.continues.map(|id| id.to_string()),
            created_at: time_view(execution.created_at),
            started_at: execution.started_at.map(time_view),
            finished_at: execution.finished_at.map(time_view),
            duration: execution.duration(now()).map(duration_text),
        }
    }
}

/// A log line for the status page.
#[derive(Serialize)]
pub(super) struct LogLineView {
    seq: u64,
    ts: String,
    stream: &'static str,
    message: String,
}

impl LogLineView {
    pub(super) fn new(line: &LogLine) -> Self {
        Self {
            seq: line.seq,
            ts: line.ts.format(&Rfc3339).unwrap_or_default(),
            stream: line.stream.as_str(),
            message: line.message.clone(),
        }
    }
}

/// An event of the activity feed.
#[derive(Serialize)]
pub(super) struct EventView {
    id: u64,
    ts: TimeView,
    kind: &'static str,
    /// The colour of its badge: an execution status, or `function` for changes of functions.
    tone: &'static str,
    message: String,
    execution_id: Option<String>,
    function: Option<String>,
}

impl EventView {
    pub(super) fn new(event: &Event) -> Self {
        let kind = event.kind.as_str();
        let tone = event_tone(kind, &event.data);
        Self {
            id: event.id,
            ts: time_view(event.ts),
            kind,
            tone,
            message: event.message.clone(),
            execution_id: event.execution_id.map(|id| id.to_string()),
            function: event.function.clone(),
        }
    }
}

/// The colour of an event's badge (`web/static/app.js` has the same rule): the status an execution event reports
/// (`started` and `resumed` are `running`), `waiting` for an approval asked, and for an approval decided the
/// execution status that reads the same (approved `succeeded`, declined `failed`, expired `timed_out`); the neutral
/// `function` otherwise.
fn event_tone(kind: &'static str, data: &Value) -> &'static str {
    match kind {
        "execution.started" | "execution.resumed" => "running",
        "approval.requested" => "waiting",
        "approval.decided" => match data.get("status").and_then(Value::as_str) {
            Some("approved") => "succeeded",
            Some("declined") => "failed",
            Some("expired") => "timed_out",
            _ => "function",
        },
        _ => kind.strip_prefix("execution.").unwrap_or("function"),
    }
}

/// A function as a row of the list.
#[derive(Serialize)]
pub(super) struct FunctionRow {
    name: String,
    description: String,
    backend: String,
    version: u32,
    tags: Vec<String>,
    updated_at: TimeView,
}

impl FunctionRow {
    pub(super) fn new(function: &Function) -> Self {
        Self {
            name: function.name.clone(),
            description: shorten(&function.description, 140),
            backend: function.backend.clone(),
            version: function.version,
            tags: function.tags.clone(),
            updated_at: time_view(function.updated_at),
        }
    }
}

/// A function with everything its page shows.
#[derive(Serialize)]
pub(super) struct FunctionDetail {
    id: String,
    name: String,
    description: String,
    backend: String,
    version: u32,
    prompt: Option<String>,
    input_schema: String,
    config: Option<String>,
    timeout: Option<String>,
    max_concurrency: Option<u32>,
    /// `auto`, `ask` or `deny`.
    approval_policy: &'static str,
    /// How long an approval may stay pending, in words.
    approval_timeout: String,
    tags: Vec<String>,
    created_at: TimeView,
    updated_at: TimeView,
}

impl FunctionDetail {
    pub(super) fn new(function: &Function) -> Self {
        let config = Some(&function.config).filter(|config| !config.is_empty());
        Self {
            id: function.id.to_string(),
            name: function.name.clone(),
            description: function.description.clone(),
            backend: function.backend.clone(),
            version: function.version,
            prompt: function.prompt.clone(),
            input_schema: pretty_json(&function.input_schema),
            config: config.map(|config| pretty_json(&Value::Object(config.clone()))),
            timeout: function
                .timeout_secs
                .map(|secs| duration_text(time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))),
            max_concurrency: function.max_concurrency,
            approval_policy: function.approval_policy.as_str(),
            approval_timeout: duration_text(
                time::Duration::try_from(function.approval_timeout()).unwrap_or(time::Duration::MAX),
            ),
            tags: function.tags.clone(),
            created_at: time_view(function.created_at),
            updated_at: time_view(function.updated_at),
        }
    }
}

/// A trigger form's starting input: every property of the schema that has a default, with that default.
pub(super) fn input_from_defaults(schema: &Value) -> String {
    let defaults: serde_json::Map<String, Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .filter_map(|(name, property)| Some((name.clone(), property.get("default")?.clone())))
                .collect()
        })
        .unwrap_or_default();
    pretty_json(&Value::Object(defaults))
}

/// A query string (`?a=1&b=x%20y`) from pairs, leaving out empty values.
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut query = String::new();
    for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.push(if query.is_empty() { '?' } else { '&' });
        query.push_str(&percent_encode(name));
        query.push('=');
        query.push_str(&percent_encode(value));
    }
    query
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn event_badges_take_the_colour_of_what_they_report() {
        assert_eq!(event_tone("execution.succeeded", &Value::Null), "succeeded");
        assert_eq!(event_tone("execution.resumed", &Value::Null), "running");
        assert_eq!(event_tone("execution.waiting", &Value::Null), "waiting");
        assert_eq!(event_tone("approval.requested", &Value::Null), "waiting");
        assert_eq!(event_tone("approval.decided", &json!({"status": "declined"})), "failed");
        assert_eq!(event_tone("function.created", &Value::Null), "function");
    }

    #[test]
    fn durations_read_naturally() {
        for (millis, expected) in [
            (0, "0 ms"),
            (850, "850 ms"),
            (12_345, "12.3 s"),
            (245_000, "4 min 05 s"),
            (7_620_000, "2 h 07 min"),
        ] {
            assert_eq!(duration_text(time::Duration::milliseconds(millis)), expected);
        }
    }

    #[test]
    fn trigger_input_starts_from_the_schema_defaults() {
        let schema =
            json!({"type": "object", "properties": {"name": {"default": "x"}, "n": {"type": "integer"}}});
        assert_eq!(input_from_defaults(&schema), "{\n  \"name\": \"x\"\n}");
        assert_eq!(input_from_defaults(&json!({"type": "object"})), "{}");
    }

    #[test]
    fn query_strings_are_encoded_and_skip_empty_values() {
        assert_eq!(query_string(&[("q", "a b&c"), ("status", ""), ("before", "x")]), "?q=a%20b%26c&before=x");
        assert_eq!(query_string(&[("q", "")]), "");
    }

    #[test]
    fn long_text_is_shortened_on_a_character_boundary() {
        assert_eq!(shorten("héllo world", 5), "héllo…");
        assert_eq!(shorten("short", 10), "short");
    }
}
