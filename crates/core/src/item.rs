//! Transcript items: what an agent did, structured — its messages, reasoning, commands, file changes, tool calls,
//! searches, plans, approvals and errors. An execution keeps them beside its log lines: the log is the text view,
//! the items the transcript. An item is reported when it starts and again, under the same id, as it changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CoreError, Timestamp};

/// The longest item id, in bytes.
pub const MAX_ITEM_ID_BYTES: usize = 256;
/// The most text one field of an item keeps (a message, a command's output, a diff, a tool's arguments or result as
/// JSON); longer text is cut on a character boundary and marked.
pub const MAX_ITEM_TEXT_BYTES: usize = 256 * 1024;
/// The most entries one list of an item keeps (the files of a change, the steps of a plan).
pub const MAX_ITEM_ENTRIES: usize = 1000;

/// How far an item has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Started, not finished.
    #[default]
    InProgress,
    /// Finished as meant.
    Completed,
    /// Finished with an error (a command's non-zero exit, a tool's error).
    Failed,
    /// Not done because it was declined (an approval refused, a run stopped while it waited).
    Declined,
}

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// The agent.
    Agent,
    /// The person (the prompt of a turn).
    User,
}

/// What happened to one file in a `file_change` item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    /// Created.
    Add,
    /// Removed.
    Delete,
    /// Changed.
    Update,
}

/// One file of a `file_change` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileChange {
    /// The file's path, as the agent names it.
    pub path: String,
    /// Added, deleted or updated.
    pub kind: FileChangeKind,
    /// The unified diff (for an added file, its content), when the agent gives it.
    #[serde(default)]
    pub diff: Option<String>,
}

/// One step of a `plan` item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanEntry {
    /// What the step is.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
}

/// What an item is, with the fields of its kind; `kind` names it in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemBody {
    /// A message of the agent or of the person.
    Message {
        /// Who said it.
        role: MessageRole,
        /// What was said.
        text: String,
    },
    /// The agent's reasoning, as far as it shows it.
    Reasoning {
        /// The text.
        text: String,
    },
    /// A command the agent ran.
    Command {
        /// The command line.
        command: String,
        /// Where it ran.
        #[serde(default)]
        cwd: Option<String>,
        /// The end of its output.
        #[serde(default)]
        output: String,
        /// Its exit code, once it ended.
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// Files the agent changed.
    FileChange {
        /// Each file, with its diff when known.
        changes: Vec<FileChange>,
    },
    /// A tool the agent called (an MCP tool, a function).
    ToolCall {
        /// The MCP server, when it is one.
        #[serde(default)]
        server: Option<String>,
        /// The tool.
        tool: String,
        /// Its arguments.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        arguments: Value,
        /// What it answered.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        result: Option<Value>,
        /// Its error, when it failed.
        #[serde(default)]
        error: Option<String>,
    },
    /// A web search.
    WebSearch {
        /// What was searched for.
        query: String,
    },
    /// The agent's plan.
    Plan {
        /// Its steps.
        entries: Vec<PlanEntry>,
    },
    /// An approval the agent asked for (the approval's own record has the details).
    Approval {
        /// The approval's id.
        approval_id: String,
    },
    /// An error the agent reported.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl ItemBody {
    /// The kind, as in JSON: `message`, `command`, `file_change`…
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::Reasoning { .. } => "reasoning",
            Self::Command { .. } => "command",
            Self::FileChange { .. } => "file_change",
            Self::ToolCall { .. } => "tool_call",
            Self::WebSearch { .. } => "web_search",
            Self::Plan { .. } => "plan",
            Self::Approval { .. } => "approval",
            Self::Error { .. } => "error",
        }
    }

    /// The body with every text within [`MAX_ITEM_TEXT_BYTES`] and every list within [`MAX_ITEM_ENTRIES`].
    fn bounded(mut self) -> Self {
        let cut = |text: &mut String| cut_text(text, MAX_ITEM_TEXT_BYTES);
        match &mut self {
            Self::Message { text, .. } | Self::Reasoning { text } | Self::Error { message: text } => {
                cut(text)
            }
            Self::WebSearch { query } => cut(query),
            Self::Approval { approval_id } => cut_text(approval_id, MAX_ITEM_ID_BYTES),
            Self::Command { command, cwd, output, .. } => {
                cut(command);
                cut_tail(output, MAX_ITEM_TEXT_BYTES);
                if let Some(cwd) = cwd {
                    cut(cwd);
                }
            }
            Self::FileChange { changes } => {
                changes.truncate(MAX_ITEM_ENTRIES);
                for change in changes {
                    cut(&mut change.path);
                    if let Some(diff) = &mut change.diff {
                        cut(diff);
                    }
                }
            }
            Self::ToolCall { server, tool, arguments, result, error } => {
                cut(tool);
                for text in [server.as_mut(), error.as_mut()].into_iter().flatten() {
                    cut(text);
                }
                bound_json(arguments);
                if let Some(result) = result {
                    bound_json(result);
                }
            }
            Self::Plan { entries } => {
                entries.truncate(MAX_ITEM_ENTRIES);
                for entry in entries {
                    cut(&mut entry.text);
                }
            }
        }
        self
    }
}

