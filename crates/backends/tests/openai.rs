//! The `openai` backend against a tiny local HTTP/1.1 server that streams canned Chat Completions chunks or
//! Responses events as `text/event-stream`, and records what it was sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashboard_backend_api::{Backend, BackendError, RunContext, RunEntry, RunOutcome, log_channel};
use dashboard_backends::{OpenAiApi, OpenAiBackend, OpenAiConfig};
use dashboard_core::{ExecutionId, LogStream, Usage};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the test server answers to every request.
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    /// Body pieces, each written and flushed on its own with a pause between, so the answer really streams.
    chunks: Vec<String>,
    /// After the chunks, keep sending this piece until the client hangs up.
    endless: Option<String>,
}

impl Answer {
    fn events(chunks: Vec<String>) -> Self {
        Self { status: 200, content_type: "text/event-stream", chunks, endless: None }
    }

    fn json(status: u16, body: Value) -> Self {
        Self { status, content_type: "application/json", chunks: vec![body.to_string()], endless: None }
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
}

struct Server {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Set when a client hung up on an endless answer.
    saw_hang_up: Arc<AtomicBool>,
}

impl Server {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let address = listener.local_addr().expect("a bound address");
        let server = Self {
            base_url: format!("http://{address}/v1/"),
            received: Arc::default(),
            saw_hang_up: Arc::default(),
        };
        let (received, saw_hang_up) = (server.received.clone(), server.saw_hang_up.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (answer, received, saw_hang_up) = (answer.clone(), received.clone(), saw_hang_up.clone());
                tokio::spawn(async move {
                    if handle(socket, &answer, &received).await.is_err() && answer.endless.is_some() {
                        saw_hang_up.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        server
    }

    fn only_request(&self) -> Received {
        let received = self.received.lock().expect("an unpoisoned lock");
        assert_eq!(received.len(), 1, "{received:?}");
        received[0].clone()
    }
}

async fn handle(socket: TcpStream, answer: &Answer, received: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let (method, path) =
        (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
    let (mut content_length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().expect("an unpoisoned lock").push(Received { method, path, authorization, body });

    let head = format!(
        "HTTP/1.1 {} Canned\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        answer.status, answer.content_type
    );
    writer.write_all(head.as_bytes()).await?;
    for chunk in &answer.chunks {
        write_chunk(&mut writer, chunk).await?;
    }
    if let Some(piece) = &answer.endless {
        // Ends only when a write fails: the client hung up.
        loop {
            write_chunk(&mut writer, piece).await?;
        }
    }
    writer.write_all(b"0\r\n\r\n").await?;
    writer.flush().await
}

async fn write_chunk(writer: &mut (impl AsyncWriteExt + Unpin), chunk: &str) -> std::io::Result<()> {
    writer.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await?;
    writer.flush().await?;
    tokio::time::sleep(Duration::from_millis(15)).await;
    Ok(())
}

fn chat_delta(content: &str) -> String {
    let chunk = json!({"object": "chat.completion.chunk", "model": "tiny-1", "choices": [{"index": 0, "delta": {"content": content}}], "usage": null});
    format!("data: {chunk}\n\n")
}

/// A Chat Completions stream of these deltas, a usage chunk and `[DONE]`.
fn chat_stream(deltas: &[&str]) -> Vec<String> {
    let role =
        json!({"model": "tiny-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
    let mut chunks = vec![format!("data: {role}\n\n")];
    chunks.extend(deltas.iter().map(|delta| chat_delta(delta)));
    let finish = json!({"model": "tiny-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = json!({"model": "tiny-1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
    chunks.extend([
        format!("data: {finish}\n\n"),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ]);
    chunks
}

fn responses_event(event: Value) -> String {
    format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap_or_default())
}

/// A Responses stream of these deltas, ending with `response.completed` and its usage.
fn responses_stream(deltas: &[&str]) -> Vec<String> {
    let mut chunks =
        vec![responses_event(json!({"type": "response.created", "response": {"status": "in_progress"}}))];
    chunks.extend(deltas.iter().map(|delta| {
        responses_event(json!({"type": "response.output_text.delta", "output_index": 0, "delta": delta}))
    }));
    let usage = json!({"input_tokens": 11, "output_tokens": 4, "total_tokens": 15});
    chunks.push(responses_event(
        json!({"type": "response.completed", "response": {"model": "tiny-r", "status": "completed", "usage": usage}}),
    ));
    chunks
}

fn config(server: &Server, api: OpenAiApi) -> OpenAiConfig {
    OpenAiConfig { api, ..OpenAiConfig::new(&server.base_url, "tiny") }
}

fn backend(config: OpenAiConfig) -> OpenAiBackend {
    OpenAiBackend::new(config).expect("an HTTP client")
}

fn context(
    prompt: Option<&str>,
    function_config: Value,
) -> (RunContext, tokio::sync::mpsc::Receiver<RunEntry>) {
    let (sink, receiver) = log_channel(4096);
    let mut context = RunContext::new(ExecutionId::generate(), "ask", json!({"topic": "greetings"}), sink);
    context.prompt = prompt.map(str::to_owned);
    context.config = function_config.as_object().cloned().unwrap_or_default();
    (context, receiver)
}

/// Runs one execution to its end; answers the outcome and the agent log lines.
async fn run(
    backend: &OpenAiBackend,
    prompt: Option<&str>,
    function_config: Value,
) -> (RunOutcome, Vec<String>) {
    let (context, mut receiver) = context(prompt, function_config);
    let outcome = backend.trigger(context).await.expect("a run that is carried out");
    let mut lines = Vec::new();
    while let Some(line) = receiver.try_recv().ok().and_then(RunEntry::into_line) {
        assert_eq!(line.stream, LogStream::Agent, "{line:?}");
        lines.push(line.message);
    }
    (outcome, lines)
}

async fn failure_of(answer: Answer, api: OpenAiApi) -> String {
    let server = Server::start(answer).await;
    match run(&backend(config(&server, api)), Some("hi"), json!({})).await {
        (RunOutcome::Failed { error }, _) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_chat_stream_gives_the_text_whole_lines_and_the_usage() {
    let server = Server::start(Answer::events(chat_stream(&["Hel", "lo\nwor", "ld"]))).await;
    let (outcome, lines) =
        run(&backend(config(&server, OpenAiApi::Chat)), Some("Say hello"), json!({})).await;
    let usage = json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "model": "tiny-1"});
    assert_eq!(
        outcome,
        RunOutcome::Succeeded {
            output: json!({"text": "Hello\nworld", "model": "tiny-1"}),
            usage: Some(usage.clone())
        }
    );
    assert_eq!(lines, ["Hello", "world"]);
    // What the engine stores: the one shape, priced by the model named.
    let shaped = Usage::from_report(&usage);
    assert_eq!(
        (shaped.input_tokens, shaped.output_tokens, shaped.total_tokens, shaped.model.as_deref()),
        (Some(7), Some(3), Some(10), Some("tiny-1"))
    );
}

#[tokio::test]
async fn a_chat_request_carries_the_model_messages_key_and_params() {
    let server = Server::start(Answer::events(chat_stream(&["ok"]))).await;
    let mut config = config(&server, OpenAiApi::Chat);
    config.api_key_env = Some("PATH".into());
    config.system = Some("Be brief.".into());
    config.params = json!({"temperature": 0.2, "max_tokens": 100, "stream": false})
        .as_object()
        .cloned()
        .unwrap_or_default();
    run(&backend(config), Some("Say hello"), json!({})).await;

    let request = server.only_request();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/chat/completions"));
    let key = std::env::var("PATH").expect("PATH is set in tests");
    assert_eq!(request.authorization, Some(format!("Bearer {key}")));
    assert_eq!(
        request.body,
        json!({
            "model": "tiny",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.2,
            "max_tokens": 100,
        })
    );
}

#[tokio::test]
async fn a_functions_config_overrides_model_system_and_params() {
    let server = Server::start(Answer::events(chat_stream(&["ok"]))).await;
    let mut config = config(&server, OpenAiApi::Chat);
    config.system = Some("Be brief.".into());
    config.params = json!({"temperature": 0.2, "max_tokens": 100}).as_object().cloned().unwrap_or_default();
    let function_config =
        json!({"model": "bigger", "system": "Be thorough.", "params": {"temperature": 0.9}});
    run(&backend(config), Some("Say hello"), function_config).await;

    let body = server.only_request().body;
    assert_eq!(body["model"], "bigger");
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be thorough."}));
    assert_eq!((body["temperature"].clone(), body["max_tokens"].clone()), (json!(0.9), json!(100)));
    assert_eq!(server.only_request().authorization, None);
}

#[tokio::test]
async fn an_unknown_function_config_key_is_invalid_input() {
    let server = Server::start(Answer::events(chat_stream(&["ok"]))).await;
    let (context, _receiver) = context(Some("hi"), json!({"modle": "typo"}));
    let outcome = backend(config(&server, OpenAiApi::Chat)).trigger(context).await;
    assert!(
        matches!(&outcome, Err(BackendError::InvalidInput(message)) if message.contains("modle")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_responses_stream_gives_the_text_whole_lines_and_the_usage() {
    let server = Server::start(Answer::events(responses_stream(&["Hel", "lo\nwor", "ld"]))).await;
    let mut config = config(&server, OpenAiApi::Responses);
    config.system = Some("Be brief.".into());
    let (outcome, lines) = run(&backend(config), None, json!({})).await;
    let usage = json!({"input_tokens": 11, "output_tokens": 4, "total_tokens": 15, "model": "tiny-r"});
    assert_eq!(
        outcome,
        RunOutcome::Succeeded {
            output: json!({"text": "Hello\nworld", "model": "tiny-r"}),
            usage: Some(usage.clone())
        }
    );
    let shaped = Usage::from_report(&usage);
    assert_eq!(
        (shaped.input_tokens, shaped.output_tokens, shaped.total_tokens, shaped.model.as_deref()),
        (Some(11), Some(4), Some(15), Some("tiny-r"))
    );
    assert_eq!(lines, ["Hello", "world"]);

    let request = server.only_request();
    assert_eq!(request.path, "/v1/responses");
    // Without a prompt, the input itself is the user's message.
    let input = json!({"topic": "greetings"}).to_string();
    assert_eq!(
        request.body,
        json!({"model": "tiny", "input": input, "instructions": "Be brief.", "stream": true})
    );
}

#[tokio::test]
async fn an_http_error_fails_with_the_servers_message() {
    let refusal =
        json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}});
    let error = failure_of(Answer::json(401, refusal), OpenAiApi::Chat).await;
    assert_eq!(error, "HTTP 401 Unauthorized: Incorrect API key provided");
}

#[tokio::test]
async fn an_error_mid_stream_fails_with_its_message() {
    let mut chunks = vec![chat_delta("Hel")];
    chunks.push(format!("data: {}\n\n", json!({"error": {"message": "the model crashed", "code": 500}})));
    chunks.push(chat_delta("never seen"));
    assert_eq!(failure_of(Answer::events(chunks), OpenAiApi::Chat).await, "the model crashed");

    let failed = json!({"type": "response.failed", "response": {"error": {"code": "server_error", "message": "out of capacity"}}});
    let chunks = vec![
        responses_event(json!({"type": "response.output_text.delta", "delta": "Hel"})),
        responses_event(failed),
    ];
    assert_eq!(failure_of(Answer::events(chunks), OpenAiApi::Responses).await, "out of capacity");
}

#[tokio::test]
async fn an_answer_without_events_fails() {
    let page =
        Answer { content_type: "text/html", ..Answer::events(vec!["<html>Welcome to nginx!</html>".into()]) };
    let error = failure_of(page, OpenAiApi::Chat).await;
    assert!(error.ends_with("answered without any events: is base_url an OpenAI-compatible API?"), "{error}");
}

/// Runs against an answer that never ends; answers the failure and whether the client hung up (it must, rather than
/// read on).
async fn failure_of_endless(answer: Answer, adjust: impl FnOnce(&mut OpenAiConfig)) -> (String, bool) {
    let server = Server::start(answer).await;
    let mut config = config(&server, OpenAiApi::Chat);
    adjust(&mut config);
    let (outcome, _) = run(&backend(config), Some("hi"), json!({})).await;
    let RunOutcome::Failed { error } = outcome else { panic!("{outcome:?}") };
    (error, hung_up(&server).await)
}

/// Whether the server sees the client hang up within a few seconds.
async fn hung_up(server: &Server) -> bool {
    for _ in 0..250 {
        if server.saw_hang_up.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_for_its_message() {
    let answer = Answer {
        status: 500,
        content_type: "text/plain",
        chunks: vec!["upstream exploded ".into()],
        endless: Some("and then some more ".repeat(50)),
    };
    let (error, has_hung_up) = failure_of_endless(answer, |_| {}).await;
    assert!(error.starts_with("HTTP 500 Internal Server Error: upstream exploded and then"), "{error}");
    assert!(error.len() < 1000, "{error}");
    assert!(has_hung_up);
}

#[tokio::test]
async fn an_endless_answer_fails_at_max_response_bytes() {
    let answer = Answer { endless: Some(chat_delta(&"more ".repeat(40))), ..Answer::events(vec![]) };
    let (error, has_hung_up) = failure_of_endless(answer, |config| config.max_response_bytes = 1024).await;
    assert_eq!(error, "the model's answer is over the limit of 1 KiB (max_response_bytes)");
    assert!(has_hung_up);
}

#[tokio::test]
async fn garbage_instead_of_events_fails_at_max_event_bytes() {
    let over = "an event of the model server's answer is over the limit of 1 KiB (max_event_bytes)";
    // No line break at all.
    let answer = Answer { endless: Some("garbage ".repeat(32)), ..Answer::events(vec![]) };
    let (error, has_hung_up) = failure_of_endless(answer, |config| config.max_event_bytes = 1024).await;
    assert_eq!((error.as_str(), has_hung_up), (over, true));
    // Lines, but never the blank line that would end an event.
    let answer = Answer { endless: Some("data: garbage\n".repeat(16)), ..Answer::events(vec![]) };
    let (error, has_hung_up) = failure_of_endless(answer, |config| config.max_event_bytes = 1024).await;
    assert_eq!((error.as_str(), has_hung_up), (over, true));
}

/// A long answer in small deltas without a line break: the log gets it in lines of at most 16 KiB, the output whole.
#[tokio::test]
async fn a_long_line_in_small_deltas_is_logged_in_pieces_and_kept_whole() {
    let deltas = vec!["abcd"; 10 * 1024];
    // All the events in one write, so the test does not wait between them.
    let server = Server::start(Answer::events(vec![chat_stream(&deltas).concat()])).await;
    let (outcome, lines) = run(&backend(config(&server, OpenAiApi::Chat)), Some("hi"), json!({})).await;
    let text = deltas.concat();
    let RunOutcome::Succeeded { output, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(output["text"], text);
    assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [16 * 1024, 16 * 1024, 8 * 1024]);
    assert_eq!(lines.concat(), text);
}

#[tokio::test]
async fn an_unreachable_server_fails_naming_the_url() {
    let config = OpenAiConfig::new(format!("http://127.0.0.1:{}/v1", closed_port()), "tiny");
    let (outcome, _) = run(&backend(config), Some("hi"), json!({})).await;
    let RunOutcome::Failed { error } = outcome else { panic!("{outcome:?}") };
    assert!(error.starts_with("could not reach the model server at http://127.0.0.1:"), "{error}");
    assert!(error.contains("/v1/chat/completions"), "{error}");
}

#[tokio::test]
async fn lines_arrive_while_the_stream_runs_and_cancel_stops_it_promptly() {
    let server = Server::start(Answer {
        endless: Some(chat_delta("more\n")),
        ..Answer::events(chat_stream(&[])[..1].to_vec())
    })
    .await;
    let (context, mut receiver) = context(Some("go on forever"), json!({}));
    let cancel = context.cancel.clone();
    let backend = backend(config(&server, OpenAiApi::Chat));
    let running = tokio::spawn(async move { backend.trigger(context).await });

    let first = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await;
    let first = first.ok().flatten().and_then(RunEntry::into_line);
    assert_eq!(first.map(|line| line.message).as_deref(), Some("more"));
    let cancelled_at = Instant::now();
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(2), running).await.expect("a prompt stop");
    assert!(matches!(outcome, Ok(Err(BackendError::Cancelled))), "{outcome:?}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(1), "took {:?}", cancelled_at.elapsed());
    // The request is dropped, not left streaming: the server sees the client hang up.
    for _ in 0..100 {
        if server.saw_hang_up.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server never saw the client hang up");
}

#[tokio::test]
async fn check_finds_a_reachable_server_and_says_whether_the_model_is_listed() {
    let models = json!({"object": "list", "data": [{"id": "tiny", "object": "model"}, {"id": "other", "object": "model"}]});
    let server = Server::start(Answer::json(200, models)).await;
    let readiness = backend(config(&server, OpenAiApi::Chat)).check().await;
    assert!(readiness.ready, "{readiness:?}");
    assert_eq!(readiness.detail, "reachable, model tiny is listed");
    assert_eq!(server.only_request().path, "/v1/models");

    let unlisted = OpenAiConfig::new(&server.base_url, "huge");
    assert_eq!(backend(unlisted).check().await.detail, "reachable, but model huge is not listed");
}

#[tokio::test]
async fn check_calls_a_closed_port_not_reachable() {
    let config = OpenAiConfig::new(format!("http://127.0.0.1:{}/v1", closed_port()), "tiny");
    let readiness = backend(config).check().await;
    assert!(!readiness.ready, "{readiness:?}");
    assert!(readiness.detail.starts_with("not reachable: http://127.0.0.1:"), "{readiness:?}");
}

#[tokio::test]
async fn a_missing_key_variable_is_named_and_nothing_is_sent() {
    let server = Server::start(Answer::events(chat_stream(&["ok"]))).await;
    let mut config = config(&server, OpenAiApi::Chat);
    config.api_key_env = Some("DASHBOARD_TEST_NO_SUCH_KEY_VARIABLE".into());
    let backend = backend(config);
    let expected = "the API key variable DASHBOARD_TEST_NO_SUCH_KEY_VARIABLE (api_key_env) is not set";

    let readiness = backend.check().await;
    assert!(!readiness.ready);
    assert_eq!(readiness.detail, expected);
    let (outcome, _) = run(&backend, Some("hi"), json!({})).await;
    assert_eq!(outcome, RunOutcome::Failed { error: expected.into() });
    assert!(server.received.lock().expect("an unpoisoned lock").is_empty());
}

#[test]
fn the_toml_entry_has_defaults_and_refuses_unknown_keys() {
    let config: OpenAiConfig =
        serde_json::from_value(json!({"model": "gpt-4o-mini"})).expect("a valid config");
    assert_eq!(config, OpenAiConfig::new("https://api.openai.com/v1", "gpt-4o-mini"));
    assert_eq!((config.max_response_bytes, config.max_event_bytes), (4 * 1024 * 1024, 1024 * 1024));
    let responses: OpenAiConfig =
        serde_json::from_value(json!({"model": "m", "api": "responses"})).expect("a valid config");
    assert_eq!(responses.api, OpenAiApi::Responses);
    assert!(serde_json::from_value::<OpenAiConfig>(json!({"model": "m", "api_key": "sk-…"})).is_err());
    assert!(serde_json::from_value::<OpenAiConfig>(json!({"base_url": "http://x"})).is_err());
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.local_addr().expect("a bound address").port()
}
