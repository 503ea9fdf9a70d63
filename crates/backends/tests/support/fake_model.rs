//! Test support shared by the tests that drive the real Codex CLI (the backend's own, and the server's end to end): a
//! fake Responses API on 127.0.0.1 that plays a script (a message, a call of the shell tool `exec_command`, an
//! `apply_patch`) and keeps every request it is sent, and a folder with a `CODEX_HOME` pointing Codex at it — with
//! update checks, analytics, plugins and apps off, so nothing leaves 127.0.0.1 — and a wrapper that starts the real
//! `codex` with that home (the backend clears the environment).
#![allow(dead_code, reason = "each test binary that includes this module uses a part of it")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Whether the real CLI is here; without it, the test skips (or fails where it is required).
pub fn codex_is_installed() -> bool {
    let required = std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1")
        && std::env::var("DASHBOARD_REQUIRE_CODEX").is_ok_and(|value| value == "1");
    match std::process::Command::new("codex").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        other if required => panic!("codex is required here (DASHBOARD_REQUIRE_CODEX=1): {other:?}"),
        other => {
            eprintln!(
                "skipped: the Codex CLI is not on PATH ({other:?}); npm install -g @openai/codex@0.169.0"
            );
            false
        }
    }
}

fn event(value: Value) -> String {
    format!("event: {}\ndata: {value}\n\n", value["type"].as_str().unwrap_or_default())
}

fn usage() -> Value {
    json!({"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9,
           "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 129})
}

/// One plain message.
fn message_stream(text: &str) -> String {
    let item = json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]});
    [
        event(json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})),
        event(json!({"type": "response.output_item.added", "output_index": 0,
                     "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}})),
        event(json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": text})),
        event(json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
        event(json!({"type": "response.completed",
                     "response": {"id": "resp_1", "status": "completed", "output": [item], "usage": usage()}})),
    ]
    .concat()
}

/// A response whose one output is a tool call (`function_call` or `custom_tool_call`).
fn tool_call_stream(item: Value) -> String {
    let id = format!("resp_{}", item["call_id"].as_str().unwrap_or("call"));
    [
        event(json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}})),
        event(json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
        event(json!({"type": "response.completed",
                     "response": {"id": id, "status": "completed", "output": [item], "usage": usage()}})),
    ]
    .concat()
}

/// What the model answers one request with.
pub enum Step {
    /// A call of the shell tool: `exec_command` with `{"cmd": …}`.
    Command(&'static str),
    /// A call of the freeform `apply_patch` tool with this patch.
    Patch(&'static str),
}

impl Step {
    fn stream(&self, call_id: &str) -> String {
        match self {
            Self::Command(cmd) => tool_call_stream(json!({
                "type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id, "name": "exec_command",
                "arguments": json!({"cmd": cmd}).to_string(), "status": "completed"})),
            Self::Patch(patch) => tool_call_stream(json!({
                "type": "custom_tool_call", "id": format!("ctc_{call_id}"), "call_id": call_id,
                "name": "apply_patch", "input": patch, "status": "completed"})),
        }
    }
}

/// The fake model: the n-th request gets the n-th step, and every request after the steps the closing message.
struct Script {
    steps: Vec<Step>,
    closing: String,
    n_requests: AtomicUsize,
}

impl Script {
    fn next_answer(&self) -> String {
        let n = self.n_requests.fetch_add(1, Ordering::SeqCst);
        match self.steps.get(n) {
            Some(step) => step.stream(&format!("call_{n}")),
            None => message_stream(&self.closing),
        }
    }
}

/// One request the fake model server received: its method and path, and its body.
#[derive(Debug)]
struct Received {
    path: String,
    body: String,
}

async fn serve(
    socket: TcpStream,
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    let path = request_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let body = String::from_utf8_lossy(&body).into_owned();
    received.lock().expect("an unpoisoned lock").push(Received { path: path.clone(), body });
    let response = if path.starts_with("POST") && path.ends_with("/responses") {
        let answer = script.next_answer();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    };
    writer.write_all(response.as_bytes()).await?;
    writer.flush().await
}

/// A CODEX_HOME whose config points Codex at the fake and turns off everything that would reach the internet.
fn codex_home(dir: &Path, base_url: &str) {
    let config = format!(
        r#"model = "gpt-5.5"
model_provider = "fake"
check_for_update_on_startup = false

[model_providers.fake]
name = "fake"
base_url = "{base_url}"
wire_api = "responses"
env_key = "FAKE_MODEL_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
apps = false
"#
    );
    std::fs::write(dir.join("config.toml"), config).expect("write config.toml");
}

/// The fake model server, started on a free port of 127.0.0.1 for as long as the test's runtime runs.
pub struct FakeModel {
    /// Its base URL, `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeModel {
    /// A fake that answers the n-th model request with the n-th of `steps`, and every later one with the message
    /// `closing`.
    pub async fn start(steps: Vec<Step>, closing: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("an address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Script { steps, closing: closing.to_owned(), n_requests: AtomicUsize::new(0) });
        let served = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, script.clone(), served.clone()));
            }
        });
        Self { base_url, received }
    }

    /// The bodies of the model requests (`POST …/responses`) so far.
    pub fn model_requests(&self) -> Vec<String> {
        let received = self.received.lock().expect("an unpoisoned lock");
        received
            .iter()
            .filter(|request| request.path.starts_with("POST") && request.path.ends_with("/responses"))
            .map(|request| request.body.clone())
            .collect()
    }

    /// The outputs of tool calls that the model requests carried (`function_call_output`,
    /// `custom_tool_call_output`), each once, in order.
    pub fn tool_outputs(&self) -> Vec<String> {
        let mut outputs = Vec::new();
        for body in self.model_requests() {
            let Ok(request) = serde_json::from_str::<Value>(&body) else { continue };
            for input in request["input"].as_array().into_iter().flatten() {
                let kind = input["type"].as_str().unwrap_or_default();
                if kind.ends_with("call_output") {
                    let output =
                        input["output"].as_str().map_or_else(|| input["output"].to_string(), str::to_owned);
                    if !outputs.contains(&output) {
                        outputs.push(output);
                    }
                }
            }
        }
        outputs
    }
}

/// A folder of its own for one test: a `CODEX_HOME` pointing at a fake model, a work dir, and `codex`, a wrapper
/// that runs the real CLI with that home and the fake's key. Removed when dropped.
pub struct CodexFolder {
    /// The folder.
    pub root: PathBuf,
    /// The work dir Codex runs in.
    pub work: PathBuf,
    /// The wrapper to give the backend as its `command`.
    pub wrapper: PathBuf,
}

impl CodexFolder {
    /// A new folder in the temporary dir, for the fake model at `base_url`.
    pub fn new(base_url: &str) -> Self {
        let root = std::env::temp_dir().join(format!("real-codex-{}", uuid_like()));
        let (home, work) = (root.join("home"), root.join("work"));
        std::fs::create_dir_all(&home).expect("a home");
        std::fs::create_dir_all(&work).expect("a workdir");
        codex_home(&home, base_url);
        let wrapper = root.join("codex");
        let script = format!(
            "#!/bin/sh\nexport CODEX_HOME='{}' HOME='{}' FAKE_MODEL_KEY=not-a-real-key\nexec codex \"$@\"\n",
            home.display(),
            home.display()
        );
        std::fs::write(&wrapper, script).expect("write the wrapper");
        std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().expect("chmod");
        Self { root, work, wrapper }
    }
}

impl Drop for CodexFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A name no other test of this run picks: the process id and a counter.
fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}
