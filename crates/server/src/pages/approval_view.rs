//! An approval as the pages show it — the inbox and the status page's transcript alike: what the agent asks (the
//! command and its directory, each file's diff classed line by line, the permissions, the questions with their
//! options), why, when it was asked and when it expires, and how it was decided. `web/static/approvals.js` builds
//! the same markup for approvals that arrive live (from `GET /api/approvals/{id}`); change both together.

use dashboard_core::{Approval, ApprovalKind, ApprovalStatus, FileChangeKind};
use serde::Serialize;
use serde_json::Value;

use super::transcript::FileView;
use super::view::{TimeView, pretty_json, short_id, time_view};

/// The most files of one file-change approval the page lists (its details are at most 256 KiB anyway).
const MAX_FILES: usize = 200;
/// The most questions, and options of one question, the page shows (the engine takes at most 64 answers).
const MAX_QUESTIONS: usize = 64;
const MAX_OPTIONS: usize = 64;

/// An approval with everything its card shows.
#[derive(Serialize)]
pub(super) struct ApprovalView {
    id: String,
    execution_id: String,
    execution_short_id: String,
    function: String,
    backend: String,
    /// `command`, `file_change`, `permission` or `question`.
    kind: &'static str,
    kind_label: &'static str,
    summary: String,
    /// `pending`, `approved`, `declined` or `expired`.
    status: &'static str,
    /// The colour of its badge, as a status of an execution names it.
    tone: &'static str,
    is_pending: bool,
    for_session: bool,
    /// Whether "approve for the session" makes sense: not for a question.
    may_grant_session: bool,
    command: Option<String>,
    cwd: Option<String>,
    reason: Option<String>,
    files: Vec<FileView>,
    permissions: Option<String>,
    questions: Vec<QuestionView>,
    /// The details as the agent sent them, for anything the card does not show by name.
    details_json: String,
    requested_at: TimeView,
    expires_at: TimeView,
    decided_at: Option<TimeView>,
    decided_by: Option<String>,
    note: Option<String>,
    /// Why a decision on it just failed, shown in its card.
    error: Option<String>,
}

/// One question of a `question` approval, with its form field and what was answered.
#[derive(Serialize)]
struct QuestionView {
    id: String,
    /// The form field its answers are posted in: `answer.<id>`.
    field: String,
    header: Option<String>,
    question: String,
    options: Vec<OptionView>,
    /// Several options may be chosen (checkboxes rather than radio buttons).
    is_multiple: bool,
    /// A text of one's own may be given: there are no options, or the agent allows another answer.
    has_free_text: bool,
    /// The answers given, once decided.
    answers: Vec<String>,
}

#[derive(Serialize)]
struct OptionView {
    label: String,
    description: Option<String>,
}

impl ApprovalView {
    pub(super) fn new(approval: &Approval) -> Self {
        let details = &approval.details;
        let text = |name: &str| details.get(name).and_then(Value::as_str).map(str::to_owned);
        Self {
            id: approval.id.to_string(),
            execution_id: approval.execution_id.to_string(),
            execution_short_id: short_id(&approval.execution_id),
            function: approval.function.clone(),
            backend: approval.backend.clone(),
            kind: approval.kind.as_str(),
            kind_label: kind_label(approval.kind),
            summary: approval.summary.clone(),
            status: approval.status.as_str(),
            tone: tone(approval.status),
            is_pending: approval.is_pending(),
            for_session: approval.for_session,
            may_grant_session: approval.kind != ApprovalKind::Question,
            command: command_text(details),
            cwd: text("cwd"),
            reason: text("reason"),
            files: files(details),
            permissions: details.get("permissions").map(pretty_json),
            questions: questions(details, approval.answers.as_ref()),
            details_json: pretty_json(details),
            requested_at: time_view(approval.requested_at),
            expires_at: time_view(approval.expires_at),
            decided_at: approval.decided_at.map(time_view),
            decided_by: approval.decided_by.clone(),
            note: approval.note.clone(),
            error: None,
        }
    }

    /// The view with why a decision on it just failed.
    pub(super) fn with_error(mut self, message: String) -> Self {
        self.error = Some(message);
        self
    }
}

/// The kind in words, as the card's label says it.
pub(super) fn kind_label(kind: ApprovalKind) -> &'static str {
    match kind {
        ApprovalKind::Command => "Command",
        ApprovalKind::FileChange => "File change",
        ApprovalKind::Permission => "Permission",
        ApprovalKind::Question => "Question",
    }
}

/// The badge colour of an approval's status: the execution status that reads the same.
pub(super) fn tone(status: ApprovalStatus) -> &'static str {
    match status {
        ApprovalStatus::Pending => "waiting",
        ApprovalStatus::Approved => "succeeded",
        ApprovalStatus::Declined => "failed",
        ApprovalStatus::Expired => "timed_out",
    }
}

