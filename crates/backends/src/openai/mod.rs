//! The `openai` backend: sends the prompt to an OpenAI-compatible model server (OpenAI, vLLM, Ollama, llama.cpp)
//! over streaming Chat Completions or the Responses API, turns the text deltas into log lines, and answers with the
//! whole text and the usage.

mod sse;
mod stream;

use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::LogStream;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::sse::ReadError;
use self::stream::{Effect, LineBuffer, interpret_chat, interpret_responses};
use crate::http_client::{client, error_body, error_message, read_limited};
use crate::limits::{default_max_event_bytes, default_max_response_bytes, over_limit};

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "openai";

/// How long the readiness check waits for `GET {base_url}/models`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn default_base_url() -> String {
    "https://api.openai.com/v1".to_owned()
}

/// Which API of the server the backend speaks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OpenAiApi {
    /// Streaming Chat Completions, `POST {base_url}/chat/completions`: what every compatible server offers.
    #[default]
    Chat,
    /// The streaming Responses API, `POST {base_url}/responses`.
    Responses,
}

/// The settings of an `openai` backend (its `[[backends]]` entry, less `name` and `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The server's API root, up to and including `/v1` (default `https://api.openai.com/v1`); a trailing slash is
    /// tolerated.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The model to ask (a function may name another in its config).
    pub model: String,
    /// The variable of the server's environment that holds the API key, read at each run and sent as
    /// `Authorization: Bearer`; never logged. Local servers usually need none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `chat` (default) or `responses`.
    #[serde(default)]
    pub api: OpenAiApi,
    /// A system prompt (Chat: a `system` message; Responses: `instructions`).
    #[serde(default)]
    pub system: Option<String>,
    /// Fields merged into every request body, e.g. `temperature`, `max_tokens` (Chat) or `max_output_tokens`
    /// (Responses). They cannot replace `model`, the messages or `stream`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The most the answer's text, the run's output, may hold (default 4 MiB); a longer answer fails the run,
    /// naming this limit. Of an error answer only the first 4 KiB are read.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// The most one server-sent event may hold, its lines up to the blank line that ends it (default 1 MiB); a
    /// longer one, or bytes without line breaks past it, fails the run, naming this limit.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
}

impl OpenAiConfig {
    /// A config that asks `model` at `base_url` over Chat Completions, with no key, system prompt or params.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            api: OpenAiApi::default(),
            system: None,
            params: Map::new(),
            max_response_bytes: default_max_response_bytes(),
            max_event_bytes: default_max_event_bytes(),
        }
    }
}

/// What a function's own config (`run.config`) may change for its runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionConfig {
    /// Replaces the backend's `model`.
    #[serde(default)]
    model: Option<String>,
    /// Replaces the backend's `system` prompt.
    #[serde(default)]
    system: Option<String>,
    /// Merged over the backend's `params`, field by field.
    #[serde(default)]
    params: Map<String, Value>,
}

impl FunctionConfig {
    fn of(run: &RunContext) -> Result<Self, BackendError> {
        serde_json::from_value(Value::Object(run.config.clone())).map_err(|error| {
            BackendError::InvalidInput(format!(
                "function config for the openai backend (keys: model, system, params): {error}"
            ))
        })
    }
}

/// Asks an OpenAI-compatible model server, one streamed request per execution.
///
/// A function's config may hold `model` (replaces the backend's), `system` (replaces the backend's system prompt)
/// and `params` (merged over the backend's, field by field). The output is `{"text": "...", "model": "..."}`: the
/// whole answer and the model the server says answered (else the one asked). Usage is passed on as the server
/// reports it (Chat: `prompt_tokens`, `completion_tokens`, …; Responses: `input_tokens`, `output_tokens`, …).
#[derive(Clone, Debug)]
pub struct OpenAiBackend {
    config: OpenAiConfig,
    client: reqwest::Client,
}

