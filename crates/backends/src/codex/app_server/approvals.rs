//! The app-server's requests for a decision — a command to run, files to change, permissions to widen, questions for
//! the user, and the protocol's first-version command and patch approvals — read as the dashboard's
//! [`ApprovalRequest`]s, and the gate's [`ApprovalAnswer`] written back in the shape each request takes.

use dashboard_backend_api::{ApprovalAnswer, ApprovalRequest};
use dashboard_core::{ApprovalKind, Decision, FileChange, FileChangeKind};
use serde_json::{Map, Value, json};

use super::notifications::Transcript;
use crate::codex::json::{list, owned, text};

/// The server requests that ask for a decision.
pub(crate) const COMMAND_APPROVAL: &str = "item/commandExecution/requestApproval";
pub(crate) const FILE_CHANGE_APPROVAL: &str = "item/fileChange/requestApproval";
pub(crate) const PERMISSIONS_APPROVAL: &str = "item/permissions/requestApproval";
pub(crate) const QUESTION: &str = "item/tool/requestUserInput";
/// The protocol's first version, still served.
pub(crate) const LEGACY_COMMAND_APPROVAL: &str = "execCommandApproval";
pub(crate) const LEGACY_PATCH_APPROVAL: &str = "applyPatchApproval";

/// What the server asked, kept until the answer is written: the shape the answer takes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Asked {
    /// A command (`accept` / `acceptForSession` / `decline`). A one-time checkpoint (`kind: humanCommand`) takes no
    /// `acceptForSession`.
    Command { allows_session: bool },
    /// A file change (`accept` / `acceptForSession` / `decline`).
    FileChange,
    /// Permissions: granted exactly as requested, or none.
    Permissions { requested: Value },
    /// Questions: answered by question id.
    Question,
    /// A first-version command or patch approval (`approved` / `approved_for_session` / `denied`).
    Legacy,
}

/// The request `method` makes of the gate and what it asked, or `None` when the method asks no decision. A file
/// change's changes come from the item Codex started before it asked, when the transcript has it.
pub(crate) fn read(
    method: &str,
    params: &Value,
    transcript: &Transcript,
) -> Option<(Asked, ApprovalRequest)> {
    let reason = text(params, "reason").filter(|reason| !reason.is_empty());
    let item_id = text(params, "itemId").map(str::to_owned);
    let (asked, mut request) = match method {
        COMMAND_APPROVAL => {
            let command = text(params, "command").map(str::to_owned);
            let asked = Asked::Command { allows_session: text(params, "kind") != Some("humanCommand") };
            let mut details = json!({"command": command, "cwd": text(params, "cwd"), "reason": reason});
            let network = params.get("networkApprovalContext").filter(|network| !network.is_null());
            let request = match (network, &command) {
                // Codex asks to reach a host its sandbox keeps it from: a permission, answered as a command.
                (Some(network), _) => {
                    details["network"] = network.clone();
                    let host = text(network, "host").unwrap_or("a host");
                    ApprovalRequest::new(
                        ApprovalKind::Permission,
                        format!("network access to {host}"),
                        details,
                    )
                }
                (None, command) => {
                    let summary = command.clone().unwrap_or_else(|| "a command".to_owned());
                    let mut request = ApprovalRequest::new(ApprovalKind::Command, summary, details);
                    request.grant_key = command.clone();
                    request
                }
            };
            (asked, request)
        }
        FILE_CHANGE_APPROVAL => {
            let changes =
                item_id.as_deref().and_then(|id| transcript.file_changes(id)).map(<[FileChange]>::to_vec);
            let summary = changes.as_deref().map_or_else(|| "files".to_owned(), paths);
            let mut details = json!({"changes": changes.unwrap_or_default(), "reason": reason});
            if let Some(root) = text(params, "grantRoot") {
                details["grant_root"] = json!(root);
            }
            (Asked::FileChange, ApprovalRequest::new(ApprovalKind::FileChange, summary, details))
        }
        PERMISSIONS_APPROVAL => {
            let requested = params.get("permissions").cloned().unwrap_or_else(|| json!({}));
            let summary = describe_permissions(&requested);
            let details = json!({"permissions": requested, "cwd": text(params, "cwd"), "reason": reason});
            (
                Asked::Permissions { requested },
                ApprovalRequest::new(ApprovalKind::Permission, summary, details),
            )
        }
        QUESTION => {
            let questions: Vec<Value> = list(params, "questions").map(question).collect();
            let summary = match questions.as_slice() {
                [] => "a question".to_owned(),
                [only] => owned(only, "question"),
                [first, rest @ ..] => format!("{} (and {} more)", owned(first, "question"), rest.len()),
            };
            let details = json!({"questions": questions});
            (Asked::Question, ApprovalRequest::new(ApprovalKind::Question, summary, details))
        }
        LEGACY_COMMAND_APPROVAL => {
            let command = shell_join(list(params, "command").filter_map(Value::as_str));
            let details = json!({"command": command, "cwd": text(params, "cwd"), "reason": reason});
            let mut request = ApprovalRequest::new(ApprovalKind::Command, command.clone(), details);
            request.grant_key = Some(command);
            request.item_id = text(params, "callId").map(str::to_owned);
            return Some((Asked::Legacy, request));
        }
        LEGACY_PATCH_APPROVAL => {
            let changes = legacy_changes(params.get("fileChanges"));
            let summary = if changes.is_empty() { "files".to_owned() } else { paths(&changes) };
            let details = json!({"changes": changes, "reason": reason});
            let mut request = ApprovalRequest::new(ApprovalKind::FileChange, summary, details);
            request.item_id = text(params, "callId").map(str::to_owned);
            return Some((Asked::Legacy, request));
        }
        _ => return None,
    };
    request.item_id = item_id;
    Some((asked, request))
}

