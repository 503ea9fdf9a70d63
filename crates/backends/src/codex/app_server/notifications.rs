//! Reading the app-server's notifications: each becomes log lines, transcript items, usage, the turn's diff, or the
//! end of the turn. Deltas (an agent message or a command's output as it streams) update the item they belong to;
//! unknown notifications and fields are passed over, logged at debug.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codex::json::{list, owned, text};
use dashboard_core::{
    FileChange, FileChangeKind, ItemBody, ItemStatus, LogStream, MessageRole, NewItem, PlanEntry,
};
use serde_json::{Map, Value};

/// How often a streaming item (a message, a command's output) is reported at most while it grows: each report is a
/// store write, and its completion reports it whole anyway.
const DELTA_REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// The most lines of a command's output logged when it arrives whole rather than streamed.
const MAX_COMMAND_OUTPUT_LINES: usize = 20;

/// What one notification means for the run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Show this line in the log.
    Log(LogStream, String),
    /// Report this transcript item (new, or an update of one reported before under its id).
    Item(NewItem),
    /// The agent said this (the last one is the output).
    AgentMessage(String),
    /// The thread's token usage so far (it replaces any earlier report).
    Usage(ThreadUsage),
    /// The turn's unified diff so far (it replaces any earlier one).
    Diff(String),
    /// The turn began, under this id.
    TurnStarted(String),
    /// The turn ended.
    TurnEnded(TurnEnd),
}

/// One `thread/tokenUsage/updated`, its fields under the names the exec mode reports them (`input_tokens`, …).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ThreadUsage {
    /// Over every turn of the thread, across processes.
    pub(crate) total: Value,
    /// Of the last model request alone, when reported.
    pub(crate) last: Option<Value>,
    /// The turn the report is about, when named.
    pub(crate) turn_id: Option<String>,
}

/// How a turn ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TurnEnd {
    Completed,
    Interrupted,
    Failed(String),
}

/// The items of a turn that are still growing, and what their deltas have added.
#[derive(Default)]
pub(crate) struct Transcript {
    growing: HashMap<String, Growing>,
}

/// An item in progress: its latest state, when it was last reported, and the part of its output not yet logged.
struct Growing {
    item: NewItem,
    reported_at: Instant,
    unlogged: String,
    has_streamed_output: bool,
}

impl Transcript {
    /// The effects of one notification.
    pub(crate) fn notification(&mut self, method: &str, params: &Value) -> Vec<Effect> {
        match method {
            "thread/started" => {
                let thread = params.get("thread").and_then(|thread| text(thread, "id")).unwrap_or("?");
                vec![Effect::Log(LogStream::System, format!("codex thread {thread} started"))]
            }
            "turn/started" => params
                .get("turn")
                .and_then(|turn| text(turn, "id"))
                .map(|id| vec![Effect::TurnStarted(id.to_owned())])
                .unwrap_or_default(),
            "turn/completed" => vec![Effect::TurnEnded(turn_end(params.get("turn").unwrap_or(&Value::Null)))],
            "turn/diff/updated" => {
                text(params, "diff").map(|diff| vec![Effect::Diff(diff.to_owned())]).unwrap_or_default()
            }
            "thread/tokenUsage/updated" => {
                let usage = params.get("tokenUsage");
                let breakdown = |name| usage.and_then(|usage| usage.get(name)).and_then(Value::as_object);
                breakdown("total")
                    .map(|total| {
                        vec![Effect::Usage(ThreadUsage {
                            total: snake_case_keys(total),
                            last: breakdown("last").map(snake_case_keys),
                            turn_id: text(params, "turnId").map(str::to_owned),
                        })]
                    })
                    .unwrap_or_default()
            }
            "turn/plan/updated" => plan(params),
            "item/started" | "item/completed" => match params.get("item") {
                Some(item) => self.item(method == "item/completed", item),
                None => Vec::new(),
            },
            "item/agentMessage/delta" => self.delta(params, false),
            "item/commandExecution/outputDelta" => self.delta(params, true),
            "error" => {
                let message = params.get("error").and_then(|error| text(error, "message")).unwrap_or("?");
                let retrying = params.get("willRetry").and_then(Value::as_bool) == Some(true);
                let line = if retrying {
                    format!("error: {message} (retrying)")
                } else {
                    format!("error: {message}")
                };
                vec![Effect::Log(LogStream::Stderr, line)]
            }
            "warning" => warning(text(params, "message")),
            "configWarning" | "deprecationNotice" => warning(text(params, "summary")),
            _ => {
                log::debug!("codex app-server: notification {method} passed over");
                Vec::new()
            }
        }
    }

    /// The changes of the file change `item_id`, when it has started and not yet completed: Codex reports them with
    /// `item/started` before it asks to apply them, and the request itself names only the item.
    pub(crate) fn file_changes(&self, item_id: &str) -> Option<&[FileChange]> {
        match &self.growing.get(item_id)?.item.body {
            ItemBody::FileChange { changes } => Some(changes),
            _ => None,
        }
    }

