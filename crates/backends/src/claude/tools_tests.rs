//! Tests of `tools.rs`: Claude Code 2.1's tool calls and results, as recorded, becoming items and log lines.

use serde_json::{Value, json};

use super::*;

/// The items and lines of a `tool_use` block followed by its `tool_result` (with the message's `tool_use_result` and
/// `tool_result_meta`): the started item, the finished item, and the lines of both.
fn check(tool_use: Value, result: Value, details: Value, meta: Value) -> (Value, Value, Vec<String>) {
    let mut tools = Tools::default();
    let started = tools.started(&tool_use);
    let finished = tools.finished(&result, Some(&details).filter(|d| !d.is_null()), Some(&meta));
    let item_of = |effects: &[Effect]| {
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Item(item) => Some(serde_json::to_value(item).expect("an item is JSON")),
                _ => None,
            })
            .expect("an item")
    };
    let lines = started
        .iter()
        .chain(&finished)
        .filter_map(|effect| match effect {
            Effect::Log(stream, line) => Some(format!("[{stream}] {line}")),
            _ => None,
        })
        .collect();
    (item_of(&started), item_of(&finished), lines)
}

fn bash(command: &str) -> Value {
    json!({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": command, "description": "d"}})
}

fn result(content: Value, is_error: bool) -> Value {
    json!({"tool_use_id": "toolu_1", "type": "tool_result", "content": content, "is_error": is_error})
}

#[test]
fn a_bash_call_is_a_command_with_its_output_and_exit_code() {
    let (started, finished, lines) = check(
        bash("echo hello-from-claude"),
        result(json!("hello-from-claude"), false),
        json!({"stdout": "hello-from-claude", "stderr": "", "interrupted": false, "isImage": false}),
        json!([{"id": "toolu_1", "permission_decision": {"decision": "accept", "source": "config"}}]),
    );
    assert_eq!(
        started,
        json!({"id": "toolu_1", "status": "in_progress", "kind": "command", "command": "echo hello-from-claude",
               "cwd": null, "output": "", "exit_code": null})
    );
    assert_eq!(
        (&finished["status"], &finished["output"], &finished["exit_code"]),
        (&json!("completed"), &json!("hello-from-claude"), &json!(0))
    );
    assert_eq!(
        lines,
        [
            "[agent] $ echo hello-from-claude",
            "[stdout] hello-from-claude",
            "[agent] $ echo hello-from-claude → exit code 0"
        ]
    );
}

#[test]
fn a_failing_command_gives_the_exit_code_its_result_starts_with() {
    let (_, finished, lines) = check(
        bash("echo oops >&2; exit 3"),
        result(json!("Exit code 3\noops"), true),
        json!("Error: Exit code 3\noops"),
        json!([]),
    );
    assert_eq!(
        (&finished["status"], &finished["output"], &finished["exit_code"]),
        (&json!("failed"), &json!("oops"), &json!(3))
    );
    assert_eq!(lines[1..], ["[stdout] oops", "[agent] $ echo oops >&2; exit 3 → exit code 3"]);
}

#[test]
fn a_command_someone_refused_is_declined_with_the_reason() {
    let (_, finished, lines) = check(
        bash("touch made.txt"),
        result(json!("a person said no"), true),
        json!("Error: a person said no"),
        json!([{"id": "toolu_1", "non_execution_kind": "permission-rule",
                "permission_decision": {"decision": "reject", "source": "user_reject"}}]),
    );
    assert_eq!((&finished["status"], &finished["exit_code"]), (&json!("declined"), &json!(null)));
    assert_eq!(lines[1..], ["[agent] $ touch made.txt → declined: a person said no"]);

    // Refused by Claude Code's own permission mode: a `permission_denied` message names the call first.
    let mut tools = Tools::default();
    tools.started(&bash("touch made.txt"));
    tools.denied("toolu_1");
    let finished = tools.finished(&result(json!("touch needs approval"), true), None, None);
    assert!(
        finished
            .iter()
            .any(|effect| matches!(effect, Effect::Item(item) if item.status == ItemStatus::Declined)),
        "{finished:?}"
    );
}

#[test]
fn a_long_output_shows_its_last_lines_in_the_log() {
    let output: Vec<String> = (1..=25).map(|n| format!("line {n}")).collect();
    let (_, finished, lines) =
        check(bash("seq"), result(json!(output.join("\n")), false), json!(null), json!([]));
    assert_eq!(finished["output"], output.join("\n"));
    assert_eq!(lines[1], "[stdout] … 5 lines of output not shown");
    assert_eq!(lines[2], "[stdout] line 6");
}

#[test]
fn a_write_adds_the_file_with_its_content() {
    let write = json!({"type": "tool_use", "id": "toolu_1", "name": "Write",
                       "input": {"file_path": "/w/notes.txt", "content": "remember the milk\n"}});
    let (started, finished, lines) = check(
        write,
        result(json!("File created successfully at: /w/notes.txt"), false),
        json!({"type": "create", "filePath": "/w/notes.txt", "content": "remember the milk\n",
               "structuredPatch": [], "originalFile": null}),
        json!([]),
    );
    let change = json!([{"path": "/w/notes.txt", "kind": "add", "diff": "remember the milk\n"}]);
    assert_eq!((&started["status"], &started["changes"]), (&json!("in_progress"), &change));
    assert_eq!((&finished["status"], &finished["changes"]), (&json!("completed"), &change));
    assert_eq!(lines, ["[agent] writing /w/notes.txt", "[agent] file add: /w/notes.txt"]);
}

#[test]
fn a_write_over_a_file_is_an_update_with_its_patch() {
    let write = json!({"type": "tool_use", "id": "toolu_1", "name": "Write",
                       "input": {"file_path": "/w/a.txt", "content": "new\n"}});
    let (_, finished, _) = check(
        write,
        result(json!("The file /w/a.txt has been updated."), false),
        json!({"type": "update", "filePath": "/w/a.txt", "content": "new\n",
               "structuredPatch": [{"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 1,
                                    "lines": ["-old", "+new"]}]}),
        json!([]),
    );
    assert_eq!(
        finished["changes"],
        json!([{"path": "/w/a.txt", "kind": "update", "diff": "@@ -1,1 +1,1 @@\n-old\n+new\n"}])
    );
}

#[test]
fn an_edit_is_an_update_whose_diff_gains_line_numbers_from_the_result() {
    let edit = json!({"type": "tool_use", "id": "toolu_1", "name": "Edit",
                      "input": {"replace_all": false, "file_path": "/w/notes.txt", "old_string": "milk",
                                "new_string": "bread"}});
    let (started, finished, lines) = check(
        edit,
        result(json!("The file /w/notes.txt has been updated successfully."), false),
        json!({"filePath": "/w/notes.txt", "oldString": "milk", "newString": "bread",
               "originalFile": "remember the milk\n",
               "structuredPatch": [{"oldStart": 1, "oldLines": 1, "newStart": 1, "newLines": 1,
                                    "lines": ["-remember the milk", "+remember the bread"]}]}),
        json!([]),
    );
    assert_eq!(
        started["changes"],
        json!([{"path": "/w/notes.txt", "kind": "update", "diff": "@@\n-milk\n+bread\n"}])
    );
    assert_eq!(
        finished["changes"],
        json!([{"path": "/w/notes.txt", "kind": "update",
                "diff": "@@ -1,1 +1,1 @@\n-remember the milk\n+remember the bread\n"}])
    );
    assert_eq!(lines, ["[agent] editing /w/notes.txt", "[agent] file update: /w/notes.txt"]);
}

#[test]
fn a_multi_edit_shows_each_replacement_and_a_failed_edit_says_why() {
    let edit = json!({"type": "tool_use", "id": "toolu_1", "name": "MultiEdit",
                      "input": {"file_path": "/w/a.rs", "edits": [{"old_string": "a", "new_string": "b"},
                                                                 {"old_string": "c\nd", "new_string": "e"}]}});
    let (started, finished, lines) = check(
        edit,
        result(json!("<tool_use_error>String to replace not found in file.</tool_use_error>"), true),
        json!("Error: String to replace not found in file."),
        json!([]),
    );
    assert_eq!(started["changes"][0]["diff"], "@@\n-a\n+b\n@@\n-c\n-d\n+e\n");
    assert_eq!(finished["status"], "failed");
    assert_eq!(
        lines[1],
        "[agent] file update: /w/a.rs → failed: <tool_use_error>String to replace not found in file.</tool_use_error>"
    );
}

#[test]
fn other_tools_are_tool_calls_with_arguments_and_result() {
    let glob = json!({"type": "tool_use", "id": "toolu_1", "name": "Glob", "input": {"pattern": "*.txt"}});
    let (started, finished, lines) = check(
        glob,
        result(json!("notes.txt\nmade.txt"), false),
        json!({"filenames": ["notes.txt"]}),
        json!([]),
    );
    assert_eq!(
        started,
        json!({"id": "toolu_1", "status": "in_progress", "kind": "tool_call", "server": null, "tool": "Glob",
               "arguments": {"pattern": "*.txt"}, "result": null, "error": null})
    );
    assert_eq!((&finished["result"], &finished["error"]), (&json!("notes.txt\nmade.txt"), &json!(null)));
    assert_eq!(lines, ["[agent] tool Glob: *.txt", "[agent] tool Glob: completed"]);

    let mcp = json!({"type": "tool_use", "id": "toolu_1", "name": "mcp__github__search_issues",
                     "input": {"query": "parse bug"}});
    let content = json!([{"type": "text", "text": "rate limited"}]);
    let (started, finished, lines) = check(mcp, result(content, true), json!(null), json!([]));
    assert_eq!((&started["server"], &started["tool"]), (&json!("github"), &json!("search_issues")));
    assert_eq!((&finished["status"], &finished["error"]), (&json!("failed"), &json!("rate limited")));
    assert_eq!(
        lines,
        [
            "[agent] tool github/search_issues: parse bug",
            "[agent] tool github/search_issues: failed: rate limited"
        ]
    );
}

#[test]
fn a_web_search_is_a_web_search() {
    let search =
        json!({"type": "tool_use", "id": "toolu_1", "name": "WebSearch", "input": {"query": "rust 1.95"}});
    let (started, finished, _) = check(search, result(json!("results"), false), json!(null), json!([]));
    assert_eq!(started["kind"], "web_search");
    assert_eq!((&finished["kind"], &finished["query"]), (&json!("web_search"), &json!("rust 1.95")));
}

#[test]
fn a_result_of_an_unknown_call_is_still_an_item_and_blocks_without_ids_are_passed_over() {
    let mut tools = Tools::default();
    assert!(tools.started(&json!({"type": "tool_use", "name": "Bash"})).is_empty());
    let finished = tools.finished(&result(json!("?"), false), None, None);
    assert!(finished.iter().any(|effect| matches!(effect, Effect::Item(_))), "{finished:?}");
    assert!(tools.finished(&json!({"type": "tool_result"}), None, None).is_empty());
}