/// The result that answers `asked` with `answer`. A decline is always the one that lets the turn go on (never
/// `cancel` or `abort`, which would end it without the model hearing why).
pub(crate) fn response(asked: &Asked, answer: &ApprovalAnswer) -> Value {
    let decision = answer.decision;
    match asked {
        Asked::Command { allows_session } => {
            let word = match decision {
                Decision::ApproveForSession if *allows_session => "acceptForSession",
                Decision::Approve | Decision::ApproveForSession => "accept",
                Decision::Decline => "decline",
            };
            json!({"decision": word})
        }
        Asked::FileChange => {
            let word = match decision {
                Decision::Approve => "accept",
                Decision::ApproveForSession => "acceptForSession",
                Decision::Decline => "decline",
            };
            json!({"decision": word})
        }
        Asked::Permissions { requested } => match decision {
            Decision::Approve => json!({"permissions": requested, "scope": "turn"}),
            Decision::ApproveForSession => json!({"permissions": requested, "scope": "session"}),
            // Nothing granted: the request is declined.
            Decision::Decline => json!({"permissions": {}, "scope": "turn"}),
        },
        Asked::Question => {
            let answers = match decision {
                Decision::Decline => Map::new(),
                Decision::Approve | Decision::ApproveForSession => answers(answer.answers.as_ref()),
            };
            json!({"answers": answers})
        }
        Asked::Legacy => match decision {
            Decision::Approve => json!({"decision": "approved"}),
            Decision::ApproveForSession => json!({"decision": "approved_for_session"}),
            Decision::Decline => {
                let rejection =
                    answer.note.clone().unwrap_or_else(|| format!("declined by {}", answer.decided_by));
                json!({"decision": {"denied": {"rejection": rejection}}})
            }
        },
    }
}

/// The log line of a request: `codex asks to run `rm -rf build``.
pub(crate) fn asked_line(request: &ApprovalRequest) -> String {
    let summary = &request.summary;
    match request.kind {
        ApprovalKind::Command => format!("codex asks to run `{summary}`"),
        ApprovalKind::FileChange => format!("codex asks to change {summary}"),
        ApprovalKind::Permission => format!("codex asks for {summary}"),
        ApprovalKind::Question => format!("codex asks: {summary}"),
    }
}

/// The log line of a decision: `approved by alice`, `declined by policy: <note>`.
pub(crate) fn decided_line(asked: &Asked, answer: &ApprovalAnswer) -> String {
    let what = match (answer.decision, asked) {
        (Decision::Decline, _) => "declined",
        (_, Asked::Question) => "answered",
        (Decision::Approve, _) => "approved",
        (Decision::ApproveForSession, _) => "approved for the session",
    };
    match answer.note.as_deref().filter(|note| !note.is_empty()) {
        Some(note) => format!("{what} by {}: {note}", answer.decided_by),
        None => format!("{what} by {}", answer.decided_by),
    }
}

/// The paths of `changes`, for a summary.
fn paths(changes: &[FileChange]) -> String {
    let paths: Vec<&str> = changes.iter().map(|change| change.path.as_str()).collect();
    if paths.is_empty() { "files".to_owned() } else { paths.join(", ") }
}

/// One question as the dashboard shows it: its id, header, text and options (`[{label, description}]`).
fn question(question: &Value) -> Value {
    let mut shown = json!({"id": owned(question, "id"), "question": owned(question, "question")});
    if let Some(header) = text(question, "header") {
        shown["header"] = json!(header);
    }
    if let Some(options) = question.get("options").and_then(Value::as_array) {
        let options: Vec<Value> = options
            .iter()
            .map(|option| json!({"label": owned(option, "label"), "description": owned(option, "description")}))
            .collect();
        shown["options"] = json!(options);
    }
    shown
}

