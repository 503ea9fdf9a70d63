//! The bodies of notifications: the Standard Webhooks JSON (the event, the execution as stored, a link to it) and
//! Slack's incoming-webhook message (one or two lines a person reads: status, function, duration, error, link).

use dashboard_core::{Event, EventKind, Execution, ExecutionId};
use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::Format;

/// How many characters of an execution's error a Slack message shows (its first line, cut there).
const MAX_ERROR_CHARS: usize = 300;

/// The Standard Webhooks body, its fields in this order.
#[derive(Serialize)]
struct StandardBody<'a> {
    r#type: &'static str,
    timestamp: String,
    data: StandardData<'a>,
}

#[derive(Serialize)]
struct StandardData<'a> {
    event: &'a Event,
    execution: Option<&'a Execution>,
    url: Option<String>,
}

/// The JSON body of a delivery of `event` in `format`; `execution` is the event's execution as stored now (`None`
/// when the event has none, or it was pruned), `public_url` the dashboard's address the links start with.
pub(super) fn body(
    format: Format,
    event: &Event,
    execution: Option<&Execution>,
    public_url: &str,
) -> Vec<u8> {
    let link = event.execution_id.map(|id| execution_url(public_url, id));
    let body = match format {
        Format::StandardWebhooks => serde_json::to_vec(&StandardBody {
            r#type: event.kind.as_str(),
            timestamp: event.ts.format(&Rfc3339).unwrap_or_default(),
            data: StandardData { event, execution, url: link },
        }),
        Format::Slack => serde_json::to_vec(&json!({"text": slack_text(event, execution, link.as_deref())})),
    };
    // The domain types and strings always serialize.
    body.unwrap_or_default()
}

/// The page of an execution: `{public_url}/executions/{id}` (a path alone when no public URL is set).
pub(super) fn execution_url(public_url: &str, id: ExecutionId) -> String {
    format!("{}/executions/{id}", public_url.trim_end_matches('/'))
}

/// What a Slack message says: `:x: *build* failed after 12 s · <url|execution 3f2a91bc>`, and the error's first
/// line quoted under it.
fn slack_text(event: &Event, execution: Option<&Execution>, link: Option<&str>) -> String {
    let (icon, what) = match event.kind {
        EventKind::ExecutionFailed => (":x:", "failed"),
        EventKind::ExecutionTimedOut => (":hourglass:", "timed out"),
        EventKind::ExecutionWaiting => (":raised_hand:", "is waiting for a person"),
        EventKind::ExecutionSucceeded => (":white_check_mark:", "succeeded"),
        EventKind::ExecutionCancelled => (":no_entry_sign:", "was cancelled"),
        other => (":information_source:", other.as_str()),
    };
    let function = execution.map(|execution| execution.function.as_str()).or(event.function.as_deref());
    let mut text = match function {
        Some(function) => format!("{icon} *{}* {what}", escape(function)),
        None => format!("{icon} {what}"),
    };
    // From its start to its end, or to the event while it waits.
    let duration = execution.and_then(|execution| execution.duration(event.ts));
    if let Some(duration) = duration.filter(|duration| !duration.is_negative()) {
        text.push_str(&format!(" after {}", human_duration(duration)));
    }
    if let (Some(link), Some(id)) = (link, event.execution_id) {
        let text_id = id.to_string();
        let short = text_id.get(text_id.len().saturating_sub(8)..).unwrap_or(&text_id);
        text.push_str(&format!(" · <{}|execution {short}>", escape(link)));
    }
    let error = match execution {
        Some(execution) => execution.error.as_deref(),
        // The execution was pruned: the event's sentence still says what happened.
        None => Some(event.message.as_str()),
    };
    if let Some(line) = error.and_then(|error| error.lines().find(|line| !line.trim().is_empty())) {
        text.push_str(&format!("\n> {}", escape(&cut(line.trim(), MAX_ERROR_CHARS))));
    }
    text
}

