//! Test support for the tests that drive the real Claude Code CLI: a fake Anthropic Messages API on 127.0.0.1 that
//! plays a script (a message, a call of the Bash tool, a Write, an Edit) and keeps every request it is sent — and
//! refuses, and records, any request Claude Code tries to send elsewhere through it as its proxy — and a folder with
//! a home and a config dir of its own and a wrapper that starts the real `claude` pointed at the fake (the backend
//! clears the environment).
#![allow(dead_code, reason = "each test binary that includes this module uses a part of it")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The most a request's head and body may hold: a model request with its tools and history is some 50 KiB.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Whether the real CLI is here; without it, the test skips (or fails where it is required).
pub fn claude_is_installed() -> bool {
    let required = std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1")
        && std::env::var("DASHBOARD_REQUIRE_CLAUDE").is_ok_and(|value| value == "1");
    match std::process::Command::new("claude").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        other if required => panic!("claude is required here (DASHBOARD_REQUIRE_CLAUDE=1): {other:?}"),
        other => {
            eprintln!(
                "skipped: Claude Code is not on PATH ({other:?}); npm install -g @anthropic-ai/claude-code@2.1.332"
            );
            false
        }
    }
}

/// What the model answers one request with.
#[derive(Clone, Debug)]
pub enum Step {
    /// A call of the Bash tool with this command.
    Bash(String),
    /// A call of the Write tool: this file gets this content.
    Write { path: String, content: &'static str },
    /// A call of the Edit tool: in this file, `old` becomes `new`.
    Edit { path: String, old: &'static str, new: &'static str },
}

impl Step {
    fn tool_use(&self) -> (&'static str, Value) {
        match self {
            Self::Bash(command) => ("Bash", json!({"command": command, "description": "Run it"})),
            Self::Write { path, content } => ("Write", json!({"file_path": path, "content": content})),
            Self::Edit { path, old, new } => {
                ("Edit", json!({"file_path": path, "old_string": old, "new_string": new}))
            }
        }
    }
}

fn event(value: Value) -> String {
    format!("event: {}\ndata: {value}\n\n", value["type"].as_str().unwrap_or_default())
}

/// One streamed answer whose one content block is `block` (its deltas sent separately), ending for `stop_reason`.
/// Each answer reports 100 input tokens, 30 read from the cache, 20 written to it and 12 output tokens.
fn answer(n: usize, model: &str, block: Value, delta: Value, stop_reason: &str) -> String {
    [
        event(json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30,
                      "output_tokens": 1}}})),
        event(json!({"type": "content_block_start", "index": 0, "content_block": block})),
        event(json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        event(json!({"type": "content_block_stop", "index": 0})),
        event(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                     "usage": {"output_tokens": 12}})),
        event(json!({"type": "message_stop"})),
    ]
    .concat()
}

fn text_answer(n: usize, model: &str, text: &str) -> String {
    let block = json!({"type": "text", "text": ""});
    answer(n, model, block, json!({"type": "text_delta", "text": text}), "end_turn")
}

fn tool_answer(n: usize, model: &str, step: &Step) -> String {
    let (name, input) = step.tool_use();
    let block = json!({"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": {}});
    let delta = json!({"type": "input_json_delta", "partial_json": input.to_string()});
    answer(n, model, block, delta, "tool_use")
}

/// The fake model: the n-th model request gets the n-th step, and every request after the steps the closing message.
struct Script {
    steps: Mutex<Vec<Step>>,
    closing: String,
    n_requests: AtomicUsize,
}

impl Script {
    fn next_answer(&self, request: &Value) -> String {
        let n = self.n_requests.fetch_add(1, Ordering::SeqCst);
        let model = request["model"].as_str().unwrap_or("claude-opus-5-5");
        let step = self.steps.lock().expect("an unpoisoned lock").get(n).cloned();
        match step {
            Some(step) => tool_answer(n, model, &step),
            None => text_answer(n, model, &self.closing),
        }
    }
}

/// One request the fake received: its method and target, and its body.
#[derive(Clone, Debug)]
pub struct Received {
    /// `POST /v1/messages?beta=true`, `CONNECT api.anthropic.com:443`, …
    pub request: String,
    /// The body, as text.
    pub body: String,
}

impl Received {
    fn is_model_request(&self) -> bool {
        self.request.starts_with("POST /v1/messages") && !self.request.contains("count_tokens")
    }
}

