//! Claude Code's tool calls as transcript items and log lines: a `tool_use` block starts an item under the block's
//! id, and the `tool_result` with the same id (in a later `user` message) completes it. Bash becomes a `command`
//! with its output and exit code, Edit, MultiEdit and Write a `file_change` with a diff, WebSearch a `web_search`,
//! anything else (MCP tools included) a `tool_call`.

use std::collections::{HashMap, HashSet, VecDeque};

use dashboard_core::{FileChange, FileChangeKind, ItemBody, ItemStatus, LogStream, NewItem};
use serde_json::Value;

use super::events::Effect;
use super::json::{content_text, count, list, owned, text};

/// The most tool calls remembered while they wait for their result; past it the oldest is forgotten (its result
/// then shows as a tool call of an unknown tool), so a stream that never answers cannot grow memory without bound.
const MAX_PENDING: usize = 1024;
/// The most lines of a command's output shown in the log; the rest is in the transcript item.
const MAX_COMMAND_OUTPUT_LINES: usize = 20;
/// How a failing Bash result begins (Claude Code 2.1: `Exit code 3\n<output>`); a successful one names no code.
const EXIT_CODE_PREFIX: &str = "Exit code ";

/// A tool call that waits for its result.
#[derive(Clone, Debug)]
struct ToolUse {
    name: String,
    input: Value,
}

/// The tool calls seen so far and the ones Claude Code refused to run.
#[derive(Debug, Default)]
pub(super) struct Tools {
    pending: HashMap<String, ToolUse>,
    /// The ids in `pending`, oldest first.
    order: VecDeque<String>,
    /// Calls a `permission_denied` message named: their result is a refusal, not a failure.
    denied: HashSet<String>,
}

/// How a tool call ended, from its `tool_result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Completed,
    Failed,
    Declined,
}

impl Ending {
    fn status(self) -> ItemStatus {
        match self {
            Self::Completed => ItemStatus::Completed,
            Self::Failed => ItemStatus::Failed,
            Self::Declined => ItemStatus::Declined,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Declined => "declined",
        }
    }
}

impl Tools {
    /// A `tool_use` block of an assistant message: its log line and its item, in progress.
    pub(super) fn started(&mut self, block: &Value) -> Vec<Effect> {
        let Some(id) = text(block, "id").filter(|id| !id.is_empty()) else { return Vec::new() };
        let tool =
            ToolUse { name: owned(block, "name"), input: block.get("input").cloned().unwrap_or(Value::Null) };
        let mut effects = vec![agent(start_line(&tool))];
        effects.extend(item(id, ItemStatus::InProgress, started_body(&tool)));
        if self.order.len() == MAX_PENDING
            && let Some(oldest) = self.order.pop_front()
        {
            self.pending.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.pending.insert(id.to_owned(), tool);
        effects
    }

    /// A `permission_denied` message: Claude Code refused to run the call `tool_use_id`.
    pub(super) fn denied(&mut self, tool_use_id: &str) {
        if self.pending.contains_key(tool_use_id) {
            self.denied.insert(tool_use_id.to_owned());
        }
    }

    /// A `tool_result` block of a user message, with the message's `tool_use_result` (Claude Code's own account of
    /// the result) and `tool_result_meta`: the call's log lines and its item, ended.
    pub(super) fn finished(
        &mut self,
        block: &Value,
        details: Option<&Value>,
        meta: Option<&Value>,
    ) -> Vec<Effect> {
        let Some(id) = text(block, "tool_use_id").filter(|id| !id.is_empty()) else { return Vec::new() };
        let tool =
            self.pending.remove(id).unwrap_or_else(|| ToolUse { name: String::new(), input: Value::Null });
        self.order.retain(|pending| pending != id);
        let was_denied = self.denied.remove(id) || is_refusal(meta, id);
        let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
        let content = block.get("content").unwrap_or(&Value::Null);
        let ending = match (is_error, was_denied) {
            (_, true) => Ending::Declined,
            (true, false) => Ending::Failed,
            (false, false) => Ending::Completed,
        };
        match tool.name.as_str() {
            "Bash" => command_finished(id, &tool, content, details, ending),
            "Edit" | "MultiEdit" | "Write" => file_change_finished(id, &tool, content, details, ending),
            _ => tool_call_finished(id, &tool, content, ending),
        }
    }
}

/// Whether the call's `tool_result_meta` says it was refused rather than run: a permission rule or a person said no
/// (Claude Code 2.1: `non_execution_kind` `permission-rule` or `user-rejected`, or a `reject` decision).
fn is_refusal(meta: Option<&Value>, id: &str) -> bool {
    let Some(entries) = meta.and_then(Value::as_array) else { return false };
    entries.iter().filter(|entry| text(entry, "id").is_none_or(|of| of == id)).any(|entry| {
        matches!(text(entry, "non_execution_kind"), Some("permission-rule" | "user-rejected"))
            || entry.get("permission_decision").and_then(|decision| text(decision, "decision"))
                == Some("reject")
    })
}

fn agent(line: String) -> Effect {
    Effect::Log(LogStream::Agent, line)
}

fn item(id: &str, status: ItemStatus, body: ItemBody) -> Option<Effect> {
    NewItem::new(id, status, body).ok().map(Effect::Item)
}

/// The first line of `text`, for a log line about it.
fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim()
}

