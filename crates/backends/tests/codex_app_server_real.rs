//! The `codex` backend's `app-server` mode against the real Codex CLI (0.169, from npm), pointed at a local fake
//! Responses API that this test starts: nothing leaves 127.0.0.1. Without `codex` on `PATH` the test skips, saying
//! why — unless `CI` and `DASHBOARD_REQUIRE_CODEX=1` are set, where it fails.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dashboard_backend_api::{Backend, RunContext, RunOutcome, log_channel};
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

async fn serve(socket: TcpStream, answer: String, paths: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
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
    paths.lock().expect("an unpoisoned lock").push(path.clone());
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

#[tokio::test]
async fn a_turn_of_the_real_codex_whose_answer_is_a_message_succeeds_with_it() {
    if !codex_is_installed() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let base_url = format!("http://{}/v1", listener.local_addr().expect("an address"));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let answer = message_stream("Nothing to change: the tests already pass.");
    let served = paths.clone();
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
        workdir: Some(work.clone()),
        env_passthrough: Vec::new(),
        sandbox: Some(CodexSandbox::ReadOnly),
        approval: Some(CodexApproval::Never),
        kill_grace_secs: 2,
        ..CodexConfig::default()
    };
    let (sink, _receiver) = log_channel(65_536);
    let mut context = RunContext::new(ExecutionId::generate(), "check", json!({}), sink);
    context.prompt = Some("Do the tests pass?".into());
    let outcome = CodexBackend::new(config).trigger(context).await;
    let _ = std::fs::remove_dir_all(&root);
    let Ok(RunOutcome::Succeeded { output, usage }) = outcome else {
        panic!("{outcome:?}; requests: {:?}", paths.lock().expect("lock"))
    };
    assert_eq!(output, json!({"message": "Nothing to change: the tests already pass."}));
    assert_eq!(usage.as_ref().and_then(|usage| usage["input_tokens"].as_u64()), Some(120), "{usage:?}");
}
