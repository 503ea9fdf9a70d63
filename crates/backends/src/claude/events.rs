//! Reading `claude -p --output-format stream-json --verbose`: each JSON line (a `system`, `assistant`, `user` or
//! `result` message) becomes readable log lines, transcript items, the session id, or the run's result. Unknown
//! message types and fields are passed over (logged at debug level); a line that is not JSON is shown as it is.

use std::collections::{HashSet, VecDeque};

use dashboard_core::{ItemBody, ItemStatus, LogStream, MessageRole, NewItem};
use serde_json::{Value, json};

use super::json::{count, list, owned, text};
use super::tools::Tools;

/// What one line of Claude Code's output means for the run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Show this line in the log.
    Log(LogStream, String),
    /// A line of output that is no JSON message: shown as `stdout`, and kept to explain a crash.
    Text(String),
    /// Report this transcript item (new, or an update of one reported before under its id).
    Item(NewItem),
    /// The session's id: what a follow-up turn resumes (`--resume`).
    Session(String),
    /// The run's usage so far, in the Messages API's words (`input_tokens`, `cache_read_input_tokens`, …), summed
    /// over the model requests whose messages came so far.
    Usage(Value),
    /// The `result` message that ends the run.
    Result(Box<Value>),
}

/// The most model requests remembered as counted, so that a request whose message comes as several lines counts
/// once; past it the oldest are forgotten (their lines long gone by then).
const MAX_COUNTED: usize = 4096;

/// The usage of the model requests seen so far, from each assistant message's `usage`: its input and cache figures
/// are the request's, but its `output_tokens` are what was counted when the message began (Claude Code 2.1 writes
/// the message before the request ends), so the output is undercounted until the `result`.
#[derive(Debug, Default)]
struct RunningUsage {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    /// The requests (message ids) counted, and the same ids oldest first.
    counted: HashSet<String>,
    order: VecDeque<String>,
}

impl RunningUsage {
    /// Counts the request of an assistant message once; whether it was new.
    fn count(&mut self, message: &Value) -> bool {
        let (Some(id), Some(usage)) =
            (text(message, "id"), message.get("usage").filter(|usage| usage.is_object()))
        else {
            return false;
        };
        if !self.counted.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > MAX_COUNTED
            && let Some(oldest) = self.order.pop_front()
        {
            self.counted.remove(&oldest);
        }
        let add = |sum: &mut u64, field: &str| *sum = sum.saturating_add(count(usage, field).unwrap_or(0));
        add(&mut self.input, "input_tokens");
        add(&mut self.cache_read, "cache_read_input_tokens");
        add(&mut self.cache_write, "cache_creation_input_tokens");
        add(&mut self.output, "output_tokens");
        true
    }

    fn report(&self, model: Option<&str>) -> Value {
        let mut report = json!({"input_tokens": self.input, "cache_read_input_tokens": self.cache_read,
                                "cache_creation_input_tokens": self.cache_write, "output_tokens": self.output});
        if let (Some(model), Some(fields)) = (model, report.as_object_mut()) {
            fields.insert("model".into(), Value::String(model.to_owned()));
        }
        report
    }
}

/// What the stream has said so far that later messages need: the tool calls waiting for their results, the model.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    tools: Tools,
    /// The model the session runs (`system`/`init`).
    pub(crate) model: Option<String>,
    /// Counts blocks that carry no id of their own, to give their items one.
    n_unnamed: usize,
    usage: RunningUsage,
}

