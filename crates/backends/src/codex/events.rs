//! Reading `codex exec --json` output: each JSONL event becomes readable log lines, transcript items, usage, the final
//! message, or a failure. Unknown event types and fields are tolerated; the older spellings (`item_type`,
//! `assistant_message`) are accepted.

use dashboard_core::{LogStream, NewItem};
use serde_json::Value;

use super::items::transcript_item;
use super::json::text;

/// What one line of Codex output means for the run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Show this line in the log.
    Log(LogStream, String),
    /// The thread's id: the session a follow-up turn resumes (`codex exec resume <thread>`).
    Session(String),
    /// Report this transcript item (new, or an update of one reported before under its id).
    Item(NewItem),
    /// The agent said this (the last one is the output).
    AgentMessage(String),
    /// A turn completed, with its token usage when reported.
    TurnCompleted(Option<Value>),
    /// The turn failed: this message is the run's error.
    TurnFailed(String),
    /// Codex reported an error; it fails the run unless a `turn.failed` says more.
    Error(String),
}

/// The longest piece of command output shown per command in the log; the rest is in Codex's own transcript.
const MAX_COMMAND_OUTPUT_LINES: usize = 20;

/// Interprets one line of output. A line that is not a JSON event is shown as it is.
pub(crate) fn interpret(line: &str) -> Vec<Effect> {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return if line.trim().is_empty() {
            Vec::new()
        } else {
            vec![Effect::Log(LogStream::Stdout, line.to_owned())]
        };
    };
    let kind = text(&event, "type").or_else(|| text(&event, "msg_type")).unwrap_or_default();
    match kind {
        "thread.started" => {
            let thread = text(&event, "thread_id").unwrap_or("?");
            let mut effects = vec![Effect::Log(LogStream::System, format!("codex session {thread} started"))];
            effects.extend(text(&event, "thread_id").map(|thread| Effect::Session(thread.to_owned())));
            effects
        }
        "turn.started" => Vec::new(),
        "turn.completed" => vec![Effect::TurnCompleted(event.get("usage").cloned())],
        "turn.failed" => {
            let message =
                event.get("error").and_then(|error| text(error, "message")).unwrap_or("the turn failed");
            vec![Effect::TurnFailed(message.to_owned())]
        }
        "error" => {
            vec![Effect::Error(text(&event, "message").unwrap_or("codex reported an error").to_owned())]
        }
        "item.started" | "item.updated" | "item.completed" => match event.get("item") {
            Some(item) => {
                let mut effects = interpret_item(kind, item);
                effects.extend(transcript_item(kind, item).map(Effect::Item));
                effects
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn interpret_item(phase: &str, item: &Value) -> Vec<Effect> {
    let item_type = text(item, "type").or_else(|| text(item, "item_type")).unwrap_or_default();
    let is_done = phase == "item.completed";
    match item_type {
        "agent_message" | "assistant_message" if is_done => {
            let message = text(item, "text").unwrap_or_default().to_owned();
            let mut effects: Vec<Effect> =
                message.lines().map(|line| Effect::Log(LogStream::Agent, line.to_owned())).collect();
            effects.push(Effect::AgentMessage(message));
            effects
        }
        "reasoning" if is_done => text(item, "text")
            .map(|reasoning| {
                reasoning
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| agent(format!("thinking: {line}")))
                    .collect()
            })
            .unwrap_or_default(),
        "command_execution" => command(phase, item),
        "file_change" if is_done => {
            let changes = item.get("changes").and_then(Value::as_array).cloned().unwrap_or_default();
            changes
                .iter()
                .map(|change| {
                    let kind = text(change, "kind").unwrap_or("change");
                    agent(format!("file {kind}: {}", text(change, "path").unwrap_or("?")))
                })
                .collect()
        }
        "mcp_tool_call" if phase == "item.started" || is_done => {
            let server = text(item, "server").unwrap_or("?");
            let tool = text(item, "tool").unwrap_or("?");
            let status = if is_done { text(item, "status").unwrap_or("done") } else { "started" };
            vec![agent(format!("tool {server}/{tool}: {status}"))]
        }
        "web_search" if is_done => vec![agent(format!("web search: {}", text(item, "query").unwrap_or("?")))],
        "todo_list" => {
            let items = item.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            let done = items
                .iter()
                .filter(|entry| entry.get("completed").and_then(Value::as_bool) == Some(true))
                .count();
            let mut effects = vec![agent(format!("plan ({done}/{} done):", items.len()))];
            for entry in &items {
                let mark =
                    if entry.get("completed").and_then(Value::as_bool) == Some(true) { "x" } else { " " };
                effects.push(agent(format!("  [{mark}] {}", text(entry, "text").unwrap_or(""))));
            }
            effects
        }
        "error" => {
            vec![Effect::Log(LogStream::Stderr, format!("error: {}", text(item, "message").unwrap_or("?")))]
        }
        _ => Vec::new(),
    }
}

fn command(phase: &str, item: &Value) -> Vec<Effect> {
    let command = text(item, "command").unwrap_or("?");
    match phase {
        "item.started" => vec![agent(format!("$ {command}"))],
        "item.completed" => {
            let mut effects = Vec::new();
            let output = text(item, "aggregated_output").unwrap_or_default();
            let lines: Vec<&str> = output.lines().collect();
            let skipped = lines.len().saturating_sub(MAX_COMMAND_OUTPUT_LINES);
            if skipped > 0 {
                effects
                    .push(Effect::Log(LogStream::Stdout, format!("… {skipped} lines of output not shown")));
            }
            effects.extend(
                lines[skipped..].iter().map(|line| Effect::Log(LogStream::Stdout, (*line).to_owned())),
            );
            let exit = match item.get("exit_code").and_then(Value::as_i64) {
                Some(code) => format!("exit code {code}"),
                None => text(item, "status").unwrap_or("finished").to_owned(),
            };
            effects.push(agent(format!("$ {command} → {exit}")));
            effects
        }
        _ => Vec::new(),
    }
}

fn agent(line: String) -> Effect {
    Effect::Log(LogStream::Agent, line)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Checks the effects of `line` other than its transcript item (`items.rs` tests those).
    fn check(line: &str, expected: &[Effect]) {
        let effects: Vec<Effect> =
            interpret(line).into_iter().filter(|effect| !matches!(effect, Effect::Item(_))).collect();
        assert_eq!(effects, expected, "{line}");
    }

    #[test]
    fn an_item_event_gives_its_lines_then_its_item() {
        let line = r#"{"type":"item.completed","item":{"id":"e1","type":"error","message":"rerouted"}}"#;
        let effects = interpret(line);
        assert_eq!(effects[0], log(LogStream::Stderr, "error: rerouted"), "still a warning line");
        let Some(Effect::Item(item)) = effects.get(1) else { panic!("{effects:?}") };
        assert_eq!((item.id.as_str(), item.body.kind()), ("e1", "error"));
    }

    fn log(stream: LogStream, text: &str) -> Effect {
        Effect::Log(stream, text.to_owned())
    }

    #[test]
    fn session_and_turn_events() {
        check(
            r#"{"type":"thread.started","thread_id":"t-1"}"#,
            &[log(LogStream::System, "codex session t-1 started"), Effect::Session("t-1".into())],
        );
        check(r#"{"type":"turn.started"}"#, &[]);
        check(
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":3}}"#,
            &[Effect::TurnCompleted(Some(json!({"input_tokens": 10, "output_tokens": 3})))],
        );
        check(
            r#"{"type":"turn.failed","error":{"message":"rate limited"}}"#,
            &[Effect::TurnFailed("rate limited".into())],
        );
        check(r#"{"type":"error","message":"stream closed"}"#, &[Effect::Error("stream closed".into())]);
    }

    #[test]
    fn items_become_readable_lines() {
        check(
            r#"{"type":"item.started","item":{"id":"i1","type":"command_execution","command":"ls","status":"in_progress"}}"#,
            &[log(LogStream::Agent, "$ ls")],
        );
        check(
            r#"{"type":"item.completed","item":{"type":"command_execution","command":"ls","aggregated_output":"a\nb\n","exit_code":0}}"#,
            &[
                log(LogStream::Stdout, "a"),
                log(LogStream::Stdout, "b"),
                log(LogStream::Agent, "$ ls → exit code 0"),
            ],
        );
        check(
            r#"{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"src/x.rs","kind":"update"}]}}"#,
            &[log(LogStream::Agent, "file update: src/x.rs")],
        );
        check(
            r#"{"type":"item.updated","item":{"type":"todo_list","items":[{"text":"read","completed":true},{"text":"fix","completed":false}]}}"#,
            &[
                log(LogStream::Agent, "plan (1/2 done):"),
                log(LogStream::Agent, "  [x] read"),
                log(LogStream::Agent, "  [ ] fix"),
            ],
        );
        check(
            r#"{"type":"item.completed","item":{"type":"reasoning","text":"**Looking**\n\nat files"}}"#,
            &[log(LogStream::Agent, "thinking: **Looking**"), log(LogStream::Agent, "thinking: at files")],
        );
        check(
            r#"{"type":"item.completed","item":{"type":"mcp_tool_call","server":"gh","tool":"search","status":"completed"}}"#,
            &[log(LogStream::Agent, "tool gh/search: completed")],
        );
    }

    #[test]
    fn agent_messages_are_logged_and_kept_in_both_spellings() {
        for item_type in [r#""type":"agent_message""#, r#""item_type":"assistant_message""#] {
            let line =
                format!(r#"{{"type":"item.completed","item":{{{item_type},"text":"Done.\nAll good."}}}}"#);
            check(
                &line,
                &[
                    log(LogStream::Agent, "Done."),
                    log(LogStream::Agent, "All good."),
                    Effect::AgentMessage("Done.\nAll good.".into()),
                ],
            );
        }
    }

    #[test]
    fn unknown_events_and_plain_text_are_tolerated() {
        check(r#"{"type":"something.new","payload":{"x":1}}"#, &[]);
        check(r#"{"type":"item.completed","item":{"type":"hologram"}}"#, &[]);
        check("Reading prompt from stdin...", &[log(LogStream::Stdout, "Reading prompt from stdin...")]);
        check("", &[]);
    }
}