/// The command of a command approval: its text, or its argv joined by spaces, as some agents send it.
fn command_text(details: &Value) -> Option<String> {
    match details.get("command")? {
        Value::String(command) => Some(command.clone()),
        Value::Array(argv) => Some(
            argv.iter()
                .map(|arg| arg.as_str().map_or_else(|| arg.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

/// The files of a file-change approval (`{"changes": [{path, kind, diff}]}`), each diff in full.
fn files(details: &Value) -> Vec<FileView> {
    let Some(changes) = details.get("changes").and_then(Value::as_array) else {
        return Vec::new();
    };
    changes
        .iter()
        .take(MAX_FILES)
        .filter_map(|change| {
            let path = change.get("path").and_then(Value::as_str)?;
            let kind = match change.get("kind").and_then(Value::as_str) {
                Some("add") => FileChangeKind::Add,
                Some("delete") => FileChangeKind::Delete,
                _ => FileChangeKind::Update,
            };
            Some(FileView::new(path, kind, change.get("diff").and_then(Value::as_str)))
        })
        .collect()
}

/// The questions of a question approval (`{"questions": [{"id", "question", "header"?, "options"?}]}`; an option is
/// a text or `{"label", "description"?}`; `multiSelect`/`multi_select` and `isOther`/`is_other` as agents send them).
fn questions(details: &Value, answers: Option<&Value>) -> Vec<QuestionView> {
    let Some(questions) = details.get("questions").and_then(Value::as_array) else {
        return Vec::new();
    };
    let flag = |question: &Value, names: [&str; 2]| {
        names.iter().any(|name| question.get(*name).and_then(Value::as_bool) == Some(true))
    };
    questions
        .iter()
        .take(MAX_QUESTIONS)
        .enumerate()
        .map(|(index, question)| {
            let id = match question.get("id") {
                Some(Value::String(id)) => id.clone(),
                Some(Value::Number(id)) => id.to_string(),
                _ => index.to_string(),
            };
            let options: Vec<OptionView> = question
                .get("options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .take(MAX_OPTIONS)
                        .filter_map(|option| match option {
                            Value::String(label) => {
                                Some(OptionView { label: label.clone(), description: None })
                            }
                            Value::Object(fields) => Some(OptionView {
                                label: fields.get("label").and_then(Value::as_str)?.to_owned(),
                                description: fields
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned),
                            }),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let answered = answers
                .and_then(|answers| answers.get(&id))
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            QuestionView {
                field: format!("answer.{id}"),
                header: question.get("header").and_then(Value::as_str).map(str::to_owned),
                question: question
                    .get("question")
                    .and_then(Value::as_str)
                    .map_or_else(|| id.clone(), str::to_owned),
                is_multiple: flag(question, ["multiSelect", "multi_select"]),
                has_free_text: options.is_empty() || flag(question, ["isOther", "is_other"]),
                options,
                answers: answered,
                id,
            }
        })
        .collect()
}

/// The ids of the questions an approval asks, in order (the form must answer each).
pub(super) fn question_ids(approval: &Approval) -> Vec<String> {
    questions(&approval.details, None).into_iter().map(|question| question.id).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn questions_take_options_as_texts_or_labels() {
        let details = json!({"questions": [
            {"id": "colour", "question": "Which colour?", "options": ["red", "blue"]},
            {"id": "size", "header": "Size", "question": "How big?", "multiSelect": true, "isOther": true,
             "options": [{"label": "S", "description": "small"}, {"label": "L"}, 7]},
            {"question": "Anything else?"},
        ]});
        let answers = json!({"colour": ["blue"]});
        let shown = questions(&details, Some(&answers));
        assert_eq!(shown.len(), 3);
        assert_eq!(
            (shown[0].field.as_str(), shown[0].answers.as_slice()),
            ("answer.colour", ["blue".to_owned()].as_slice())
        );
        assert!(!shown[0].is_multiple && !shown[0].has_free_text);
        assert_eq!(shown[1].options.len(), 2, "an option that is neither text nor object is left out");
        assert!(shown[1].is_multiple && shown[1].has_free_text);
        assert_eq!((shown[2].id.as_str(), shown[2].has_free_text), ("2", true));
    }

    #[test]
    fn files_keep_their_diffs_whole_and_an_argv_reads_as_a_command() {
        let details =
            json!({"changes": [{"path": "a.txt", "kind": "add", "diff": "one\ntwo\n"}, {"kind": "update"}]});
        let shown = files(&details);
        assert_eq!(shown.len(), 1, "a change without a path is left out");
        assert!(files(&json!({"changes": "nope"})).is_empty());
        assert_eq!(command_text(&json!({"command": ["git", "push", 1]})).as_deref(), Some("git push 1"));
        assert_eq!(command_text(&json!({"command": {"nope": true}})), None);
    }
}
