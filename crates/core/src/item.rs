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
/// The longest path of a file in a `file_change` item, in bytes.
pub const MAX_ITEM_PATH_BYTES: usize = 4 * 1024;
/// The most text one item keeps, all its fields together ([`ItemBody::text_bytes`]): within it, each field is cut
/// to what the fields before it left, and a list stops at the entry that no longer fits.
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

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

impl ItemStatus {
    /// Every status, in the order an item may go through them.
    pub const ALL: [Self; 4] = [Self::InProgress, Self::Completed, Self::Failed, Self::Declined];

    /// The status as in JSON: `in_progress`, `completed`, `failed`, `declined`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Declined => "declined",
        }
    }

    /// Whether the item has not finished yet.
    pub fn is_open(self) -> bool {
        self == Self::InProgress
    }
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

    /// The bytes of text the body holds, all its fields together (a JSON value counted as written out): what
    /// [`MAX_ITEM_BYTES`] bounds, and what an execution's budget of item bytes counts.
    pub fn text_bytes(&self) -> usize {
        let optional = |text: &Option<String>| text.as_ref().map_or(0, String::len);
        match self {
            Self::Message { text, .. } | Self::Reasoning { text } | Self::Error { message: text } => {
                text.len()
            }
            Self::WebSearch { query } => query.len(),
            Self::Approval { approval_id } => approval_id.len(),
            Self::Command { command, cwd, output, .. } => command.len() + optional(cwd) + output.len(),
            Self::FileChange { changes } => {
                changes.iter().map(|change| change.path.len() + optional(&change.diff)).sum()
            }
            Self::ToolCall { server, tool, arguments, result, error } => {
                tool.len()
                    + optional(server)
                    + optional(error)
                    + json_bytes(arguments)
                    + result.as_ref().map_or(0, json_bytes)
            }
            Self::Plan { entries } => entries.iter().map(|entry| entry.text.len()).sum(),
        }
    }

    /// The body within the limits: every text within [`MAX_ITEM_TEXT_BYTES`] (a path within
    /// [`MAX_ITEM_PATH_BYTES`]; a command's output keeps its end), every list within [`MAX_ITEM_ENTRIES`], and all
    /// of it within [`MAX_ITEM_BYTES`] — the fields in order, a file change's paths before its diffs, so that every
    /// file kept is named. A cut text ends (an output begins) with a mark.
    pub fn bounded(mut self) -> Self {
        let mut room = Room { n_left: MAX_ITEM_BYTES };
        match &mut self {
            Self::Message { text, .. } | Self::Reasoning { text } | Self::Error { message: text } => {
                room.cut(text, MAX_ITEM_TEXT_BYTES);
            }
            Self::WebSearch { query } => room.cut(query, MAX_ITEM_TEXT_BYTES),
            Self::Approval { approval_id } => cut_id(approval_id),
            Self::Command { command, cwd, output, .. } => {
                room.cut(command, MAX_ITEM_TEXT_BYTES);
                if let Some(cwd) = cwd {
                    room.cut(cwd, MAX_ITEM_PATH_BYTES);
                }
                room.cut_tail(output, MAX_ITEM_TEXT_BYTES);
            }
            Self::FileChange { changes } => {
                changes.truncate(MAX_ITEM_ENTRIES);
                let mut n_named = 0;
                for change in changes.iter_mut() {
                    cut_text(&mut change.path, MAX_ITEM_PATH_BYTES);
                    if !room.take(change.path.len()) {
                        break;
                    }
                    n_named += 1;
                }
                changes.truncate(n_named);
                for diff in changes.iter_mut().filter_map(|change| change.diff.as_mut()) {
                    room.cut(diff, MAX_ITEM_TEXT_BYTES);
                }
            }
            Self::ToolCall { server, tool, arguments, result, error } => {
                room.cut(tool, MAX_ITEM_TEXT_BYTES);
                for text in [server.as_mut(), error.as_mut()].into_iter().flatten() {
                    room.cut(text, MAX_ITEM_TEXT_BYTES);
                }
                room.cut_json(arguments);
                if let Some(result) = result {
                    room.cut_json(result);
                }
            }
            Self::Plan { entries } => {
                entries.truncate(MAX_ITEM_ENTRIES);
                // The entry that spends the room is kept (cut); the ones after it would be empty.
                let mut n_kept = 0;
                for entry in entries.iter_mut() {
                    room.cut(&mut entry.text, MAX_ITEM_TEXT_BYTES);
                    n_kept += 1;
                    if room.n_left == 0 {
                        break;
                    }
                }
                entries.truncate(n_kept);
            }
        }
        self
    }
}

/// What is left of one item's [`MAX_ITEM_BYTES`] while its fields are bounded in order.
struct Room {
    n_left: usize,
}

impl Room {
    /// Takes `n_bytes` if they fit; whether they did.
    fn take(&mut self, n_bytes: usize) -> bool {
        let fits = n_bytes <= self.n_left;
        if fits {
            self.n_left -= n_bytes;
        }
        fits
    }

    /// Cuts `text` to `max_bytes` and to the room left, keeping its start, and takes what it keeps.
    fn cut(&mut self, text: &mut String, max_bytes: usize) {
        cut_text(text, max_bytes.min(self.n_left));
        self.n_left -= text.len();
    }

    /// Cuts `text` to `max_bytes` and to the room left, keeping its end, and takes what it keeps.
    fn cut_tail(&mut self, text: &mut String, max_bytes: usize) {
        cut_tail(text, max_bytes.min(self.n_left));
        self.n_left -= text.len();
    }