impl OpenAiBackend {
    /// A backend with these settings; the key variable is read at each run, not now.
    pub fn new(config: OpenAiConfig) -> Result<Self, BackendError> {
        Ok(Self { config, client: client(None)? })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// The API key, when the config names a variable; the error names a variable that is not set.
    fn api_key(&self) -> Result<Option<String>, String> {
        let Some(name) = &self.config.api_key_env else { return Ok(None) };
        match std::env::var(name) {
            Ok(key) => Ok(Some(key)),
            Err(_) => Err(format!("the API key variable {name} (api_key_env) is not set")),
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder, key: Option<String>) -> reqwest::RequestBuilder {
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The URL and body of the request for one run.
    fn request(&self, run: &RunContext, function: FunctionConfig) -> (String, Value) {
        let model = function.model.unwrap_or_else(|| self.config.model.clone());
        let system = function.system.or_else(|| self.config.system.clone());
        let user_message = run.prompt.clone().unwrap_or_else(|| run.input.to_string());
        let mut body = self.config.params.clone();
        body.extend(function.params);
        body.insert("model".into(), Value::String(model));
        body.insert("stream".into(), Value::Bool(true));
        match self.config.api {
            OpenAiApi::Chat => {
                let mut messages = Vec::new();
                if let Some(system) = system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": user_message}));
                body.insert("messages".into(), Value::Array(messages));
                body.insert("stream_options".into(), json!({"include_usage": true}));
                (self.url("chat/completions"), Value::Object(body))
            }
            OpenAiApi::Responses => {
                if let Some(system) = system {
                    body.insert("instructions".into(), Value::String(system));
                }
                body.insert("input".into(), Value::String(user_message));
                (self.url("responses"), Value::Object(body))
            }
        }
    }

    /// Reads the event stream to its end, logging the text line by line.
    async fn read_stream(
        &self,
        run: &RunContext,
        url: &str,
        model: String,
        response: reqwest::Response,
    ) -> Result<RunOutcome, BackendError> {
        let mut events = sse::lines(response, self.config.max_event_bytes).eventsource();
        let mut lines = LineBuffer::default();
        let mut answer = Answer { text: String::new(), model, usage: None };
        let mut n_events = 0_usize;
        let failure = 'read: loop {
            let next = tokio::select! {
                () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
                next = events.next() => next,
            };
            let event = match next {
                // A 200 without a single event is not a model server's answer (an HTML page, a proxy's notice).
                None if n_events == 0 => {
                    break Some(format!(
                        "{url} answered without any events: is base_url an OpenAI-compatible API?"
                    ));
                }
                None => break None,
                Some(Ok(event)) => {
                    n_events += 1;
                    event
                }
                Some(Err(EventStreamError::Transport(ReadError::OverLimit(message)))) => break Some(message),
                Some(Err(error)) => {
                    break Some(format!("the stream from {url} broke off: {}", stream_cause(&error)));
                }
            };
            let effects = match self.config.api {
                OpenAiApi::Chat => interpret_chat(&event.data),
                OpenAiApi::Responses => interpret_responses(&event.event, &event.data),
            };
            for effect in effects {
                match effect {
                    Effect::Text(delta) => {
                        let limit = self.config.max_response_bytes;
                        if answer.text.len() + delta.len() > limit {
                            break 'read Some(over_limit("the model's answer", limit, "max_response_bytes"));
                        }
                        answer.text.push_str(&delta);
                        for line in lines.push(&delta) {
                            run.log(LogStream::Agent, line).await;
                        }
                    }
                    Effect::Usage(usage) => answer.usage = Some(usage),
                    Effect::Model(model) => answer.model = model,
                    Effect::Failed(message) => break 'read Some(message),
                    Effect::Done => break 'read None,
                }
            }
        };
        if let Some(rest) = lines.finish() {
            run.log(LogStream::Agent, rest).await;
        }
        Ok(match failure {
            Some(error) => RunOutcome::Failed { error },
            None => {
                // The model the server says answered goes with the usage, so that the engine can price it.
                let usage = answer.usage.map(|mut usage| {
                    if let Some(fields) = usage.as_object_mut() {
                        fields.entry("model").or_insert_with(|| json!(answer.model));
                    }
                    usage
                });
                RunOutcome::Succeeded { output: json!({"text": answer.text, "model": answer.model}), usage }
            }
        })
    }
}

/// What the model has answered so far.
struct Answer {
    text: String,
    model: String,
    usage: Option<Value>,
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn check(&self) -> Readiness {
        let key = match self.api_key() {
            Ok(key) => key,
            Err(missing) => return Readiness::not_ready(missing),
        };
        let url = self.url("models");
        let model = &self.config.model;
        let request = self.authorized(self.client.get(&url).timeout(CHECK_TIMEOUT), key);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Readiness::not_ready(format!("not reachable: {url}: {}", cause(&error))),
        };
        let status = response.status();
        let body = if status.is_success() {
            read_limited(response, self.config.max_response_bytes)
                .await
                .map(|body| String::from_utf8_lossy(&body.bytes).into_owned())
                .unwrap_or_default()
        } else {
            error_body(response).await
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            // Some servers answer chat requests without listing their models.
            return Readiness::ready(format!("reachable, model {model} (the server lists no models)"));
        }
        if !status.is_success() {
            return Readiness::not_ready(format!("{url} answered {}", error_message(status, &body)));
        }
        match listed_models(&body) {
            Some(models) if models.iter().any(|listed| listed == model) => {
                Readiness::ready(format!("reachable, model {model} is listed"))
            }
            Some(_) => Readiness::ready(format!("reachable, but model {model} is not listed")),
            None => Readiness::ready(format!("reachable, model {model}")),
        }
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let function = FunctionConfig::of(&run)?;
        let key = match self.api_key() {
            Ok(key) => key,
            Err(missing) => return Ok(RunOutcome::Failed { error: missing }),
        };
        let (url, body) = self.request(&run, function);
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
        let request =
            self.authorized(self.client.post(&url).header(ACCEPT, "text/event-stream").json(&body), key);
        let sent = tokio::select! {
            () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
            sent = request.send() => sent,
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_builder() => {
                let hint = "is the API key a valid header value?";
                return Ok(RunOutcome::Failed {
                    error: format!("could not build the request to {url} ({hint})"),
                });
            }
            Err(error) => {
                let error = format!("could not reach the model server at {url}: {}", cause(&error));
                return Ok(RunOutcome::Failed { error });
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = tokio::select! {
                () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
                body = error_body(response) => body,
            };
            return Ok(RunOutcome::Failed { error: error_message(status, &body) });
        }
        self.read_stream(&run, &url, model, response).await
    }
}

/// The ids of a `GET /models` answer (`{"data": [{"id": ...}]}`), when it has that shape.
fn listed_models(body: &str) -> Option<Vec<String>> {
    let answer: Value = serde_json::from_str(body).ok()?;
    let models = answer.get("data")?.as_array()?;
    Some(models.iter().filter_map(|model| model.get("id")?.as_str().map(str::to_owned)).collect())
}

/// Why a request failed, in the words of the innermost cause ("Connection refused (os error 111)"); reqwest's own
/// message only repeats the URL.
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

fn stream_cause(error: &EventStreamError<ReadError>) -> String {
    match error {
        EventStreamError::Transport(ReadError::Transport(error)) => cause(error),
        other => other.to_string(),
    }
}