/// The log line of a call as it starts: `$ COMMAND`, `file update: PATH`, `tool NAME: WHAT`.
fn start_line(tool: &ToolUse) -> String {
    match tool.name.as_str() {
        "Bash" => format!("$ {}", owned(&tool.input, "command")),
        "Edit" | "MultiEdit" => format!("editing {}", owned(&tool.input, "file_path")),
        "Write" => format!("writing {}", owned(&tool.input, "file_path")),
        name => {
            let what = ["file_path", "path", "pattern", "query", "url", "description", "prompt"]
                .iter()
                .find_map(|field| text(&tool.input, field))
                .map(first_line)
                .unwrap_or("started");
            format!("tool {}: {what}", display_name(name))
        }
    }
}

/// A tool's name as the log shows it: `server/tool` for an MCP tool (`mcp__server__tool`).
fn display_name(name: &str) -> String {
    match mcp_parts(name) {
        Some((server, tool)) => format!("{server}/{tool}"),
        None if name.is_empty() => "?".to_owned(),
        None => name.to_owned(),
    }
}

/// The server and tool of an MCP tool's name, `mcp__SERVER__TOOL`.
fn mcp_parts(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("mcp__")?.split_once("__")
}

/// The item of a call as it starts, before its result.
fn started_body(tool: &ToolUse) -> ItemBody {
    match tool.name.as_str() {
        "Bash" => ItemBody::Command {
            command: owned(&tool.input, "command"),
            cwd: None,
            output: String::new(),
            exit_code: None,
        },
        "Edit" | "MultiEdit" | "Write" => ItemBody::FileChange { changes: vec![change_from_input(tool)] },
        "WebSearch" => ItemBody::WebSearch { query: owned(&tool.input, "query") },
        _ => tool_call(tool, None, None),
    }
}

fn tool_call(tool: &ToolUse, result: Option<Value>, error: Option<String>) -> ItemBody {
    let (server, name) = match mcp_parts(&tool.name) {
        Some((server, name)) => (Some(server.to_owned()), name.to_owned()),
        None => (None, tool.name.clone()),
    };
    ItemBody::ToolCall { server, tool: name, arguments: tool.input.clone(), result, error }
}

fn command_finished(
    id: &str,
    tool: &ToolUse,
    content: &Value,
    details: Option<&Value>,
    ending: Ending,
) -> Vec<Effect> {
    let command = owned(&tool.input, "command");
    let text = content_text(content);
    let (output, exit_code, ending) = match ending {
        Ending::Completed => {
            // Claude Code's own account keeps stdout and stderr apart; the model's text joins them.
            let output = match details.filter(|details| details.is_object()) {
                Some(details) => {
                    let (stdout, stderr) = (owned(details, "stdout"), owned(details, "stderr"));
                    if stderr.is_empty() { stdout } else { format!("{stdout}\n{stderr}") }
                }
                None => text,
            };
            let was_interrupted =
                details.and_then(|details| details.get("interrupted")) == Some(&Value::Bool(true));
            if was_interrupted {
                (output, None, Ending::Failed)
            } else {
                (output, Some(0), Ending::Completed)
            }
        }
        Ending::Failed => match exit_code_of(&text) {
            Some((code, rest)) => (rest.to_owned(), Some(code), Ending::Failed),
            None => (text, None, Ending::Failed),
        },
        Ending::Declined => (text, None, Ending::Declined),
    };
    let mut effects = Vec::new();
    if ending != Ending::Declined {
        let lines: Vec<&str> = output.lines().collect();
        let skipped = lines.len().saturating_sub(MAX_COMMAND_OUTPUT_LINES);
        if skipped > 0 {
            effects.push(Effect::Log(LogStream::Stdout, format!("… {skipped} lines of output not shown")));
        }
        effects
            .extend(lines[skipped..].iter().map(|line| Effect::Log(LogStream::Stdout, (*line).to_owned())));
    }
    let how = match (ending, exit_code) {
        (_, Some(code)) => format!("exit code {code}"),
        (Ending::Declined, None) => format!("declined: {}", first_line(&output)),
        (_, None) => format!("{}: {}", ending.word(), first_line(&output)),
    };
    effects.push(agent(format!("$ {command} → {how}")));
    let body = ItemBody::Command { command, cwd: None, output, exit_code };
    effects.extend(item(id, ending.status(), body));
    effects
}