impl Transcript {
    /// Interprets one line of output.
    pub(crate) fn line(&mut self, line: &str) -> Vec<Effect> {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            return if line.trim().is_empty() { Vec::new() } else { vec![Effect::Text(line.to_owned())] };
        };
        match text(&message, "type").unwrap_or_default() {
            "system" => self.system(&message),
            "assistant" => self.assistant(&message),
            "user" => self.user(&message),
            "result" => vec![Effect::Result(Box::new(message))],
            other => {
                log::debug!("claude: a message of type {other:?} passed over");
                Vec::new()
            }
        }
    }

    fn system(&mut self, message: &Value) -> Vec<Effect> {
        match text(message, "subtype").unwrap_or_default() {
            "init" => {
                let session = text(message, "session_id").unwrap_or("?");
                self.model = text(message, "model").map(str::to_owned);
                let mut started = format!("claude session {session} started");
                if let Some(model) = &self.model {
                    started.push_str(&format!(" (model {model})"));
                }
                let mut effects = vec![Effect::Log(LogStream::System, started)];
                effects
                    .extend(text(message, "session_id").map(|session| Effect::Session(session.to_owned())));
                for server in list(message, "mcp_servers") {
                    let status = text(server, "status").unwrap_or("?");
                    if status != "connected" {
                        let name = text(server, "name").unwrap_or("?");
                        effects.push(Effect::Log(LogStream::Stderr, format!("MCP server {name}: {status}")));
                    }
                }
                effects
            }
            "permission_denied" => {
                if let Some(id) = text(message, "tool_use_id") {
                    self.tools.denied(id);
                }
                let tool = text(message, "tool_name").unwrap_or("a tool");
                let why = text(message, "message").unwrap_or("not allowed");
                vec![Effect::Log(LogStream::System, format!("claude may not use {tool}: {why}"))]
            }
            "api_retry" => {
                let status =
                    count(message, "error_status").map(|status| format!(" {status}")).unwrap_or_default();
                let error = text(message, "error").unwrap_or("error");
                let attempt = count(message, "attempt").unwrap_or(0);
                let most =
                    count(message, "max_retries").map(|most| format!(" of {most}")).unwrap_or_default();
                let line = format!("model API{status} {error}: retrying (attempt {attempt}{most})");
                vec![Effect::Log(LogStream::Stderr, line)]
            }
            "compact_boundary" => {
                vec![Effect::Log(LogStream::System, "claude compacted the conversation".to_owned())]
            }
            subtype => match (text(message, "level"), text(message, "content")) {
                (Some(level @ ("warning" | "error")), Some(content)) => {
                    vec![Effect::Log(LogStream::Stderr, format!("{level}: {content}"))]
                }
                _ => {
                    log::debug!("claude: a system message {subtype:?} passed over");
                    Vec::new()
                }
            },
        }
    }

    fn assistant(&mut self, message: &Value) -> Vec<Effect> {
        let Some(body) = message.get("message") else { return Vec::new() };
        // An error of the model's API comes as a made-up assistant message whose text is the error.
        let is_api_error = message.get("is_api_error_message").and_then(Value::as_bool) == Some(true)
            || message.get("error").is_some_and(|error| !error.is_null());
        let line_id = text(message, "uuid").or_else(|| text(body, "id")).map(str::to_owned);
        let mut effects = Vec::new();
        if !is_api_error && self.usage.count(body) {
            let model = text(body, "model").or(self.model.as_deref());
            effects.push(Effect::Usage(self.usage.report(model)));
        }
        for (index, block) in list(body, "content").enumerate() {
            let id = match (&line_id, index) {
                (Some(id), 0) => id.clone(),
                (Some(id), _) => format!("{id}-{index}"),
                (None, _) => {
                    self.n_unnamed += 1;
                    format!("block-{}", self.n_unnamed)
                }
            };
            match text(block, "type").unwrap_or_default() {
                "text" if is_api_error => {
                    let error = owned(block, "text");
                    effects.extend(
                        error.lines().map(|line| Effect::Log(LogStream::Stderr, format!("error: {line}"))),
                    );
                    effects.extend(item(id, ItemBody::Error { message: error }));
                }
                "text" => {
                    let said = owned(block, "text");
                    effects.extend(said.lines().map(|line| Effect::Log(LogStream::Agent, line.to_owned())));
                    effects.extend(item(id, ItemBody::Message { role: MessageRole::Agent, text: said }));
                }
                "thinking" => {
                    let thought = owned(block, "thinking");
                    effects.extend(
                        thought
                            .lines()
                            .filter(|line| !line.trim().is_empty())
                            .map(|line| Effect::Log(LogStream::Agent, format!("thinking: {line}"))),
                    );
                    if !thought.trim().is_empty() {
                        effects.extend(item(id, ItemBody::Reasoning { text: thought }));
                    }
                }
                "tool_use" => effects.extend(self.tools.started(block)),
                other => log::debug!("claude: an assistant block {other:?} passed over"),
            }
        }
        effects
    }

    fn user(&mut self, message: &Value) -> Vec<Effect> {
        let Some(body) = message.get("message") else { return Vec::new() };
        let results: Vec<&Value> =
            list(body, "content").filter(|block| text(block, "type") == Some("tool_result")).collect();
        // Claude Code's own account of a result (`tool_use_result`) is one per message: it belongs to a lone result.
        let details = if results.len() == 1 { message.get("tool_use_result") } else { None };
        let meta = message.get("tool_result_meta");
        results.into_iter().flat_map(|block| self.tools.finished(block, details, meta)).collect()
    }
}

fn item(id: String, body: ItemBody) -> Option<Effect> {
    NewItem::new(id, ItemStatus::Completed, body).ok().map(Effect::Item)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