/// The dashboard's answers (`{"<id>": ["<answer>", …]}`) in Codex's shape (`{"<id>": {"answers": […]}}`); an answer
/// given as one text counts as a list of one, anything else is passed over.
fn answers(given: Option<&Value>) -> Map<String, Value> {
    let Some(given) = given.and_then(Value::as_object) else { return Map::new() };
    given
        .iter()
        .filter_map(|(id, answer)| {
            let texts: Vec<&str> = match answer {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => return None,
            };
            Some((id.clone(), json!({"answers": texts})))
        })
        .collect()
}

/// What a permission request asks for, in a few words: `network access; write access to /srv/cache`.
fn describe_permissions(permissions: &Value) -> String {
    let mut parts = Vec::new();
    let network = permissions.get("network").filter(|network| !network.is_null());
    if network.and_then(|network| network.get("enabled")).and_then(Value::as_bool) == Some(true) {
        parts.push("network access".to_owned());
    }
    if let Some(file_system) = permissions.get("fileSystem").filter(|fs| !fs.is_null()) {
        for access in ["write", "read"] {
            let paths: Vec<&str> = list(file_system, access).filter_map(Value::as_str).collect();
            if !paths.is_empty() {
                parts.push(format!("{access} access to {}", paths.join(", ")));
            }
        }
        for entry in list(file_system, "entries") {
            let path = entry.get("path").map(describe_path).unwrap_or_else(|| "?".to_owned());
            parts.push(format!("{} access to {path}", text(entry, "access").unwrap_or("some")));
        }
    }
    if parts.is_empty() { "more permissions".to_owned() } else { parts.join("; ") }
}

/// A file system path of a permission entry: a path, a glob, or a special place (`project_roots`).
fn describe_path(path: &Value) -> String {
    match text(path, "type") {
        Some("path") => owned(path, "path"),
        Some("glob_pattern") => owned(path, "pattern"),
        Some("special") => path.get("value").and_then(|value| text(value, "kind")).unwrap_or("?").to_owned(),
        _ => "?".to_owned(),
    }
}

/// The first version's `fileChanges` (`{path: {type: add, content} | {type: update, unified_diff} | …}`) as file
/// changes; an added or deleted file's diff is its content.
fn legacy_changes(file_changes: Option<&Value>) -> Vec<FileChange> {
    let Some(file_changes) = file_changes.and_then(Value::as_object) else { return Vec::new() };
    file_changes
        .iter()
        .filter_map(|(path, change)| {
            let (kind, diff) = match text(change, "type")? {
                "add" => (FileChangeKind::Add, text(change, "content")),
                "delete" => (FileChangeKind::Delete, text(change, "content")),
                "update" => (FileChangeKind::Update, text(change, "unified_diff")),
                _ => return None,
            };
            Some(FileChange { path: path.clone(), kind, diff: diff.map(str::to_owned) })
        })
        .collect()
}

/// An argv as one line a shell would read back the same: words with anything but plain characters are quoted.
fn shell_join<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let is_plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    words
        .map(|word| {
            if !word.is_empty() && word.chars().all(is_plain) {
                word.to_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every response the dashboard may write to an approval request, by method and decision: the schema test checks
/// them all.
#[cfg(test)]
pub(crate) fn every_response() -> Vec<(&'static str, Value)> {
    let requested =
        json!({"network": {"enabled": true}, "fileSystem": {"write": ["/srv/cache"], "read": null}});
    let asked = [
        (COMMAND_APPROVAL, Asked::Command { allows_session: true }),
        (COMMAND_APPROVAL, Asked::Command { allows_session: false }),
        (FILE_CHANGE_APPROVAL, Asked::FileChange),
        (PERMISSIONS_APPROVAL, Asked::Permissions { requested }),
        (QUESTION, Asked::Question),
        (LEGACY_COMMAND_APPROVAL, Asked::Legacy),
        (LEGACY_PATCH_APPROVAL, Asked::Legacy),
    ];
    let mut responses = Vec::new();
    for (method, asked) in asked {
        for decision in [Decision::Approve, Decision::ApproveForSession, Decision::Decline] {
            let mut answer = ApprovalAnswer::new(decision, "alice");
            answer.answers = Some(json!({"color": ["red"], "size": "large"}));
            responses.push((method, response(&asked, &answer)));
        }
    }
    responses
}

#[cfg(test)]
#[path = "approvals_tests.rs"]
mod tests;