/// The exit code a failing Bash result starts with (`Exit code 3\nrest`), and the rest.
fn exit_code_of(text: &str) -> Option<(i32, &str)> {
    let after = text.strip_prefix(EXIT_CODE_PREFIX)?;
    let (code, rest) = after.split_once('\n').unwrap_or((after, ""));
    Some((code.trim().parse().ok()?, rest))
}

fn file_change_finished(
    id: &str,
    tool: &ToolUse,
    content: &Value,
    details: Option<&Value>,
    ending: Ending,
) -> Vec<Effect> {
    let mut change = change_from_input(tool);
    if let Some(details) = details.filter(|details| details.is_object()) {
        refine(&mut change, details);
    }
    let verb = match change.kind {
        FileChangeKind::Add => "add",
        FileChangeKind::Delete => "delete",
        FileChangeKind::Update => "update",
    };
    let line = match ending {
        Ending::Completed => format!("file {verb}: {}", change.path),
        _ => format!(
            "file {verb}: {} → {}: {}",
            change.path,
            ending.word(),
            first_line(&content_text(content))
        ),
    };
    let mut effects = vec![agent(line)];
    effects.extend(item(id, ending.status(), ItemBody::FileChange { changes: vec![change] }));
    effects
}

/// The change a call's input describes: Write adds the file with its content (as far as is known before the
/// result), Edit and MultiEdit replace text, shown as a diff without line numbers.
fn change_from_input(tool: &ToolUse) -> FileChange {
    let path = owned(&tool.input, "file_path");
    match tool.name.as_str() {
        "Write" => FileChange {
            path,
            kind: FileChangeKind::Add,
            diff: text(&tool.input, "content").map(str::to_owned),
        },
        "MultiEdit" => {
            let hunks: Vec<String> = list(&tool.input, "edits")
                .map(|edit| replacement_hunk(&owned(edit, "old_string"), &owned(edit, "new_string")))
                .collect();
            FileChange {
                path,
                kind: FileChangeKind::Update,
                diff: (!hunks.is_empty()).then(|| hunks.concat()),
            }
        }
        _ => {
            let diff = replacement_hunk(&owned(&tool.input, "old_string"), &owned(&tool.input, "new_string"));
            FileChange { path, kind: FileChangeKind::Update, diff: Some(diff) }
        }
    }
}

/// A hunk that replaces `old` by `new`, where their lines are not known.
fn replacement_hunk(old: &str, new: &str) -> String {
    let mut hunk = String::from("@@\n");
    for line in old.lines() {
        hunk.push_str(&format!("-{line}\n"));
    }
    for line in new.lines() {
        hunk.push_str(&format!("+{line}\n"));
    }
    hunk
}

/// The change as Claude Code's account of the result gives it: `type` `create` (an added file, its `content`) or
/// `update`, and the `structuredPatch`'s hunks with their line numbers.
fn refine(change: &mut FileChange, details: &Value) {
    if let Some(path) = text(details, "filePath").filter(|path| !path.is_empty()) {
        path.clone_into(&mut change.path);
    }
    match text(details, "type") {
        Some("create") => {
            change.kind = FileChangeKind::Add;
            if let Some(content) = text(details, "content") {
                change.diff = Some(content.to_owned());
            }
            return;
        }
        Some("update") => change.kind = FileChangeKind::Update,
        _ => {}
    }
    let hunks: Vec<String> = list(details, "structuredPatch").map(patch_hunk).collect();
    if !hunks.is_empty() {
        change.diff = Some(hunks.concat());
    }
}

/// One hunk of a `structuredPatch` (`oldStart`, `oldLines`, `newStart`, `newLines`, `lines`) as unified diff text.
fn patch_hunk(hunk: &Value) -> String {
    let number = |field: &str| count(hunk, field).unwrap_or(0);
    let mut text = format!(
        "@@ -{},{} +{},{} @@\n",
        number("oldStart"),
        number("oldLines"),
        number("newStart"),
        number("newLines")
    );
    for line in list(hunk, "lines").filter_map(Value::as_str) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn tool_call_finished(id: &str, tool: &ToolUse, content: &Value, ending: Ending) -> Vec<Effect> {
    let name = display_name(&tool.name);
    let (line, body) = match ending {
        Ending::Completed => {
            (format!("tool {name}: completed"), tool_call(tool, Some(content.clone()), None))
        }
        _ => {
            let error = content_text(content);
            let line = format!("tool {name}: {}: {}", ending.word(), first_line(&error));
            (line, tool_call(tool, None, Some(error)))
        }
    };
    let body = match (tool.name.as_str(), body) {
        ("WebSearch", _) => ItemBody::WebSearch { query: owned(&tool.input, "query") },
        (_, body) => body,
    };
    let mut effects = vec![agent(line)];
    effects.extend(item(id, ending.status(), body));
    effects
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
