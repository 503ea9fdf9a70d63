//! `POST /api/executions/{id}/mcp`: the MCP server (streamable HTTP, JSON-RPC) that a running agent asks permission
//! through — Claude Code's `--permission-prompt-tool mcp__dashboard__approve` — authorized by the execution's callback
//! token like the other callback routes. Its one tool, `approve`, turns the agent's request (`tool_name`, `input`,
//! `tool_use_id`) into an approval of that execution (§11: the function's policy, a grant for the session, or a person
//! while the execution is `waiting`) and answers with the agent's permission result: `{"behavior": "allow",
//! "updatedInput": …}` or `{"behavior": "deny", "message": …}`. A call that waits for a person is answered as an SSE
//! stream with a progress notification every 15 s, so the agent's MCP client does not give up on it.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use dashboard_backend_api::{ApprovalAnswer, ApprovalRequest};
use dashboard_core::{ApprovalKind, Decision, ExecutionId};
use dashboard_engine::Dashboard;
use futures_util::stream;
use serde_json::{Map, Value, json};

use crate::common::parse_execution_id;
use crate::error::ApiError;
use crate::state::State;

/// The tool's name; Claude Code calls it `mcp__dashboard__approve`.
pub(crate) const TOOL: &str = "approve";
/// How often a waiting call tells the client it is still going.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// The protocol version answered when the client asks for none this server knows.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// The protocol versions this server speaks (the client's is echoed when it is one of them).
const KNOWN_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// JSON-RPC's "method not found".
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC's "invalid request".
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC's "invalid params".
const INVALID_PARAMS: i64 = -32602;

/// `GET /api/executions/{id}/mcp`: this server opens no stream of its own.
pub(crate) async fn stream() -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "POST")).finish()
}

/// `POST /api/executions/{id}/mcp`: one JSON-RPC message.
pub(crate) async fn message(
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_execution_id(&path)?;
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return Ok(json_answer(&error(Value::Null, INVALID_REQUEST, "the body is not one JSON-RPC message")));
    };
    if message.is_array() {
        return Ok(json_answer(&error(
            Value::Null,
            INVALID_REQUEST,
            "batches are not served here; send one message",
        )));
    }
    let request_id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str);
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let (Some(request_id), Some(method)) = (request_id, method) else {
        // A notification, or a response to nothing this server asked: accepted, nothing to say.
        return Ok(HttpResponse::Accepted().finish());
    };
    let answer = match method {
        "initialize" => result(request_id, initialize(&params)),
        "ping" => result(request_id, json!({})),
        "tools/list" => result(request_id, json!({"tools": [tool()]})),
        "tools/call" => return Ok(call(state.dashboard.clone(), id, request_id, &params)),
        other => error(request_id, METHOD_NOT_FOUND, &format!("method {other:?} is not served here")),
    };
    Ok(json_answer(&answer))
}

/// The answer to `initialize`: the client's protocol version when this server knows it, and the tools capability.
fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
    let version = KNOWN_VERSIONS.into_iter().find(|known| *known == asked).unwrap_or(PROTOCOL_VERSION);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "agent-dashboard", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Asks a person (or the function's approval policy) before the agent uses a tool.",
    })
}

/// The one tool, as `tools/list` describes it.
fn tool() -> Value {
    json!({
        "name": TOOL,
        "description": "Asks the dashboard whether the agent may use a tool; answers with the permission result.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool_name": {"type": "string", "description": "The tool the agent wants to use."},
                "input": {"type": "object", "description": "The tool's input."},
                "tool_use_id": {"type": "string", "description": "The tool use's id."}
            },
            "required": ["tool_name", "input"]
        }
    })
}

