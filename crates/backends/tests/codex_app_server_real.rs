//! The `codex` backend's `app-server` mode against the real Codex CLI (0.169, from npm), pointed at a local fake
//! Responses API that this test starts (and that keeps every request it is sent): nothing leaves 127.0.0.1. A
//! first turn, and a follow-up on its thread. Without `codex` on `PATH` the tests skip, saying why — unless `CI`
//! and `DASHBOARD_REQUIRE_CODEX=1` are set, where they fail.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dashboard_backend_api::{Backend, BackendError, RunContext, RunEntry, RunOutcome, log_channel};
use dashboard_backends::{CodexApproval, CodexBackend, CodexConfig, CodexMode, CodexSandbox};
use dashboard_core::ExecutionId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Whether the real CLI is here; without it, the test skips (or fails where it is required).
fn codex_is_installed() -> bool {
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

/// The model's answer to every request: one plain message.
fn message_stream(text: &str) -> String {
    let item = json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let usage = json!({"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9,
                       "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 129});
    [
        event(json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})),
        event(json!({"type": "response.output_item.added", "output_index": 0,
                     "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}})),
        event(json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": text})),
        event(json!({"type": "response.output_item.done", "output_index": 0, "item": item})),
        event(json!({"type": "response.completed",
                     "response": {"id": "resp_1", "status": "completed", "output": [item], "usage": usage}})),
    ]
    .concat()
}

/// One request the fake model server received: its method and path, and its body.
#[derive(Debug)]
struct Received {
    path: String,
    body: String,
}

async fn serve(
    socket: TcpStream,
    answer: String,
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

/// The real Codex, pointed at a fake model server that answers every request with one message.
struct Setup {
    root: std::path::PathBuf,
    config: CodexConfig,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn set_up(answer: &str) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let base_url = format!("http://{}/v1", listener.local_addr().expect("an address"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let answer = message_stream(answer);
    let served = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, answer.clone(), served.clone()));
        }
    });

    let root = std::env::temp_dir().join(format!("real-codex-{}", ExecutionId::generate()));
    let (home, work) = (root.join("home"), root.join("work"));
    std::fs::create_dir_all(&home).expect("a home");
    std::fs::create_dir_all(&work).expect("a workdir");
    codex_home(&home, &base_url);
    // The backend clears the environment; a wrapper gives the real codex its home and the fake's key.
    let wrapper = root.join("codex");
    let script = format!(
        "#!/bin/sh\nexport CODEX_HOME='{}' HOME='{}' FAKE_MODEL_KEY=not-a-real-key\nexec codex \"$@\"\n",
        home.display(),
        home.display()
    );
    std::fs::write(&wrapper, script).expect("write the wrapper");
    std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().expect("chmod");
    let config = CodexConfig {
        mode: CodexMode::AppServer,
        command: wrapper.display().to_string(),
        workdir: Some(work),
        env_passthrough: Vec::new(),
        sandbox: Some(CodexSandbox::ReadOnly),
        approval: Some(CodexApproval::Never),
        kill_grace_secs: 2,
        ..CodexConfig::default()
    };
    Setup { root, config, received }
}

impl Setup {
    /// Runs one turn of `prompt`, as a follow-up of the thread `resume` when given: its outcome and the sessions
    /// (threads) it reported.
    async fn turn(
        &self,
        prompt: &str,
        resume: Option<&str>,
    ) -> (Result<RunOutcome, BackendError>, Vec<String>) {
        let (sink, mut receiver) = log_channel(65_536);
        let mut context = RunContext::new(ExecutionId::generate(), "check", json!({}), sink);
        context.prompt = Some(prompt.into());
        context.resume = resume.map(str::to_owned);
        let outcome = CodexBackend::new(self.config.clone()).trigger(context).await;
        let mut sessions = Vec::new();
        while let Ok(entry) = receiver.try_recv() {
            if let RunEntry::Session(session) = entry {
                sessions.push(session);
            }
        }
        (outcome, sessions)
    }

    /// The bodies of the model requests (`POST …/responses`) so far.
    fn model_requests(&self) -> Vec<String> {
        let received = self.received.lock().expect("an unpoisoned lock");
        received
            .iter()
            .filter(|request| request.path.starts_with("POST") && request.path.ends_with("/responses"))
            .map(|request| request.body.clone())
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn input_tokens(usage: Option<&Value>) -> Option<u64> {
    usage.and_then(|usage| usage["input_tokens"].as_u64())
}

#[tokio::test]
async fn a_turn_of_the_real_codex_whose_answer_is_a_message_succeeds_with_it() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up("Nothing to change: the tests already pass.").await;
    let (outcome, _) = setup.turn("Do the tests pass?", None).await;
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else {
        panic!("{outcome:?}; requests: {:?}", setup.received.lock().expect("lock"))
    };
    assert_eq!(output, json!({"message": "Nothing to change: the tests already pass."}));
    assert_eq!(input_tokens(usage.as_ref()), Some(120), "{usage:?}");
}

#[tokio::test]
async fn a_follow_up_continues_the_thread_with_its_messages_and_counts_only_its_turn() {
    if !codex_is_installed() {
        return;
    }
    let setup = set_up("Nothing to change: the tests already pass.").await;
    let (first, sessions) = setup.turn("Do the tests pass?", None).await;
    assert!(matches!(first, Ok(RunOutcome::Succeeded { .. })), "{first:?}");
    let [thread] = sessions.as_slice() else { panic!("one thread: {sessions:?}") };
    let n_first_requests = setup.model_requests().len();

    let (next, sessions) = setup.turn("And the lints, are they clean?", Some(thread)).await;
    let Ok(RunOutcome::Succeeded { usage, .. }) = next else {
        panic!("{next:?}; requests: {:?}", setup.received.lock().expect("lock"))
    };
    assert_eq!(sessions, [thread.as_str()], "the follow-up runs on the same thread");
    // The model sees the first turn's messages in the follow-up's request.
    let requests = setup.model_requests();
    let follow_up = requests.get(n_first_requests).expect("the follow-up asked the model");
    for said in ["Do the tests pass?", "Nothing to change: the tests already pass.", "And the lints"] {
        assert!(follow_up.contains(said), "{said:?} not in the follow-up's request: {follow_up}");
    }
    // The thread's total is now 240 input tokens; the follow-up spent 120 of them.
    assert_eq!(input_tokens(usage.as_ref()), Some(120), "{usage:?}");
}