async fn serve(
    socket: TcpStream,
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader.take(MAX_REQUEST_BYTES as u64));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 {
            break;
        }
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
    let mut body = vec![0; content_length.min(MAX_REQUEST_BYTES)];
    reader.read_exact(&mut body).await?;
    let request = request_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let received_now = Received { request, body: String::from_utf8_lossy(&body).into_owned() };
    let response = if received_now.is_model_request() {
        let body: Value = serde_json::from_str(&received_now.body).unwrap_or(Value::Null);
        let answer = script.next_answer(&body);
        let length = answer.len();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {length}\r\n\
             connection: close\r\n\r\n{answer}"
        )
    } else if received_now.request.starts_with("HEAD ") {
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    } else if received_now.request.starts_with("CONNECT ") {
        // Claude Code asking its proxy — this fake — to reach another host: refused.
        "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    };
    received.lock().expect("an unpoisoned lock").push(received_now);
    writer.write_all(response.as_bytes()).await?;
    writer.flush().await
}

/// The fake Messages API, started on a free port of 127.0.0.1 for as long as the test's runtime runs.
pub struct FakeAnthropic {
    /// Its base URL, `http://127.0.0.1:PORT` (Claude Code adds `/v1/messages`).
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Script>,
}

impl FakeAnthropic {
    /// A fake that answers the n-th model request with a call of the n-th of `steps`, and every later one with the
    /// message `closing`.
    pub async fn start(steps: Vec<Step>, closing: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Script {
            steps: Mutex::new(steps),
            closing: closing.to_owned(),
            n_requests: AtomicUsize::new(0),
        });
        let (served, playing) = (received.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, playing.clone(), served.clone()));
            }
        });
        Self { base_url, received, script }
    }

    /// Replaces the steps still to come (for a script that names paths only known once the folder exists).
    pub fn set_steps(&self, steps: Vec<Step>) {
        *self.script.steps.lock().expect("an unpoisoned lock") = steps;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("an unpoisoned lock").clone()
    }

    /// The bodies of the model requests (`POST /v1/messages`) so far.
    pub fn model_requests(&self) -> Vec<String> {
        self.requests().into_iter().filter(Received::is_model_request).map(|request| request.body).collect()
    }

    /// The requests that were neither model requests nor a `HEAD /` probe: what Claude Code tried to send elsewhere.
    pub fn other_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|request| !request.is_model_request() && request.request != "HEAD /")
            .map(|request| request.request)
            .collect()
    }

    /// The text of the tool results the model requests carried, each once, in order.
    pub fn tool_results(&self) -> Vec<String> {
        let mut results = Vec::new();
        for body in self.model_requests() {
            let Ok(request) = serde_json::from_str::<Value>(&body) else { continue };
            for message in request["messages"].as_array().into_iter().flatten() {
                for block in message["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        let content = match &block["content"] {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        if !results.contains(&content) {
                            results.push(content);
                        }
                    }
                }
            }
        }
        results
    }
}

/// A folder of its own for one test: a home (`HOME`) holding Claude Code's config dir (`CLAUDE_CONFIG_DIR`), a work
/// dir, and `claude`, a wrapper that runs the real CLI with them, pointed at the fake with a made-up key, the fake
/// as its proxy for any other host. Removed when dropped.
pub struct ClaudeFolder {
    /// The folder.
    pub root: PathBuf,
    /// The work dir Claude Code runs in.
    pub work: PathBuf,
    /// The wrapper to give the backend as its `command`.
    pub wrapper: PathBuf,
}

impl ClaudeFolder {
    /// A new folder in the temporary dir, for the fake at `base_url`.
    pub fn new(base_url: &str) -> Self {
        let root = std::env::temp_dir().join(format!("real-claude-{}", unique()));
        let (home, work) = (root.join("home"), root.join("work"));
        std::fs::create_dir_all(home.join(".claude")).expect("a home");
        std::fs::create_dir_all(&work).expect("a workdir");
        // Claude Code's temp files (the output of its tasks) and its sockets, in the folder rather than in /tmp; it
        // wants both private.
        let (temp, run) = (root.join("tmp"), root.join("run"));
        for private in [&temp, &run] {
            std::fs::create_dir_all(private).expect("a private dir");
            std::fs::set_permissions(private, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .expect("make it private");
        }
        // The fake is also the proxy for every other host, so that what Claude Code tries to reach elsewhere is
        // refused and recorded; the fake itself, on 127.0.0.1, is reached directly.
        let script = format!(
            "#!/bin/sh\nexport HOME='{home}' CLAUDE_CONFIG_DIR='{home}/.claude' ANTHROPIC_API_KEY=not-a-real-key \
             ANTHROPIC_BASE_URL='{base_url}' HTTPS_PROXY='{base_url}' HTTP_PROXY='{base_url}' \
             NO_PROXY=127.0.0.1,localhost CLAUDE_CODE_TMPDIR='{temp}' XDG_RUNTIME_DIR='{run}'\n\
             exec claude \"$@\"\n",
            home = home.display(),
            temp = temp.display(),
            run = run.display(),
        );
        let wrapper = root.join("claude");
        std::fs::write(&wrapper, script).expect("write the wrapper");
        std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().expect("chmod");
        Self { root, work, wrapper }
    }
}

impl Drop for ClaudeFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A name no other test of this run picks: the process id and a counter.
fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}
