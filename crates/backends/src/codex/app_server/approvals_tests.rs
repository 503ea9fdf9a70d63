//! Approval requests read on their own: what each asks the gate, what each answer looks like, and the log lines.

use serde_json::json;

use super::*;

/// The request `method` makes of the gate, as `(asked, kind, summary, details, item_id, grant_key)` in JSON.
fn check(method: &str, params: Value, transcript: &Transcript, expected: Value) {
    let (asked, request) =
        read(method, &params, transcript).unwrap_or_else(|| panic!("{method} asks nothing"));
    let actual = json!({
        "kind": request.kind, "summary": request.summary, "details": request.details,
        "item_id": request.item_id, "grant_key": request.grant_key, "asked": format!("{asked:?}"),
    });
    assert_eq!(actual, expected, "{method}");
}

#[test]
fn a_command_request_names_the_command_its_cwd_and_reason() {
    check(
        COMMAND_APPROVAL,
        json!({"threadId": "t", "turnId": "u", "itemId": "call_0", "startedAtMs": 1, "kind": "command",
               "command": "/bin/bash -lc 'rm -rf build'", "cwd": "/w", "reason": "clean up",
               "commandActions": [{"type": "unknown", "command": "rm -rf build"}]}),
        &Transcript::default(),
        json!({"kind": "command", "summary": "/bin/bash -lc 'rm -rf build'",
               "details": {"command": "/bin/bash -lc 'rm -rf build'", "cwd": "/w", "reason": "clean up"},
               "item_id": "call_0", "grant_key": "/bin/bash -lc 'rm -rf build'",
               "asked": "Command { allows_session: true }"}),
    );
}

#[test]
fn a_network_request_of_a_command_is_a_permission() {
    check(
        COMMAND_APPROVAL,
        json!({"itemId": "call_1", "command": "curl example.com", "cwd": "/w",
               "networkApprovalContext": {"host": "example.com", "protocol": "https"}}),
        &Transcript::default(),
        json!({"kind": "permission", "summary": "network access to example.com",
               "details": {"command": "curl example.com", "cwd": "/w", "reason": null,
                           "network": {"host": "example.com", "protocol": "https"}},
               "item_id": "call_1", "grant_key": null, "asked": "Command { allows_session: true }"}),
    );
}

#[test]
fn a_file_change_request_carries_the_changes_its_item_started_with() {
    let mut transcript = Transcript::default();
    let started = json!({"item": {"id": "call_2", "type": "fileChange", "status": "inProgress", "changes": [
        {"path": "/w/notes.txt", "kind": {"type": "add"}, "diff": "hello\n"},
        {"path": "/w/src/a.rs", "kind": {"type": "update", "move_path": null}, "diff": "@@ -1 +1 @@\n-a\n+b\n"}]}});
    transcript.notification("item/started", &started);
    check(
        FILE_CHANGE_APPROVAL,
        json!({"threadId": "t", "turnId": "u", "itemId": "call_2", "startedAtMs": 1, "reason": "write notes",
               "grantRoot": null}),
        &transcript,
        json!({"kind": "file_change", "summary": "/w/notes.txt, /w/src/a.rs",
               "details": {"changes": [{"path": "/w/notes.txt", "kind": "add", "diff": "hello\n"},
                                       {"path": "/w/src/a.rs", "kind": "update", "diff": "@@ -1 +1 @@\n-a\n+b\n"}],
                           "reason": "write notes"},
               "item_id": "call_2", "grant_key": null, "asked": "FileChange"}),
    );
    // An item the transcript never saw start: the request still reaches the gate.
    check(
        FILE_CHANGE_APPROVAL,
        json!({"itemId": "call_9"}),
        &transcript,
        json!({"kind": "file_change", "summary": "files", "details": {"changes": [], "reason": null},
               "item_id": "call_9", "grant_key": null, "asked": "FileChange"}),
    );
}

#[test]
fn a_permission_request_lists_what_it_would_grant() {
    let permissions = json!({"network": {"enabled": true}, "fileSystem": {"write": ["/srv/cache"],
        "entries": [{"access": "read", "path": {"type": "special", "value": {"kind": "project_roots"}}}]}});
    check(
        PERMISSIONS_APPROVAL,
        json!({"itemId": "p_1", "cwd": "/w", "reason": "fetch deps", "permissions": permissions}),
        &Transcript::default(),
        json!({"kind": "permission",
               "summary": "network access; write access to /srv/cache; read access to project_roots",
               "details": {"permissions": permissions, "cwd": "/w", "reason": "fetch deps"},
               "item_id": "p_1", "grant_key": null,
               "asked": format!("Permissions {{ requested: {permissions:?} }}")}),
    );
}

#[test]
fn a_question_carries_its_questions_and_options() {
    check(
        QUESTION,
        json!({"threadId": "t", "turnId": "u", "itemId": "call_3", "isBlocking": true, "questions": [
            {"id": "color", "header": "Color", "question": "Which color?", "isOther": true, "isSecret": false,
             "options": [{"label": "red", "description": "warm"}, {"label": "blue", "description": "cool"}]},
            {"id": "name", "header": "Name", "question": "What name?", "options": null}]}),
        &Transcript::default(),
        json!({"kind": "question", "summary": "Which color? (and 1 more)",
               "details": {"questions": [
                   {"id": "color", "header": "Color", "question": "Which color?",
                    "options": [{"label": "red", "description": "warm"}, {"label": "blue", "description": "cool"}]},
                   {"id": "name", "header": "Name", "question": "What name?"}]},
               "item_id": "call_3", "grant_key": null, "asked": "Question"}),
    );
}

