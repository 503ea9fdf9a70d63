//! Codex's thread items (`item.started`, `item.updated`, `item.completed` of `codex exec --json`) as transcript
//! items: the same id each time, so a later event updates the item. Unknown item types and fields are passed over.

use super::json::{list, owned, text};
use dashboard_core::{FileChange, FileChangeKind, ItemBody, ItemStatus, MessageRole, NewItem, PlanEntry};
use serde_json::Value;

/// The transcript item of one `item.*` event (`phase` is the event's type), or `None` for an item type without one
/// or an item without an id.
pub(super) fn transcript_item(phase: &str, item: &Value) -> Option<NewItem> {
    let id = text(item, "id").filter(|id| !id.is_empty())?;
    let item_type = text(item, "type").or_else(|| text(item, "item_type")).unwrap_or_default();
    let body = match item_type {
        "agent_message" | "assistant_message" => {
            ItemBody::Message { role: MessageRole::Agent, text: owned(item, "text") }
        }
        "reasoning" => ItemBody::Reasoning { text: owned(item, "text") },
        "command_execution" => ItemBody::Command {
            command: owned(item, "command"),
            cwd: None,
            output: owned(item, "aggregated_output"),
            exit_code: item
                .get("exit_code")
                .and_then(Value::as_i64)
                .and_then(|code| i32::try_from(code).ok()),
        },
        "file_change" => {
            ItemBody::FileChange { changes: list(item, "changes").filter_map(file_change).collect() }
        }
        "mcp_tool_call" => ItemBody::ToolCall {
            server: text(item, "server").map(str::to_owned),
            tool: owned(item, "tool"),
            arguments: item.get("arguments").cloned().unwrap_or(Value::Null),
            result: item.get("result").filter(|result| !result.is_null()).cloned(),
            error: item.get("error").and_then(|error| text(error, "message")).map(str::to_owned),
        },
        "web_search" => ItemBody::WebSearch { query: owned(item, "query") },
        "todo_list" => ItemBody::Plan {
            entries: list(item, "items")
                .map(|entry| PlanEntry {
                    text: owned(entry, "text"),
                    done: entry.get("completed").and_then(Value::as_bool) == Some(true),
                })
                .collect(),
        },
        "error" => ItemBody::Error { message: owned(item, "message") },
        _ => return None,
    };
    NewItem::new(id, status(phase, item), body).ok()
}

/// The item's own `status` where Codex gives one (commands, file changes, tool calls), else how far the event says
/// it has got: completed with `item.completed`, in progress before.
fn status(phase: &str, item: &Value) -> ItemStatus {
    match text(item, "status") {
        Some("in_progress") => ItemStatus::InProgress,
        Some("completed") => ItemStatus::Completed,
        Some("failed") => ItemStatus::Failed,
        Some("declined") => ItemStatus::Declined,
        _ if phase == "item.completed" => ItemStatus::Completed,
        _ => ItemStatus::InProgress,
    }
}

fn file_change(change: &Value) -> Option<FileChange> {
    let kind = match text(change, "kind")? {
        "add" => FileChangeKind::Add,
        "delete" => FileChangeKind::Delete,
        "update" => FileChangeKind::Update,
        _ => return None,
    };
    Some(FileChange { path: owned(change, "path"), kind, diff: None })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The item of `event` (one `item.*` line), as JSON with its id, status and kind's fields.
    fn check(event: Value, expected: Option<Value>) {
        let phase = event["type"].as_str().expect("a type").to_owned();
        let item = transcript_item(&phase, &event["item"]);
        let item = item.map(|item| serde_json::to_value(item).expect("serializes"));
        assert_eq!(item, expected, "{event}");
    }

    #[test]
    fn each_item_type_becomes_its_kind() {
        check(
            json!({"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": "Done."}}),
            Some(
                json!({"id": "i0", "status": "completed", "kind": "message", "role": "agent", "text": "Done."}),
            ),
        );
        check(
            json!({"type": "item.started", "item": {"id": "i1", "type": "command_execution", "command": "ls",
                   "aggregated_output": "", "exit_code": null, "status": "in_progress"}}),
            Some(
                json!({"id": "i1", "status": "in_progress", "kind": "command", "command": "ls", "cwd": null,
                        "output": "", "exit_code": null}),
            ),
        );
        check(
            json!({"type": "item.completed", "item": {"id": "i2", "type": "file_change", "status": "completed",
                   "changes": [{"path": "a.rs", "kind": "add"}, {"path": "b.rs", "kind": "teleport"}]}}),
            Some(json!({"id": "i2", "status": "completed", "kind": "file_change",
                        "changes": [{"path": "a.rs", "kind": "add", "diff": null}]})),
        );
        check(
            json!({"type": "item.completed", "item": {"id": "i3", "type": "mcp_tool_call", "server": "gh",
                   "tool": "search", "arguments": {"q": "x"}, "result": null, "error": {"message": "denied"},
                   "status": "failed"}}),
            Some(
                json!({"id": "i3", "status": "failed", "kind": "tool_call", "server": "gh", "tool": "search",
                        "arguments": {"q": "x"}, "result": null, "error": "denied"}),
            ),
        );
        check(
            json!({"type": "item.updated", "item": {"id": "i4", "type": "todo_list",
                   "items": [{"text": "read", "completed": true}, {"text": "fix", "completed": false}]}}),
            Some(json!({"id": "i4", "status": "in_progress", "kind": "plan",
                        "entries": [{"text": "read", "done": true}, {"text": "fix", "done": false}]})),
        );
        check(
            json!({"type": "item.completed", "item": {"id": "i5", "type": "error", "message": "model rerouted"}}),
            Some(json!({"id": "i5", "status": "completed", "kind": "error", "message": "model rerouted"})),
        );
    }

    #[test]
    fn unknown_types_and_items_without_an_id_have_no_item() {
        check(json!({"type": "item.completed", "item": {"id": "i9", "type": "hologram"}}), None);
        check(json!({"type": "item.completed", "item": {"type": "reasoning", "text": "hm"}}), None);
    }
}
