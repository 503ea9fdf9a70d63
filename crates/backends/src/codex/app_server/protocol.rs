//! The part of the Codex app-server protocol (JSON-RPC over stdio, as `codex app-server generate-json-schema`
//! describes it for 0.169) that the dashboard speaks: the requests and the notification it sends, the envelope of its
//! answers to the server's requests (their results are shaped in [`super::approvals`]), and how an incoming message is
//! told apart. Messages carry no `"jsonrpc"` member: the server's schema has none.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The methods the dashboard calls.
pub(crate) const INITIALIZE: &str = "initialize";
pub(crate) const INITIALIZED: &str = "initialized";
pub(crate) const THREAD_START: &str = "thread/start";
pub(crate) const THREAD_RESUME: &str = "thread/resume";
pub(crate) const TURN_START: &str = "turn/start";
pub(crate) const TURN_INTERRUPT: &str = "turn/interrupt";

/// The notification that a server request was answered or withdrawn (by another client, or the turn's end).
pub(crate) const SERVER_REQUEST_RESOLVED: &str = "serverRequest/resolved";

/// JSON-RPC's "method not found", the answer to a server request the dashboard does not support.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;

/// Codex's sandbox for the commands the agent runs (`sandbox` of the backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodexSandbox {
    /// Commands may read, never write.
    ReadOnly,
    /// Commands may write inside the working directory.
    WorkspaceWrite,
    /// No sandbox at all.
    DangerFullAccess,
}

/// Codex's own approval policy (`approval` of the backend): when the agent asks before it acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodexApproval {
    /// Asks before any command it does not consider safe.
    Untrusted,
    /// The model decides when to ask.
    OnRequest,
    /// Never asks; a command the sandbox refuses fails. A function whose `approval_policy` is `ask` or `deny` cannot
    /// run on such a backend: nothing would ever reach the dashboard to ask about or decline.
    Never,
}

/// `initialize`'s params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InitializeParams {
    pub(crate) client_info: ClientInfo,
}

/// Who the client is, as `initialize` tells the server.
#[derive(Debug, Serialize)]
pub(crate) struct ClientInfo {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) version: &'static str,
}

impl Default for InitializeParams {
    fn default() -> Self {
        Self {
            client_info: ClientInfo {
                name: "agent_dashboard",
                title: "Agent Dashboard",
                version: env!("CARGO_PKG_VERSION"),
            },
        }
    }
}

/// `thread/start`'s params: each setting only when the backend sets it, so Codex's own defaults apply otherwise.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThreadStartParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sandbox: Option<CodexSandbox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) approval_policy: Option<CodexApproval>,
}

/// `thread/resume`'s params: the thread by its id (the protocol's preferred way; Codex loads it from `CODEX_HOME`),
/// with the same settings as `thread/start`, each only when the backend sets it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThreadResumeParams {
    pub(crate) thread_id: String,
    #[serde(flatten)]
    pub(crate) settings: ThreadStartParams,
}

/// `turn/start`'s params: the prompt as the one text input of the turn.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TurnStartParams {
    pub(crate) thread_id: String,
    pub(crate) input: Vec<UserInput>,
}

/// One input of a turn; the dashboard sends text only.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum UserInput {
    Text { text: String },
}

/// `turn/interrupt`'s params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TurnInterruptParams {
    pub(crate) thread_id: String,
    pub(crate) turn_id: String,
}

/// A request to the server, as one line.
pub(crate) fn request(id: u64, method: &str, params: &impl Serialize) -> String {
    json!({"id": id, "method": method, "params": params}).to_string()
}

/// A notification to the server, as one line.
pub(crate) fn notification(method: &str) -> String {
    json!({"method": method}).to_string()
}

/// A successful answer to a server request, as one line.
pub(crate) fn response(id: &Value, result: &Value) -> String {
    json!({"id": id, "result": result}).to_string()
}

/// An error answer to a server request, as one line.
pub(crate) fn error_response(id: &Value, code: i64, message: &str) -> String {
    json!({"id": id, "error": {"code": code, "message": message}}).to_string()
}

