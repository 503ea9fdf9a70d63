//! Tests of `events.rs`: messages of Claude Code 2.1's stream-json output, as recorded (less fields nobody reads),
//! becoming log lines, items, the session and the result.

use serde_json::{Value, json};

use super::*;

fn log(stream: LogStream, text: &str) -> Effect {
    Effect::Log(stream, text.to_owned())
}

/// The effects of `lines`, read in turn, other than items; and the items, as JSON.
fn read(lines: &[Value]) -> (Vec<Effect>, Vec<Value>) {
    let mut transcript = Transcript::default();
    let (mut effects, mut items) = (Vec::new(), Vec::new());
    for line in lines {
        for effect in transcript.line(&line.to_string()) {
            match effect {
                Effect::Item(item) => items.push(serde_json::to_value(item).expect("an item is JSON")),
                other => effects.push(other),
            }
        }
    }
    (effects, items)
}

#[test]
fn init_names_the_session_and_the_model_and_a_server_that_failed() {
    let init = json!({"type": "system", "subtype": "init", "cwd": "/w", "session_id": "1230195f",
                      "tools": ["Bash", "Edit"], "model": "claude-opus-5-5", "permissionMode": "default",
                      "mcp_servers": [{"name": "dashboard", "status": "failed", "source": "dynamic"},
                                      {"name": "github", "status": "connected"}],
                      "claude_code_version": "2.1.332"});
    let mut transcript = Transcript::default();
    assert_eq!(
        transcript.line(&init.to_string()),
        [
            log(LogStream::System, "claude session 1230195f started (model claude-opus-5-5)"),
            Effect::Session("1230195f".into()),
            log(LogStream::Stderr, "MCP server dashboard: failed"),
        ]
    );
    assert_eq!(transcript.model.as_deref(), Some("claude-opus-5-5"));
}

#[test]
fn assistant_text_and_thinking_are_lines_and_items_under_the_lines_uuid() {
    let (effects, items) = read(&[
        json!({"type": "assistant", "uuid": "u-1", "message": {"id": "msg_1", "role": "assistant",
               "content": [{"type": "thinking", "thinking": "Let me look.\n\nAt the files.", "signature": "sig"}]}}),
        json!({"type": "assistant", "uuid": "u-2", "message": {"id": "msg_1", "role": "assistant",
               "content": [{"type": "text", "text": "Done.\nAll good."}, {"type": "text", "text": "Bye."}]}}),
    ]);
    assert_eq!(
        effects,
        [
            log(LogStream::Agent, "thinking: Let me look."),
            log(LogStream::Agent, "thinking: At the files."),
            log(LogStream::Agent, "Done."),
            log(LogStream::Agent, "All good."),
            log(LogStream::Agent, "Bye."),
        ]
    );
    assert_eq!(
        items,
        [
            json!({"id": "u-1", "status": "completed", "kind": "reasoning", "text": "Let me look.\n\nAt the files."}),
            json!({"id": "u-2", "status": "completed", "kind": "message", "role": "agent",
                   "text": "Done.\nAll good."}),
            json!({"id": "u-2-1", "status": "completed", "kind": "message", "role": "agent", "text": "Bye."}),
        ]
    );
}