/// An item as a backend reports it: the same `id` again updates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewItem {
    /// The backend's id of the item (unique within the execution), or one the backend makes up.
    pub id: String,
    /// How far it has got.
    pub status: ItemStatus,
    /// What it is.
    #[serde(flatten)]
    pub body: ItemBody,
}

impl NewItem {
    /// An item with `id`, `status` and `body`, every field within the limits ([`MAX_ITEM_ID_BYTES`],
    /// [`MAX_ITEM_TEXT_BYTES`], [`MAX_ITEM_ENTRIES`]; a command's output keeps its end). An empty id is refused.
    pub fn new(id: impl Into<String>, status: ItemStatus, body: ItemBody) -> Result<Self, CoreError> {
        let mut id = id.into();
        if id.is_empty() {
            return Err(CoreError::invalid_field("id", "an item needs an id"));
        }
        cut_text(&mut id, MAX_ITEM_ID_BYTES);
        Ok(Self { id, status, body: body.bounded() })
    }
}

/// A stored item of one execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Item {
    /// The backend's id of the item, unique within the execution.
    pub id: String,
    /// 1 for the execution's first item, then +1 for each new item, in the order they first appeared.
    pub seq: u64,
    /// How far it has got.
    pub status: ItemStatus,
    /// When it first appeared.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub ts: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    /// What it is (its `kind` and the kind's fields, in the same JSON object).
    #[serde(flatten)]
    pub body: ItemBody,
}

/// Cuts `text` to at most `max_bytes` on a character boundary, marking the cut.
fn cut_text(text: &mut String, max_bytes: usize) {
    const MARK: &str = " … [cut]";
    if text.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

/// Keeps the end of `text` (a command's output, where the end matters), at most `max_bytes`, marking the cut.
fn cut_tail(text: &mut String, max_bytes: usize) {
    const MARK: &str = "[cut] … ";
    if text.len() <= max_bytes {
        return;
    }
    let mut start = text.len() - max_bytes.saturating_sub(MARK.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    *text = format!("{MARK}{}", &text[start..]);
}

/// A JSON value whose text is over [`MAX_ITEM_TEXT_BYTES`] becomes that text cut, as a string.
fn bound_json(value: &mut Value) {
    let text = value.to_string();
    if text.len() > MAX_ITEM_TEXT_BYTES {
        let mut text = text;
        cut_text(&mut text, MAX_ITEM_TEXT_BYTES);
        *value = Value::String(text);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_item_is_one_json_object_with_its_kind() {
        let item = Item {
            id: "c1".into(),
            seq: 1,
            status: ItemStatus::Completed,
            ts: crate::now(),
            updated_at: crate::now(),
            body: ItemBody::Command {
                command: "ls".into(),
                cwd: None,
                output: "a\n".into(),
                exit_code: Some(0),
            },
        };
        let value = serde_json::to_value(&item).expect("serializes");
        assert_eq!(value["kind"], "command");
        assert_eq!((value["command"].clone(), value["exit_code"].clone()), (json!("ls"), json!(0)));
        assert_eq!(value["status"], "completed");
        let back: Item = serde_json::from_value(value).expect("reads back");
        assert_eq!(back, item);
    }

    #[test]
    fn fields_from_outside_are_bounded() {
        let long = "é".repeat(MAX_ITEM_TEXT_BYTES);
        let message = ItemBody::Message { role: MessageRole::Agent, text: long.clone() };
        let item = NewItem::new("x".repeat(1000), ItemStatus::Completed, message).expect("an item");
        assert!(item.id.len() <= MAX_ITEM_ID_BYTES);
        let ItemBody::Message { text, .. } = &item.body else { panic!("a message") };
        assert!(text.len() <= MAX_ITEM_TEXT_BYTES && text.ends_with("[cut]"), "{}", text.len());

        let output = format!("{}the end", "x".repeat(2 * MAX_ITEM_TEXT_BYTES));
        let command = ItemBody::Command { command: "yes".into(), cwd: None, output, exit_code: None };
        let item = NewItem::new("c", ItemStatus::InProgress, command).expect("an item");
        let ItemBody::Command { output, .. } = &item.body else { panic!("a command") };
        assert!(
            output.len() <= MAX_ITEM_TEXT_BYTES && output.ends_with("the end"),
            "the end of the output is kept"
        );

        let plan = ItemBody::Plan { entries: vec![PlanEntry { text: "step".into(), done: false }; 5000] };
        let ItemBody::Plan { entries } =
            NewItem::new("p", ItemStatus::Completed, plan).expect("an item").body
        else {
            panic!("a plan")
        };
        assert_eq!(entries.len(), MAX_ITEM_ENTRIES);
        assert!(NewItem::new("", ItemStatus::Completed, ItemBody::Error { message: "x".into() }).is_err());
    }
}
