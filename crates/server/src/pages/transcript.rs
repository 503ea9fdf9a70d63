//! The status page's transcript: each item of an execution turned into what its template shows — a message's
//! text, a command with its outcome, a file change with every diff line classed (added, removed, hunk header,
//! context), so that the page highlights diffs without any script. `web/static/transcript.js` builds the same
//! markup for items that arrive live; the two must agree on classes and structure.

use dashboard_core::{
    Approval, ApprovalId, ExecutionId, FileChangeKind, Item, ItemBody, ItemStatus, MessageRole,
};
use serde::Serialize;

use super::approval_view::ApprovalView;
use super::view::{TimeView, pretty_json, time_view};

/// The most of one text of an item (a message, a command's output, a diff, a tool's JSON) the page shows: an item may
/// hold a megabyte, and a page of 200 such items would not be readable anyway. The API has the whole item.
const SHOWN_TEXT_BYTES: usize = 64 * 1024;

/// An item as the transcript shows it.
#[derive(Serialize)]
pub(super) struct ItemView {
    id: String,
    seq: u64,
    status: &'static str,
    /// How far it got, in words, with its colour (`ok`, `failed`, `running`, `declined`): always for commands and
    /// tool calls, else only when it is not simply completed.
    outcome: Option<Outcome>,
    ts: TimeView,
    /// Where the API has the whole item, when the page shows a text of it cut.
    whole_item: Option<WholeItem>,
    /// For an `approval` item, the approval it stands for, when the page found it.
    approval: Option<ApprovalView>,
    #[serde(flatten)]
    body: BodyView,
}

/// The page of `GET /api/executions/{id}/items` that holds just one item: `?after={after}&limit=1`.
#[derive(Serialize)]
struct WholeItem {
    execution_id: String,
    after: u64,
}

/// How far an item got, as its header says it.
#[derive(Serialize)]
struct Outcome {
    text: String,
    tone: &'static str,
}

/// The kind's fields, ready to print; `kind` names the variant as in the API.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BodyView {
    Message { role: &'static str, text: String },
    Reasoning { text: String },
    Command { command: String, cwd: Option<String>, output: String },
    FileChange { changes: Vec<FileView> },
    ToolCall { name: String, arguments: String, result: Option<String>, error: Option<String> },
    WebSearch { query: String },
    Plan { entries: Vec<PlanEntryView>, n_done: usize },
    Approval { approval_id: String },
    Error { message: String },
}

/// One file of a change, its diff split into classed lines.
#[derive(Serialize)]
pub(super) struct FileView {
    path: String,
    /// `add`, `delete` or `update`.
    change: &'static str,
    n_added: usize,
    n_removed: usize,
    /// `None` when the agent gave no diff.
    lines: Option<Vec<DiffLine>>,
}

/// One line of a diff and its class: `add`, `del`, `hunk`, `meta` (file headers, `\ No newline…`) or `ctx`.
#[derive(Debug, PartialEq, Serialize)]
pub(super) struct DiffLine {
    class: &'static str,
    text: String,
}

impl FileView {
    /// The view of a change to `path`, with its diff (`None` when the agent gave none) classed line by line.
    pub(super) fn new(path: &str, kind: FileChangeKind, diff: Option<&str>) -> Self {
        let lines = diff.map(|diff| diff_lines(diff, kind));
        let count = |class| lines.iter().flatten().filter(|line| line.class == class).count();
        Self {
            path: path.to_owned(),
            change: match kind {
                FileChangeKind::Add => "add",
                FileChangeKind::Delete => "delete",
                FileChangeKind::Update => "update",
            },
            n_added: count("add"),
            n_removed: count("del"),
            lines,
        }
    }
}

#[derive(Serialize)]
struct PlanEntryView {
    text: String,
    done: bool,
}