#[test]
fn a_tool_use_and_its_result_make_one_item_that_changes() {
    let (effects, items) = read(&[
        json!({"type": "assistant", "uuid": "u-1", "message": {"content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]}}),
        json!({"type": "user", "uuid": "u-2", "message": {"role": "user", "content": [
            {"tool_use_id": "toolu_1", "type": "tool_result", "content": "a.txt", "is_error": false}]},
               "tool_use_result": {"stdout": "a.txt", "stderr": "", "interrupted": false}}),
    ]);
    assert_eq!(
        effects,
        [
            log(LogStream::Agent, "$ ls"),
            log(LogStream::Stdout, "a.txt"),
            log(LogStream::Agent, "$ ls → exit code 0")
        ]
    );
    let states: Vec<(&Value, &Value)> = items.iter().map(|item| (&item["id"], &item["status"])).collect();
    assert_eq!(
        states,
        [(&json!("toolu_1"), &json!("in_progress")), (&json!("toolu_1"), &json!("completed"))]
    );
}

#[test]
fn a_permission_denied_message_is_a_line_and_declines_the_call() {
    let (effects, items) = read(&[
        json!({"type": "assistant", "uuid": "u-1", "message": {"content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "touch made.txt"}}]}}),
        json!({"type": "system", "subtype": "permission_denied", "tool_name": "Bash", "tool_use_id": "toolu_1",
               "message": "touch in '/w/made.txt' needs approval."}),
        json!({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "toolu_1",
               "content": "touch in '/w/made.txt' needs approval.", "is_error": true}]},
               "tool_use_result": "Error: touch in '/w/made.txt' needs approval."}),
    ]);
    assert_eq!(
        effects[1],
        log(LogStream::System, "claude may not use Bash: touch in '/w/made.txt' needs approval.")
    );
    assert_eq!(items.last().map(|item| &item["status"]), Some(&json!("declined")));
}

#[test]
fn an_api_error_message_is_an_error_line_and_item() {
    let (effects, items) = read(&[json!({"type": "assistant", "uuid": "u-1",
        "message": {"model": "<synthetic>", "content": [{"type": "text", "text": "Prompt is too long"}]},
        "error": "invalid_request", "is_api_error_message": true, "api_error_status": 400})]);
    assert_eq!(effects, [log(LogStream::Stderr, "error: Prompt is too long")]);
    assert_eq!(
        items,
        [json!({"id": "u-1", "status": "completed", "kind": "error", "message": "Prompt is too long"})]
    );
}

#[test]
fn system_notices_become_lines() {
    let (effects, _) = read(&[
        json!({"type": "system", "subtype": "api_retry", "attempt": 2, "max_retries": 10, "retry_delay_ms": 1200,
               "error_status": 529, "error": "overloaded_error"}),
        json!({"type": "system", "subtype": "compact_boundary"}),
        json!({"type": "system", "subtype": "model_fallback", "content": "Opus is busy: using Sonnet",
               "level": "warning"}),
    ]);
    assert_eq!(
        effects,
        [
            log(LogStream::Stderr, "model API 529 overloaded_error: retrying (attempt 2 of 10)"),
            log(LogStream::System, "claude compacted the conversation"),
            log(LogStream::Stderr, "warning: Opus is busy: using Sonnet"),
        ]
    );
}

#[test]
fn the_result_is_handed_over_whole() {
    let result = json!({"type": "result", "subtype": "success", "is_error": false, "result": "Hi."});
    let mut transcript = Transcript::default();
    assert_eq!(transcript.line(&result.to_string()), [Effect::Result(Box::new(result))]);
}

#[test]
fn unknown_messages_and_plain_text_are_tolerated() {
    let (effects, items) = read(&[
        json!({"type": "system", "subtype": "task_started", "task_id": "b1"}),
        json!({"type": "stream_event", "event": {"type": "content_block_delta"}}),
        json!({"type": "assistant", "uuid": "u-1", "message": {"content": [{"type": "hologram"}, "odd", 7]}}),
        json!({"type": "user", "message": {"content": "a plain prompt"}}),
        json!({"type": "user", "message": {"content": [{"type": "text", "text": "[Request interrupted by user]"}]}}),
        json!({"no": "type"}),
        json!([1, 2]),
    ]);
    assert_eq!((effects, items), (Vec::new(), Vec::new()));
    let mut transcript = Transcript::default();
    assert_eq!(transcript.line("Warning: something odd"), [Effect::Text("Warning: something odd".into())]);
    assert_eq!(transcript.line("  "), []);
}

#[test]
fn each_model_request_counts_once_toward_the_usage_so_far() {
    let message = |uuid: &str, id: &str, block: Value| {
        json!({"type": "assistant", "uuid": uuid, "message": {"id": id, "model": "claude-opus-5-5",
               "content": [block], "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20,
                                             "cache_read_input_tokens": 30, "output_tokens": 1}}})
    };
    let text = json!({"type": "text", "text": "Looking."});
    let tool = json!({"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a"}});
    let (effects, _) = read(&[
        message("u-1", "msg_1", text.clone()),
        message("u-2", "msg_1", tool),
        message("u-3", "msg_2", text),
    ]);
    let reports: Vec<&Value> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Usage(usage) => Some(usage),
            _ => None,
        })
        .collect();
    assert_eq!(
        reports,
        [
            &json!({"input_tokens": 100, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 20,
                    "output_tokens": 1, "model": "claude-opus-5-5"}),
            &json!({"input_tokens": 200, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 40,
                    "output_tokens": 2, "model": "claude-opus-5-5"}),
        ]
    );
}
