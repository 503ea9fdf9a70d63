//! The `http` backend (also `agentkit`): hands a run to an HTTP agent server — AgentKit or any other — with a request
//! signed per Standard Webhooks. A 200 JSON answer completes the run; a 202 detaches it until the agent reports
//! through the callback endpoints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::standard_webhooks::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http_client::{client, error_body, error_message, read_limited};
use crate::limits::{default_max_response_bytes, over_limit};

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "http";

/// How long a readiness probe may take.
const CHECK_LIMIT: Duration = Duration::from_secs(2);

fn default_retries() -> u32 {
    3
}

fn default_retry_backoff_ms() -> u64 {
    500
}

fn default_request_timeout_secs() -> u64 {
    30
}

/// The settings of an `http` backend (its `[[backends]]` entry, less `name` and `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where runs are POSTed (`http://127.0.0.1:3010/run`).
    pub url: String,
    /// The environment variable holding the signing secret (`whsec_` followed by base64); without it, requests go
    /// unsigned.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// How many times a refused connection, a timeout or a 5xx answer is retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first pause between attempts; it doubles after each.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// How long one request may take.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// The most a 2xx answer may hold (default 4 MiB); a longer one fails the run, naming this limit. The answer is
    /// the run's output, so this bounds the output too. Of an error answer only the first 4 KiB are read.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

impl HttpConfig {
    /// A config that posts to `url`, unsigned, with the default retries.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret_env: None,
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
            request_timeout_secs: default_request_timeout_secs(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// Posts runs to an HTTP agent server.
#[derive(Clone, Debug)]
pub struct HttpBackend {
    config: HttpConfig,
    client: reqwest::Client,
    signing_key: Option<Secret>,
}

impl HttpBackend {
    /// A backend with these settings. The secret is read now, so a missing or malformed one stops start-up instead
    /// of failing every run.
    pub fn new(config: HttpConfig) -> Result<Self, BackendError> {
        let signing_key =
            match &config.secret_env {
                Some(name) => {
                    let secret = std::env::var(name).map_err(|_| {
                        BackendError::Unavailable(format!(
                            "secret_env: the environment variable {name} is not set"
                        ))
                    })?;
                    Some(Secret::parse(&secret).map_err(|reason| {
                        BackendError::Unavailable(format!("secret_env: {name} {reason}"))
                    })?)
                }
                None => None,
            };
        let client = client(Some(Duration::from_secs(config.request_timeout_secs)))?;
        Ok(Self { config, client, signing_key })
    }

    async fn post_once(&self, body: &[u8], message_id: &str) -> Result<Attempt, reqwest::Error> {
        let mut request =
            self.client.post(&self.config.url).header("Content-Type", "application/json").body(body.to_vec());
        if let Some(key) = &self.signing_key {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|since| i64::try_from(since.as_secs()).ok())
                .unwrap_or(0);
            request = request
                .header("webhook-id", message_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", key.sign(message_id, timestamp, body));
        }
        let response = request.send().await?;
        let status = response.status();
        Ok(match status.as_u16() {
            202 => Attempt::Done(RunOutcome::Detached),
            200..=299 => {
                let limit = self.config.max_response_bytes;
                let body = read_limited(response, limit).await?;
                if body.is_over {
                    let error = over_limit("the agent server's answer", limit, "max_response_bytes");
                    return Ok(Attempt::Done(RunOutcome::Failed { error }));
                }
                Attempt::Done(completed(&String::from_utf8_lossy(&body.bytes)))
            }
            500..=599 => Attempt::Retry(error_message(status, &error_body(response).await)),
            _ => Attempt::Done(RunOutcome::Failed {
                error: format!(
                    "the agent server refused the run: {}",
                    error_message(status, &error_body(response).await)
                ),
            }),
        })
    }
}

/// What one POST led to.
enum Attempt {
    Done(RunOutcome),
    Retry(String),
}

/// The outcome of a 200 answer: an object with `output` (and maybe `usage`) gives those; any other JSON is the output.
fn completed(text: &str) -> RunOutcome {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut answer)) if answer.contains_key("output") => RunOutcome::Succeeded {
            output: answer.remove("output").unwrap_or(Value::Null),
            usage: answer.remove("usage"),
        },
        Ok(answer) => RunOutcome::Succeeded { output: answer, usage: None },
        Err(_) if text.trim().is_empty() => RunOutcome::Succeeded { output: Value::Null, usage: None },
        Err(error) => RunOutcome::Failed {
            error: format!("the agent server accepted the run but its answer is not JSON: {error}"),
        },
    }
}

#[async_trait]
impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn check(&self) -> Readiness {
        match tokio::time::timeout(CHECK_LIMIT, self.client.head(&self.config.url).send()).await {
            Ok(Ok(response)) => {
                Readiness::ready(format!("{} answers (HTTP {})", self.config.url, response.status().as_u16()))
            }
            Ok(Err(error)) if error.is_connect() => {
                Readiness::not_ready(format!("{} refuses connections", self.config.url))
            }
            Ok(Err(error)) => Readiness::not_ready(format!("{} is not reachable: {error}", self.config.url)),
            Err(_) => Readiness::not_ready(format!("{} did not answer within 2 s", self.config.url)),
        }
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let body = json!({
            "execution_id": run.execution_id,
            "function": run.function,
            "input": run.input,
            "prompt": run.prompt,
            "callback_url": run.callback.as_ref().map(|callback| &callback.url),
            "callback_token": run.callback.as_ref().map(|callback| &callback.token),
        });
        let body = serde_json::to_vec(&body).map_err(|error| BackendError::Other {
            message: format!("could not encode the request: {error}"),
            source: Some(Box::new(error)),
        })?;
        // One id for every attempt of this delivery, so the agent server can drop duplicates.
        let message_id = format!("msg_{}", run.execution_id);
        let mut backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let mut last_problem = String::new();
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                run.sleep(backoff).await?;
                backoff *= 2;
            }
            let result = tokio::select! {
                () = run.cancel.cancelled() => return Err(BackendError::Cancelled),
                result = self.post_once(&body, &message_id) => result,
            };
            match result {
                Ok(Attempt::Done(outcome)) => return Ok(outcome),
                Ok(Attempt::Retry(problem)) => last_problem = problem,
                Err(error) if error.is_connect() => last_problem = "connection refused".to_owned(),
                Err(error) if error.is_timeout() => last_problem = "no answer in time".to_owned(),
                Err(error) => last_problem = error.to_string(),
            }
        }
        Ok(RunOutcome::Failed {
            error: format!(
                "the agent server at {} did not take the run after {} attempts: {last_problem}",
                self.config.url,
                self.config.retries + 1
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_answer_gives_the_output() {
        assert_eq!(
            completed(r#"{"output": {"a": 1}, "usage": {"t": 2}}"#),
            RunOutcome::Succeeded { output: json!({"a": 1}), usage: Some(json!({"t": 2})) }
        );
        assert_eq!(
            completed(r#"{"summary": "x"}"#),
            RunOutcome::Succeeded { output: json!({"summary": "x"}), usage: None }
        );
        assert!(matches!(completed("<html>"), RunOutcome::Failed { .. }));
    }
}