    fn item(&mut self, is_done: bool, item: &Value) -> Vec<Effect> {
        let Some(id) = text(item, "id").filter(|id| !id.is_empty()) else { return Vec::new() };
        let item_type = text(item, "type").unwrap_or_default();
        let growing = if is_done { self.growing.remove(id) } else { None };
        let mut effects = lines(is_done, item_type, item, growing.as_ref());
        if let Some(new_item) = transcript_item(is_done, item_type, item) {
            if !is_done {
                let growing = Growing {
                    item: new_item.clone(),
                    reported_at: Instant::now(),
                    unlogged: String::new(),
                    has_streamed_output: false,
                };
                self.growing.insert(id.to_owned(), growing);
            }
            effects.push(Effect::Item(new_item));
        } else if !matches!(item_type, "userMessage") {
            log::debug!("codex app-server: item type {item_type:?} passed over");
        }
        if is_done && matches!(item_type, "agentMessage") {
            effects.push(Effect::AgentMessage(owned(item, "text")));
        }
        effects
    }

    /// A piece of an agent message (`is_output` false) or of a command's output, added to its item.
    fn delta(&mut self, params: &Value, is_output: bool) -> Vec<Effect> {
        let (Some(id), Some(delta)) = (text(params, "itemId"), text(params, "delta")) else {
            return Vec::new();
        };
        let Some(growing) = self.growing.get_mut(id) else { return Vec::new() };
        let mut effects = Vec::new();
        match &mut growing.item.body {
            ItemBody::Message { text, .. } if !is_output => text.push_str(delta),
            ItemBody::Command { output, .. } if is_output => {
                output.push_str(delta);
                growing.has_streamed_output = true;
                growing.unlogged.push_str(delta);
                // Whole lines are logged as they come; the rest waits for its line break or the command's end.
                if let Some(end) = growing.unlogged.rfind('\n') {
                    let done: String = growing.unlogged.drain(..=end).collect();
                    effects.extend(done.lines().map(|line| Effect::Log(LogStream::Stdout, line.to_owned())));
                }
            }
            _ => return Vec::new(),
        }
        if growing.reported_at.elapsed() >= DELTA_REPORT_INTERVAL {
            growing.reported_at = Instant::now();
            if let Ok(item) = NewItem::new(id, growing.item.status, growing.item.body.clone()) {
                effects.push(Effect::Item(item));
            }
        }
        effects
    }
}

/// The log lines of an item's start or end. A command's streamed output has been logged already, but for its
/// last unfinished line.
fn lines(is_done: bool, item_type: &str, item: &Value, growing: Option<&Growing>) -> Vec<Effect> {
    match (item_type, is_done) {
        ("commandExecution", false) => vec![agent(format!("$ {}", owned(item, "command")))],
        ("commandExecution", true) => {
            let mut effects = Vec::new();
            match growing.filter(|growing| growing.has_streamed_output) {
                Some(growing) => effects.extend(
                    growing.unlogged.lines().map(|line| Effect::Log(LogStream::Stdout, line.to_owned())),
                ),
                None => {
                    let output = owned(item, "aggregatedOutput");
                    let lines: Vec<&str> = output.lines().collect();
                    let skipped = lines.len().saturating_sub(MAX_COMMAND_OUTPUT_LINES);
                    if skipped > 0 {
                        effects.push(Effect::Log(
                            LogStream::Stdout,
                            format!("… {skipped} lines of output not shown"),
                        ));
                    }
                    effects.extend(
                        lines[skipped..]
                            .iter()
                            .map(|line| Effect::Log(LogStream::Stdout, (*line).to_owned())),
                    );
                }
            }
            let exit = match item.get("exitCode").and_then(Value::as_i64) {
                Some(code) => format!("exit code {code}"),
                None => text(item, "status").unwrap_or("finished").to_owned(),
            };
            effects.push(agent(format!("$ {} → {exit}", owned(item, "command"))));
            effects
        }
        ("fileChange", true) => list(item, "changes")
            .map(|change| {
                let kind = change.get("kind").and_then(|kind| text(kind, "type")).unwrap_or("change");
                agent(format!("file {kind}: {}", text(change, "path").unwrap_or("?")))
            })
            .collect(),
        ("agentMessage", true) => owned(item, "text").lines().map(|line| agent(line.to_owned())).collect(),
        ("reasoning", true) => reasoning_text(item)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| agent(format!("thinking: {line}")))
            .collect(),
        ("mcpToolCall", _) => {
            let status = if is_done { text(item, "status").unwrap_or("done") } else { "started" };
            vec![agent(format!("tool {}/{}: {status}", owned(item, "server"), owned(item, "tool")))]
        }
        ("webSearch", true) => vec![agent(format!("web search: {}", owned(item, "query")))],
        _ => Vec::new(),
    }
}