/// A duration as a person reads it: `850 ms`, `12 s`, `4 min 5 s`, `2 h 7 min`.
fn human_duration(duration: time::Duration) -> String {
    let millis = duration.whole_milliseconds().max(0);
    let secs = millis / 1000;
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{secs} s"),
        60_000..3_600_000 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// Slack's escaping of message text: `&`, `<` and `>` are its markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max_chars` characters of `text`, with an ellipsis when cut.
fn cut(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() { format!("{}…", head.trim_end()) } else { head }
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ExecutionStatus, FunctionId, NewEvent};
    use serde_json::{Value, json};
    use time::Duration;

    use super::*;

    fn parsed(format: Format, event: &Event, execution: Option<&Execution>, public_url: &str) -> Value {
        serde_json::from_slice(&super::body(format, event, execution, public_url)).expect("JSON")
    }

    fn failed_execution(error: &str) -> (Event, Execution) {
        let started = dashboard_core::now();
        let execution = Execution {
            id: ExecutionId::generate(),
            function: "build<docs>".to_owned(),
            function_id: FunctionId::generate(),
            function_version: 1,
            backend: "demo".to_owned(),
            input: json!({}),
            status: ExecutionStatus::Failed,
            output: None,
            error: Some(error.to_owned()),
            usage: None,
            attempt: 1,
            retry_of: None,
            idempotency_key: None,
            triggered_by: None,
            session_id: None,
            continues: None,
            prompt: None,
            instance: None,
            created_at: started,
            started_at: Some(started),
            finished_at: Some(started + Duration::milliseconds(12_400)),
        };
        let event = NewEvent::for_execution(&execution).recorded(7, started + Duration::seconds(13));
        (event, execution)
    }

    #[test]
    fn a_slack_message_says_what_happened_and_links_the_execution() {
        let (event, execution) = failed_execution("\nexit status 1 & <stderr>\nsecond line");
        let body = parsed(Format::Slack, &event, Some(&execution), "https://dash.example.com/");
        let text = body["text"].as_str().expect("text");
        let link = format!("<https://dash.example.com/executions/{}|execution ", execution.id);
        assert!(text.starts_with(":x: *build&lt;docs&gt;* failed after 12 s · "), "{text}");
        assert!(text.contains(&link), "{text}");
        assert!(text.ends_with("\n> exit status 1 &amp; &lt;stderr&gt;"), "{text}");
        assert_eq!(body.as_object().map(|body| body.len()), Some(1), "only text: {body}");
    }

    #[test]
    fn a_long_error_is_cut() {
        let (event, execution) = failed_execution(&"x".repeat(2000));
        let text = parsed(Format::Slack, &event, Some(&execution), "").to_string();
        assert!(text.contains(&format!("> {}…", "x".repeat(MAX_ERROR_CHARS))), "{text}");
        assert!(!text.contains(&"x".repeat(MAX_ERROR_CHARS + 1)));
        assert!(text.contains(&format!("</executions/{}|", execution.id)), "a path without a public URL");
    }

    #[test]
    fn a_standard_webhooks_body_holds_the_event_and_the_execution() {
        let (event, execution) = failed_execution("boom");
        let body = parsed(Format::StandardWebhooks, &event, Some(&execution), "http://d");
        assert_eq!(body["type"], "execution.failed");
        let text = String::from_utf8(super::body(Format::StandardWebhooks, &event, None, "")).expect("UTF-8");
        assert!(text.starts_with(r#"{"type":"execution.failed","timestamp":"#), "{text}");
        assert_eq!(body["timestamp"], event.ts.format(&Rfc3339).expect("a time"));
        assert_eq!(body["data"]["event"]["id"], 7);
        assert_eq!(body["data"]["execution"]["status"], "failed");
        assert_eq!(body["data"]["url"], format!("http://d/executions/{}", execution.id));
        let without = parsed(Format::StandardWebhooks, &event, None, "http://d");
        assert_eq!(without["data"]["execution"], Value::Null);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let cases = [(850, "850 ms"), (12_400, "12 s"), (245_000, "4 min 5 s"), (7_620_000, "2 h 7 min")];
        for (millis, expected) in cases {
            assert_eq!(human_duration(Duration::milliseconds(millis)), expected);
        }
    }
}