impl ItemView {
    /// The view of `item`; `approvals` are the execution's approvals, for the `approval` items to show.
    pub(super) fn new(execution_id: ExecutionId, item: &Item, approvals: &[Approval]) -> Self {
        let exit_code = match &item.body {
            ItemBody::Command { exit_code, .. } => *exit_code,
            _ => None,
        };
        let always_shown = matches!(item.body, ItemBody::Command { .. } | ItemBody::ToolCall { .. });
        let outcome = match item.body {
            ItemBody::Approval { .. } => Some(approval_outcome(item.status)),
            _ => Some(outcome(item.status, exit_code))
                .filter(|_| always_shown || item.status != ItemStatus::Completed),
        };
        let mut shown = Shown::default();
        let body = BodyView::new(&item.body, &mut shown);
        let approval = match &item.body {
            ItemBody::Approval { approval_id } => approval_id
                .parse::<ApprovalId>()
                .ok()
                .and_then(|id| approvals.iter().find(|approval| approval.id == id))
                .map(ApprovalView::new),
            _ => None,
        };
        Self {
            id: item.id.clone(),
            seq: item.seq,
            status: item.status.as_str(),
            outcome,
            ts: time_view(item.ts),
            whole_item: shown
                .is_cut
                .then(|| WholeItem { execution_id: execution_id.to_string(), after: item.seq - 1 }),
            approval,
            body,
        }
    }
}

impl BodyView {
    fn new(body: &ItemBody, shown: &mut Shown) -> Self {
        match body {
            ItemBody::Message { role, text } => Self::Message {
                role: match role {
                    MessageRole::Agent => "agent",
                    MessageRole::User => "user",
                },
                text: shown.head(text),
            },
            ItemBody::Reasoning { text } => Self::Reasoning { text: shown.head(text) },
            ItemBody::Command { command, cwd, output, .. } => {
                Self::Command { command: shown.head(command), cwd: cwd.clone(), output: shown.tail(output) }
            }
            ItemBody::FileChange { changes } => Self::FileChange {
                changes: changes
                    .iter()
                    .map(|change| {
                        let diff = change.diff.as_deref().map(|diff| shown.head(diff));
                        FileView::new(&change.path, change.kind, diff.as_deref())
                    })
                    .collect(),
            },
            ItemBody::ToolCall { server, tool, arguments, result, error } => Self::ToolCall {
                name: match server {
                    Some(server) => format!("{server} / {tool}"),
                    None => tool.clone(),
                },
                arguments: shown.head(&pretty_json(arguments)),
                result: result.as_ref().map(|result| shown.head(&pretty_json(result))),
                error: error.as_deref().map(|error| shown.head(error)),
            },
            ItemBody::WebSearch { query } => Self::WebSearch { query: query.clone() },
            ItemBody::Plan { entries } => Self::Plan {
                n_done: entries.iter().filter(|entry| entry.done).count(),
                entries: entries
                    .iter()
                    .map(|entry| PlanEntryView { text: entry.text.clone(), done: entry.done })
                    .collect(),
            },
            ItemBody::Approval { approval_id } => Self::Approval { approval_id: approval_id.clone() },
            ItemBody::Error { message } => Self::Error { message: shown.head(message) },
        }
    }
}

/// Cuts an item's texts to [`SHOWN_TEXT_BYTES`] for the page, noting whether any was cut.
#[derive(Default)]
struct Shown {
    is_cut: bool,
}

impl Shown {
    /// The start of `text`.
    fn head(&mut self, text: &str) -> String {
        if text.len() <= SHOWN_TEXT_BYTES {
            return text.to_owned();
        }
        self.is_cut = true;
        let mut end = SHOWN_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}\n…", &text[..end])
    }

    /// The end of `text` (a command's output, where the end matters).
    fn tail(&mut self, text: &str) -> String {
        if text.len() <= SHOWN_TEXT_BYTES {
            return text.to_owned();
        }
        self.is_cut = true;
        let mut start = text.len() - SHOWN_TEXT_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("…\n{}", &text[start..])
    }
}

/// A command's exit code when it has one, else the status in words.
fn outcome(status: ItemStatus, exit_code: Option<i32>) -> Outcome {
    let (text, tone) = match (exit_code, status) {
        (Some(0), _) => ("exit 0".to_owned(), "ok"),
        (Some(code), _) => (format!("exit {code}"), "failed"),
        (None, ItemStatus::InProgress) => ("running".to_owned(), "running"),
        (None, ItemStatus::Completed) => ("done".to_owned(), "ok"),
        (None, ItemStatus::Failed) => ("failed".to_owned(), "failed"),
        (None, ItemStatus::Declined) => ("declined".to_owned(), "declined"),
    };
    Outcome { text, tone }
}

/// How far an approval item got: waiting for a person, approved, or declined (an expiry too).
fn approval_outcome(status: ItemStatus) -> Outcome {
    let (text, tone) = match status {
        ItemStatus::InProgress => ("waiting", "waiting"),
        ItemStatus::Completed => ("approved", "ok"),
        ItemStatus::Failed => ("failed", "failed"),
        ItemStatus::Declined => ("declined", "declined"),
    };
    Outcome { text: text.to_owned(), tone }
}