    /// A JSON value whose text is over [`MAX_ITEM_TEXT_BYTES`] or the room left becomes that text cut, as a string.
    fn cut_json(&mut self, value: &mut Value) {
        let max_bytes = MAX_ITEM_TEXT_BYTES.min(self.n_left);
        if json_bytes(value) > max_bytes {
            let mut text = value.to_string();
            cut_text(&mut text, max_bytes);
            *value = Value::String(text);
        }
        self.n_left -= json_bytes(value);
    }
}

/// The bytes a JSON value counts for: a string its text (a cut value is kept as one), anything else as written out.
fn json_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        other => other.to_string().len(),
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
    /// An item with `id`, `status` and `body`, within the limits ([`bounded`](Self::bounded)). An empty id is
    /// refused.
    pub fn new(id: impl Into<String>, status: ItemStatus, body: ItemBody) -> Result<Self, CoreError> {
        Self { id: id.into(), status, body }.bounded()
    }

    /// The item within the limits: an id over [`MAX_ITEM_ID_BYTES`] cut and ended with a hash of the whole id (so
    /// that distinct ids stay distinct), the body [bounded](ItemBody::bounded). An empty id is refused. The fields
    /// are public, so whoever stores items from elsewhere (the engine) applies this to each.
    pub fn bounded(mut self) -> Result<Self, CoreError> {
        if self.id.is_empty() {
            return Err(CoreError::invalid_field("id", "an item needs an id"));
        }
        cut_id(&mut self.id);
        self.body = self.body.bounded();
        Ok(self)
    }

    /// The bytes the item holds: its id and its body's text ([`ItemBody::text_bytes`]).
    pub fn n_bytes(&self) -> usize {
        self.id.len() + self.body.text_bytes()
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

/// Cuts `text` to at most `max_bytes` on a character boundary, marking the cut when there is room for the mark.
fn cut_text(text: &mut String, max_bytes: usize) {
    const MARK: &str = " … [cut]";
    if text.len() <= max_bytes {
        return;
    }
    let mark = if max_bytes >= MARK.len() { MARK } else { "" };
    let mut end = max_bytes - mark.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(mark);
}

/// Keeps the end of `text` (a command's output, where the end matters), at most `max_bytes`, marking the cut when
/// there is room for the mark.
fn cut_tail(text: &mut String, max_bytes: usize) {
    const MARK: &str = "[cut] … ";
    if text.len() <= max_bytes {
        return;
    }
    let mark = if max_bytes >= MARK.len() { MARK } else { "" };
    let mut start = text.len() - (max_bytes - mark.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    *text = format!("{mark}{}", &text[start..]);
}

/// Cuts an id over [`MAX_ITEM_ID_BYTES`] and ends it with `~` and a hash of the whole id, so that two long ids that
/// share their start stay two items. FNV-1a, written out here: its value never changes between builds (an id cut
/// today is the same id cut tomorrow), and 64 bits keep apart the few ids one execution has.
fn cut_id(id: &mut String) {
    if id.len() <= MAX_ITEM_ID_BYTES {
        return;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let suffix = format!("~{hash:016x}");
    let mut end = MAX_ITEM_ID_BYTES - suffix.len();
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id.truncate(end);
    id.push_str(&suffix);
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

    #[test]
    fn long_ids_that_share_their_start_stay_distinct() {
        let shared = "a".repeat(MAX_ITEM_ID_BYTES);
        let item =
            |id: String| NewItem::new(id, ItemStatus::Completed, ItemBody::Error { message: "x".into() });
        let first = item(format!("{shared}-first")).expect("an item").id;
        let second = item(format!("{shared}-second")).expect("an item").id;
        assert_ne!(first, second);
        assert!(first.len() <= MAX_ITEM_ID_BYTES && second.len() <= MAX_ITEM_ID_BYTES);
        assert_eq!(
            item(format!("{shared}-first")).expect("an item").id,
            first,
            "the same id cuts the same way"
        );
        assert_eq!(item("short".into()).expect("an item").id, "short");
        let multibyte = "é".repeat(MAX_ITEM_ID_BYTES);
        assert!(item(multibyte).expect("an item").id.len() <= MAX_ITEM_ID_BYTES);
    }

    #[test]
    fn one_item_keeps_at_most_its_total_of_text() {
        let huge = "p".repeat(MAX_ITEM_TEXT_BYTES);
        let change =
            FileChange { path: huge.clone(), kind: FileChangeKind::Update, diff: Some(huge.clone()) };
        let body = ItemBody::FileChange { changes: vec![change; MAX_ITEM_ENTRIES] }.bounded();
        assert!(body.text_bytes() <= MAX_ITEM_BYTES, "{}", body.text_bytes());
        let ItemBody::FileChange { changes } = &body else { panic!("a file change") };
        assert!(changes.iter().all(|change| change.path.len() <= MAX_ITEM_PATH_BYTES));
        assert_eq!(changes.len(), MAX_ITEM_BYTES / MAX_ITEM_PATH_BYTES, "as many files as their paths fit");

        let entries = vec![PlanEntry { text: huge.clone(), done: false }; 10];
        let body = ItemBody::Plan { entries }.bounded();
        let ItemBody::Plan { entries } = &body else { panic!("a plan") };
        assert_eq!((entries.len(), body.text_bytes()), (4, MAX_ITEM_BYTES), "four entries fill the item");

        let tool = ItemBody::ToolCall {
            server: Some(huge.clone()),
            tool: huge.clone(),
            arguments: serde_json::json!({"a": huge.clone()}),
            result: Some(serde_json::json!([huge.clone()])),
            error: Some(huge),
        }
        .bounded();
        assert!(tool.text_bytes() <= MAX_ITEM_BYTES, "{}", tool.text_bytes());
    }

    #[test]
    fn a_status_reads_as_in_json() {
        for status in ItemStatus::ALL {
            assert_eq!(serde_json::to_value(status).expect("serializes"), json!(status.as_str()));
        }
    }
}