/// The transcript item of a thread item, or `None` for a type without one (the prompt is reported by the backend
/// itself, so Codex's `userMessage` is one of those).
fn transcript_item(is_done: bool, item_type: &str, item: &Value) -> Option<NewItem> {
    let body = match item_type {
        "agentMessage" => ItemBody::Message { role: MessageRole::Agent, text: owned(item, "text") },
        "reasoning" => ItemBody::Reasoning { text: reasoning_text(item) },
        "commandExecution" => ItemBody::Command {
            command: owned(item, "command"),
            cwd: text(item, "cwd").map(str::to_owned),
            output: owned(item, "aggregatedOutput"),
            exit_code: item.get("exitCode").and_then(Value::as_i64).and_then(|code| i32::try_from(code).ok()),
        },
        "fileChange" => {
            ItemBody::FileChange { changes: list(item, "changes").filter_map(file_change).collect() }
        }
        "mcpToolCall" => ItemBody::ToolCall {
            server: text(item, "server").map(str::to_owned),
            tool: owned(item, "tool"),
            arguments: item.get("arguments").cloned().unwrap_or(Value::Null),
            result: item.get("result").filter(|result| !result.is_null()).cloned(),
            error: item.get("error").and_then(|error| text(error, "message")).map(str::to_owned),
        },
        "dynamicToolCall" => ItemBody::ToolCall {
            server: None,
            tool: owned(item, "tool"),
            arguments: item.get("arguments").cloned().unwrap_or(Value::Null),
            result: item.get("contentItems").filter(|result| !result.is_null()).cloned(),
            error: None,
        },
        "webSearch" => ItemBody::WebSearch { query: owned(item, "query") },
        _ => return None,
    };
    let id = text(item, "id")?;
    NewItem::new(id, status(is_done, item), body).ok()
}

/// The item's own `status` where Codex gives one, else how far the notification says it has got.
fn status(is_done: bool, item: &Value) -> ItemStatus {
    match text(item, "status") {
        Some("inProgress") => ItemStatus::InProgress,
        Some("completed") => ItemStatus::Completed,
        Some("failed") => ItemStatus::Failed,
        Some("declined") => ItemStatus::Declined,
        _ if is_done => ItemStatus::Completed,
        _ => ItemStatus::InProgress,
    }
}

fn turn_end(turn: &Value) -> TurnEnd {
    match text(turn, "status") {
        Some("interrupted") => TurnEnd::Interrupted,
        Some("failed") => TurnEnd::Failed(
            turn.get("error")
                .and_then(|error| text(error, "message"))
                .unwrap_or("the turn failed")
                .to_owned(),
        ),
        _ => TurnEnd::Completed,
    }
}

/// `turn/plan/updated`: the plan as one transcript item per turn (updated in place) and its lines.
fn plan(params: &Value) -> Vec<Effect> {
    let entries: Vec<PlanEntry> = list(params, "plan")
        .map(|step| PlanEntry { text: owned(step, "step"), done: text(step, "status") == Some("completed") })
        .collect();
    let done = entries.iter().filter(|entry| entry.done).count();
    let mut effects = vec![agent(format!("plan ({done}/{} done):", entries.len()))];
    for entry in &entries {
        effects.push(agent(format!("  [{}] {}", if entry.done { "x" } else { " " }, entry.text)));
    }
    let status = if done == entries.len() { ItemStatus::Completed } else { ItemStatus::InProgress };
    let id = format!("plan-{}", text(params, "turnId").unwrap_or("turn"));
    if let Ok(item) = NewItem::new(id, status, ItemBody::Plan { entries }) {
        effects.push(Effect::Item(item));
    }
    effects
}

fn file_change(change: &Value) -> Option<FileChange> {
    let kind = match change.get("kind").and_then(|kind| text(kind, "type"))? {
        "add" => FileChangeKind::Add,
        "delete" => FileChangeKind::Delete,
        "update" => FileChangeKind::Update,
        _ => return None,
    };
    Some(FileChange { path: owned(change, "path"), kind, diff: text(change, "diff").map(str::to_owned) })
}

/// A reasoning item's summary, or its raw content when it has no summary.
fn reasoning_text(item: &Value) -> String {
    let summary: Vec<&str> = list(item, "summary").filter_map(Value::as_str).collect();
    let parts =
        if summary.is_empty() { list(item, "content").filter_map(Value::as_str).collect() } else { summary };
    parts.join("\n")
}

fn warning(message: Option<&str>) -> Vec<Effect> {
    message
        .map(|message| vec![Effect::Log(LogStream::Stderr, format!("warning: {message}"))])
        .unwrap_or_default()
}

/// Codex's usage fields under the names the exec mode reports them (`inputTokens` → `input_tokens`).
fn snake_case_keys(total: &Map<String, Value>) -> Value {
    let snake = |name: &str| {
        name.chars().fold(String::new(), |mut out, c| {
            if c.is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            out
        })
    };
    Value::Object(total.iter().map(|(name, value)| (snake(name), value.clone())).collect())
}

fn agent(line: String) -> Effect {
    Effect::Log(LogStream::Agent, line)
}

#[cfg(test)]
#[path = "notifications_tests.rs"]
mod tests;