#[test]
fn first_version_requests_are_read_too() {
    check(
        LEGACY_COMMAND_APPROVAL,
        json!({"callId": "c1", "conversationId": "t", "command": ["rm", "-rf", "my build"], "cwd": "/w",
               "parsedCmd": []}),
        &Transcript::default(),
        json!({"kind": "command", "summary": "rm -rf 'my build'",
               "details": {"command": "rm -rf 'my build'", "cwd": "/w", "reason": null},
               "item_id": "c1", "grant_key": "rm -rf 'my build'", "asked": "Legacy"}),
    );
    check(
        LEGACY_PATCH_APPROVAL,
        json!({"callId": "c2", "conversationId": "t", "fileChanges": {
            "a.txt": {"type": "add", "content": "hi\n"},
            "b.rs": {"type": "update", "unified_diff": "-x\n+y\n", "move_path": null}}}),
        &Transcript::default(),
        json!({"kind": "file_change", "summary": "a.txt, b.rs",
               "details": {"changes": [{"path": "a.txt", "kind": "add", "diff": "hi\n"},
                                       {"path": "b.rs", "kind": "update", "diff": "-x\n+y\n"}],
                           "reason": null},
               "item_id": "c2", "grant_key": null, "asked": "Legacy"}),
    );
}

#[test]
fn other_requests_ask_nothing() {
    for method in ["item/tool/call", "mcpServer/elicitation/request", "account/chatgptAuthTokens/refresh"] {
        assert!(read(method, &json!({}), &Transcript::default()).is_none(), "{method}");
    }
}

fn answered(asked: &Asked, decision: Decision) -> Value {
    let mut answer = ApprovalAnswer::new(decision, "alice");
    answer.answers = Some(json!({"color": ["red"], "name": "Ada", "bad": 3}));
    response(asked, &answer)
}

#[test]
fn each_decision_is_answered_in_the_shape_of_its_request() {
    use Decision::{Approve, ApproveForSession, Decline};
    let command = Asked::Command { allows_session: true };
    assert_eq!(answered(&command, Approve), json!({"decision": "accept"}));
    assert_eq!(answered(&command, ApproveForSession), json!({"decision": "acceptForSession"}));
    assert_eq!(answered(&command, Decline), json!({"decision": "decline"}), "never cancel");
    let checkpoint = Asked::Command { allows_session: false };
    assert_eq!(answered(&checkpoint, ApproveForSession), json!({"decision": "accept"}));
    assert_eq!(answered(&Asked::FileChange, ApproveForSession), json!({"decision": "acceptForSession"}));
    assert_eq!(answered(&Asked::FileChange, Decline), json!({"decision": "decline"}));

    let requested = json!({"network": {"enabled": true}});
    let permissions = Asked::Permissions { requested: requested.clone() };
    assert_eq!(answered(&permissions, Approve), json!({"permissions": requested, "scope": "turn"}));
    assert_eq!(
        answered(&permissions, ApproveForSession),
        json!({"permissions": requested, "scope": "session"})
    );
    assert_eq!(answered(&permissions, Decline), json!({"permissions": {}, "scope": "turn"}));

    assert_eq!(
        answered(&Asked::Question, Approve),
        json!({"answers": {"color": {"answers": ["red"]}, "name": {"answers": ["Ada"]}}})
    );
    assert_eq!(answered(&Asked::Question, Decline), json!({"answers": {}}));

    assert_eq!(answered(&Asked::Legacy, Approve), json!({"decision": "approved"}));
    assert_eq!(answered(&Asked::Legacy, ApproveForSession), json!({"decision": "approved_for_session"}));
    assert_eq!(
        answered(&Asked::Legacy, Decline),
        json!({"decision": {"denied": {"rejection": "declined by alice"}}})
    );
}

#[test]
fn requests_and_decisions_are_logged_in_one_line_each() {
    let (_, request) =
        read(COMMAND_APPROVAL, &json!({"itemId": "i", "command": "rm -rf build"}), &Transcript::default())
            .expect("a command request");
    assert_eq!(asked_line(&request), "codex asks to run `rm -rf build`");
    let command = Asked::Command { allows_session: true };
    assert_eq!(decided_line(&command, &ApprovalAnswer::new(Decision::Approve, "alice")), "approved by alice");
    assert_eq!(
        decided_line(&command, &ApprovalAnswer::new(Decision::ApproveForSession, "alice")),
        "approved for the session by alice"
    );
    let mut declined = ApprovalAnswer::new(Decision::Decline, "dashboard");
    declined.note = Some("nobody decided within 3600 s".into());
    assert_eq!(decided_line(&command, &declined), "declined by dashboard: nobody decided within 3600 s");
    assert_eq!(
        decided_line(&Asked::Question, &ApprovalAnswer::new(Decision::Approve, "bob")),
        "answered by bob"
    );
}