/// The lines of a diff, each classed. A unified diff (one with a `@@` hunk header) is read line by line — a turn's
/// diff may hold many files, each starting with `diff --git` or a `---` line followed by `+++`; anything else is the
/// file's content, as agents report added files (and some deleted ones): all added, or all removed for a deleted file.
pub(super) fn diff_lines(diff: &str, kind: FileChangeKind) -> Vec<DiffLine> {
    let is_unified = diff.lines().any(|line| line.starts_with("@@"));
    let mut is_in_hunk = false;
    let mut lines = diff.lines().peekable();
    let mut classed = Vec::new();
    while let Some(line) = lines.next() {
        let is_file_header = line.starts_with("diff ")
            || (line.starts_with("--- ") && lines.peek().is_some_and(|next| next.starts_with("+++ ")));
        let class = if !is_unified {
            if kind == FileChangeKind::Delete { "del" } else { "add" }
        } else if is_file_header {
            is_in_hunk = false;
            "meta"
        } else if line.starts_with("@@") {
            is_in_hunk = true;
            "hunk"
        } else if !is_in_hunk || line.starts_with('\\') {
            // Before a file's first hunk: `index`, `+++ b/x`, `new file mode` (a removed line of `-- x` inside a
            // hunk, not followed by `+++`, is not a header).
            "meta"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        };
        classed.push(DiffLine { class, text: line.to_owned() });
    }
    classed
}

/// A run's whole diff (`GET /api/executions/{id}/diff`) as the status page shows it: its first lines classed, and
/// what it adds and removes in all.
#[derive(Serialize)]
pub(super) struct RunDiffView {
    n_files: usize,
    n_added: usize,
    n_removed: usize,
    lines: Vec<DiffLine>,
    /// Whether the page shows only the first lines (the download has all).
    is_cut: bool,
}

impl RunDiffView {
    /// The view of `diff`, its first `max_lines` lines shown.
    pub(super) fn new(diff: &str, max_lines: usize) -> Self {
        let mut lines = diff_lines(diff, FileChangeKind::Update);
        let count = |class| lines.iter().filter(|line| line.class == class).count();
        let (n_added, n_removed) = (count("add"), count("del"));
        let n_files =
            lines.iter().filter(|line| line.class == "meta" && line.text.starts_with("+++ ")).count();
        let is_cut = lines.len() > max_lines;
        lines.truncate(max_lines);
        Self { n_files, n_added, n_removed, lines, is_cut }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(diff: &str, kind: FileChangeKind) -> Vec<&'static str> {
        diff_lines(diff, kind).into_iter().map(|line| line.class).collect()
    }

    #[test]
    fn a_unified_diff_is_classed_line_by_line() {
        let diff = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n keep\n-old\n+new\n--- not a header\n\\ No newline at end of file";
        assert_eq!(
            classes(diff, FileChangeKind::Update),
            ["meta", "meta", "hunk", "ctx", "del", "add", "del", "meta"]
        );
    }

    #[test]
    fn each_file_of_a_turns_diff_starts_with_its_headers() {
        let diff = "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n\
                    --- a/y\n+++ b/y\n@@ -0,0 +1 @@\n+added";
        assert_eq!(
            classes(diff, FileChangeKind::Update),
            ["meta", "meta", "meta", "meta", "hunk", "del", "add", "meta", "meta", "hunk", "add"]
        );
        let view = RunDiffView::new(diff, 3);
        assert_eq!(
            (view.n_files, view.n_added, view.n_removed, view.lines.len(), view.is_cut),
            (2, 2, 1, 3, true)
        );
    }

    #[test]
    fn content_without_hunks_is_all_added_or_all_removed() {
        assert_eq!(classes("fn main() {}\n-1\n", FileChangeKind::Add), ["add", "add"]);
        assert_eq!(classes("gone\n", FileChangeKind::Delete), ["del"]);
    }

    #[test]
    fn a_command_says_its_exit_code_else_its_status() {
        let text = |status, code| outcome(status, code).text;
        assert_eq!(text(ItemStatus::Failed, Some(2)), "exit 2");
        assert_eq!(text(ItemStatus::InProgress, None), "running");
        assert_eq!(outcome(ItemStatus::Completed, Some(0)).tone, "ok");
    }
}