/// One message from the server.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to one of the dashboard's requests: its result or its error message.
    Response { id: u64, result: Result<Value, String> },
    /// A request the server makes of the dashboard (an approval, a question).
    Request { id: Value, method: String, params: Value },
    /// A notification.
    Notification { method: String, params: Value },
}

/// Reads one line from the server, or `None` when it is no JSON-RPC message.
pub(crate) fn incoming(line: &str) -> Option<Incoming> {
    let mut message: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    let params = message.remove("params").unwrap_or(Value::Null);
    match (message.remove("id"), message.remove("method")) {
        (Some(id), Some(Value::String(method))) => Some(Incoming::Request { id, method, params }),
        (None, Some(Value::String(method))) => Some(Incoming::Notification { method, params }),
        (Some(id), None) => {
            let id = id.as_u64()?;
            let result = match message.remove("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the server answered with an error")
                    .to_owned()),
                None => Ok(message.remove("result").unwrap_or(Value::Null)),
            };
            Some(Incoming::Response { id, result })
        }
        _ => None,
    }
}

/// Every message the dashboard may send, each with every optional field set: the schema test checks them all.
#[cfg(test)]
pub(crate) fn every_message_sent() -> Vec<(&'static str, Value)> {
    fn value(params: impl Serialize) -> Value {
        serde_json::to_value(params).expect("params serialize")
    }
    let thread = ThreadStartParams {
        cwd: Some("/work".into()),
        sandbox: Some(CodexSandbox::WorkspaceWrite),
        approval_policy: Some(CodexApproval::OnRequest),
    };
    let resume = ThreadResumeParams {
        thread_id: "t".into(),
        settings: ThreadStartParams {
            cwd: Some("/work".into()),
            sandbox: Some(CodexSandbox::ReadOnly),
            approval_policy: Some(CodexApproval::Never),
        },
    };
    let turn =
        TurnStartParams { thread_id: "t".into(), input: vec![UserInput::Text { text: "hello".into() }] };
    vec![
        (INITIALIZE, value(InitializeParams::default())),
        (INITIALIZED, Value::Null),
        (THREAD_START, value(thread)),
        (THREAD_RESUME, value(resume)),
        (TURN_START, value(turn)),
        (TURN_INTERRUPT, value(TurnInterruptParams { thread_id: "t".into(), turn_id: "u".into() })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: Option<Incoming>) {
        assert_eq!(incoming(line), expected, "{line}");
    }

    #[test]
    fn incoming_messages_are_told_apart() {
        check(
            r#"{"id":3,"result":{"ok":true}}"#,
            Some(Incoming::Response { id: 3, result: Ok(json!({"ok": true})) }),
        );
        check(
            r#"{"id":4,"error":{"code":-32600,"message":"bad"}}"#,
            Some(Incoming::Response { id: 4, result: Err("bad".into()) }),
        );
        check(
            r#"{"id":"r1","method":"item/fileChange/requestApproval","params":{"itemId":"i"}}"#,
            Some(Incoming::Request {
                id: json!("r1"),
                method: "item/fileChange/requestApproval".into(),
                params: json!({"itemId": "i"}),
            }),
        );
        check(
            r#"{"method":"turn/started","params":{"turn":{}}}"#,
            Some(Incoming::Notification { method: "turn/started".into(), params: json!({"turn": {}}) }),
        );
        check("not json", None);
        check(r#"{"id":"x","result":1}"#, None);
    }

    #[test]
    fn unset_settings_are_not_sent() {
        let params = serde_json::to_value(ThreadStartParams::default()).expect("serializes");
        assert_eq!(params, json!({}));
    }

    #[test]
    fn a_resume_names_the_thread_and_only_the_settings_that_are_set() {
        let settings =
            ThreadStartParams { sandbox: Some(CodexSandbox::ReadOnly), ..ThreadStartParams::default() };
        let params = serde_json::to_value(ThreadResumeParams { thread_id: "thr_1".into(), settings })
            .expect("serializes");
        assert_eq!(params, json!({"threadId": "thr_1", "sandbox": "read-only"}));
    }
}