/// `tools/call`: asks, and answers as an SSE stream that carries progress while it waits, then the result.
fn call(dashboard: Dashboard, id: ExecutionId, request_id: Value, params: &Value) -> HttpResponse {
    let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
    let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
    if name != TOOL {
        return json_answer(&error(
            request_id,
            INVALID_PARAMS,
            &format!("unknown tool {name:?}; the tool is {TOOL}"),
        ));
    }
    let Some(request) = approval_request(&arguments) else {
        return json_answer(&error(
            request_id,
            INVALID_PARAMS,
            "arguments: tool_name (text) and input (object) are needed",
        ));
    };
    let progress_token = params.pointer("/_meta/progressToken").cloned();
    let input = arguments.get("input").cloned().unwrap_or(Value::Null);
    let tool_name = arguments.get("tool_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let asking = Box::pin(async move {
        let text = match dashboard.ask_approval(id, request).await {
            Ok(answer) => permission_result(&answer, &tool_name, input).to_string(),
            Err(refused) => {
                let deny =
                    json!({"behavior": "deny", "message": format!("the dashboard cannot ask: {refused}")});
                deny.to_string()
            }
        };
        result(request_id, json!({"content": [{"type": "text", "text": text}]}))
    });
    let body = stream::unfold(Some((asking, 0_u64)), move |state| {
        let progress_token = progress_token.clone();
        async move {
            let (mut asking, sent) = state?;
            let tick = tokio::time::sleep(PROGRESS_EVERY);
            tokio::select! {
                answer = &mut asking => Some((Ok::<_, Infallible>(sse(&answer)), None)),
                () = tick => {
                    let note = match &progress_token {
                        Some(token) => json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                              "params": {"progressToken": token, "progress": sent + 1,
                                                         "message": "waiting for a decision"}}),
                        None => json!({"jsonrpc": "2.0", "method": "notifications/message",
                                       "params": {"level": "info", "data": "waiting for a decision"}}),
                    };
                    Some((Ok(sse(&note)), Some((asking, sent + 1))))
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// The agent's request as an approval request: a shell command, a change of files, or another tool's use.
fn approval_request(arguments: &Value) -> Option<ApprovalRequest> {
    let tool_name = arguments.get("tool_name")?.as_str()?;
    let input = arguments.get("input")?.as_object()?;
    let text = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut request = match tool_name {
        "Bash" => {
            let command = text("command");
            let details =
                json!({"command": command, "description": input.get("description"), "tool": tool_name});
            let mut request = ApprovalRequest::new(ApprovalKind::Command, &command, details);
            request.grant_key = Some(command);
            request
        }
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => {
            let path = [text("file_path"), text("notebook_path")].into_iter().find(|path| !path.is_empty());
            let path = path.unwrap_or_default();
            let details = json!({"changes": [{"path": path, "kind": change_kind(tool_name), "diff": diff_of(tool_name, input)}],
                                 "tool": tool_name});
            ApprovalRequest::new(ApprovalKind::FileChange, &path, details)
        }
        other => {
            let details = json!({"tool": other, "input": input});
            let mut request =
                ApprovalRequest::new(ApprovalKind::Permission, format!("use the tool {other}"), details);
            request.grant_key = Some(other.to_owned());
            request
        }
    };
    request.item_id = arguments.get("tool_use_id").and_then(Value::as_str).map(str::to_owned);
    Some(request)
}

fn change_kind(tool_name: &str) -> &'static str {
    if tool_name == "Write" { "add" } else { "update" }
}

/// What a file tool would change, as a diff where the input tells it: the new content of a written file, the old and
/// new text of each edit.
fn diff_of(tool_name: &str, input: &Map<String, Value>) -> String {
    let lines =
        |text: &str, mark: char| text.lines().map(|line| format!("{mark}{line}\n")).collect::<String>();
    let edit = |edit: &Value| {
        let old = edit.get("old_string").and_then(Value::as_str).unwrap_or_default();
        let new = edit.get("new_string").and_then(Value::as_str).unwrap_or_default();
        format!("@@\n{}{}", lines(old, '-'), lines(new, '+'))
    };
    match tool_name {
        "Write" => lines(input.get("content").and_then(Value::as_str).unwrap_or_default(), '+'),
        "MultiEdit" => input
            .get("edits")
            .and_then(Value::as_array)
            .map(|edits| edits.iter().map(edit).collect())
            .unwrap_or_default(),
        "Edit" => edit(&Value::Object(input.clone())),
        _ => String::new(),
    }
}

/// The permission result Claude Code expects from the tool.
fn permission_result(answer: &ApprovalAnswer, tool_name: &str, input: Value) -> Value {
    match answer.decision {
        Decision::Approve => json!({"behavior": "allow", "updatedInput": input}),
        Decision::ApproveForSession => {
            let mut rule = json!({"toolName": tool_name});
            if tool_name == "Bash"
                && let Some(command) = input.get("command").and_then(Value::as_str)
            {
                rule["ruleContent"] = json!(command);
            }
            json!({
                "behavior": "allow",
                "updatedInput": input,
                "updatedPermissions": [{"type": "addRules", "rules": [rule], "behavior": "allow", "destination": "session"}],
            })
        }
        Decision::Decline => {
            let mut message = format!("declined by {}", answer.decided_by);
            if let Some(note) = &answer.note {
                message.push_str(&format!(": {note}"));
            }
            json!({"behavior": "deny", "message": message})
        }
    }
}

fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn json_answer(message: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(message.to_string())
}

/// One SSE message carrying a JSON-RPC message.
fn sse(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_becomes_the_approval_a_person_reads() {
        let bash = json!({"tool_name": "Bash", "input": {"command": "rm -rf build", "description": "clean"}, "tool_use_id": "toolu_1"});
        let request = approval_request(&bash).expect("a request");
        assert_eq!((request.kind, request.summary.as_str()), (ApprovalKind::Command, "rm -rf build"));
        assert_eq!(
            (request.item_id.as_deref(), request.grant_key.as_deref()),
            (Some("toolu_1"), Some("rm -rf build"))
        );

        let edit = json!({"tool_name": "Edit", "input": {"file_path": "/r/a.rs", "old_string": "a\nb", "new_string": "c"}});
        let request = approval_request(&edit).expect("a request");
        assert_eq!((request.kind, request.summary.as_str()), (ApprovalKind::FileChange, "/r/a.rs"));
        assert_eq!(request.details["changes"][0]["diff"], "@@\n-a\n-b\n+c\n");

        let fetch = json!({"tool_name": "WebFetch", "input": {"url": "https://example.com"}});
        let request = approval_request(&fetch).expect("a request");
        assert_eq!(
            (request.kind, request.summary.as_str()),
            (ApprovalKind::Permission, "use the tool WebFetch")
        );
        assert!(approval_request(&json!({"tool_name": "Bash"})).is_none(), "no input");
    }

    #[test]
    fn each_decision_is_the_permission_result_claude_code_reads() {
        let input = json!({"command": "make"});
        let approve =
            permission_result(&ApprovalAnswer::new(Decision::Approve, "alice"), "Bash", input.clone());
        assert_eq!(approve, json!({"behavior": "allow", "updatedInput": {"command": "make"}}));
        let session = permission_result(
            &ApprovalAnswer::new(Decision::ApproveForSession, "alice"),
            "Bash",
            input.clone(),
        );
        assert_eq!(
            session["updatedPermissions"][0]["rules"][0],
            json!({"toolName": "Bash", "ruleContent": "make"})
        );
        let mut declined = ApprovalAnswer::new(Decision::Decline, "alice");
        declined.note = Some("not today".into());
        assert_eq!(
            permission_result(&declined, "Bash", input),
            json!({"behavior": "deny", "message": "declined by alice: not today"})
        );
    }
}
