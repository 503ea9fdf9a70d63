//! `dashboard-client`: an async client of the Agent Dashboard's JSON API (docs/api.md), for Rust services that start
//! and watch agent runs, and for the `agent-dashboard` command-line client built on it.
//!
//! It reads and returns the API's own types (`dashboard-core`), so what the server sends is what a caller gets; every
//! error answer becomes a [`ClientError::Api`] carrying the API's `{code, message, details}`. [`Client::follow`]
//! follows an execution's log stream and resumes it after a dropped connection (a server restart) with
//! `Last-Event-ID`, so each line comes once.
//!
//! It never panics on what a server sends, and holds no state besides the HTTP connection pool: clone it freely.

mod error;
mod follow;
pub mod input;

use std::time::Duration;

use dashboard_core::{Approval, Decision, Execution, ExecutionStatus, Function, LogLine};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use error::{ApiError, ClientError};
pub use follow::{FollowEvent, LogFollow, ReconnectPolicy};

/// The dashboard's address when none is given (`DASHBOARD_URL`'s default in the CLI).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";
/// How long connecting to the dashboard may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request (not a stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most bytes of a non-API error body kept in [`ClientError::Status`].
const ERROR_BODY_CHARS: usize = 500;

/// A client of one dashboard, with an optional bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// What to trigger (`POST /api/executions`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TriggerRequest {
    /// The function, by id or name.
    pub function: String,
    /// The input, checked by the server against the function's schema.
    pub input: Value,
    /// Another backend than the function's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A key that makes repeating the trigger safe: the same key answers the first execution again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl TriggerRequest {
    /// A trigger of `function` with `input`.
    pub fn new(function: impl Into<String>, input: Value) -> Self {
        Self { function: function.into(), input, ..Self::default() }
    }
}

/// Which executions to list (`GET /api/executions`); `None` leaves a filter out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only executions with this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions of this function (by name).
    pub function: Option<String>,
    /// At most this many (the server allows 1–500, default 50).
    pub limit: Option<u32>,
    /// The page after this cursor (`next_cursor` of the previous page).
    pub before: Option<String>,
}

/// A page of executions, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionPage {
    /// The executions.
    pub items: Vec<Execution>,
    /// The cursor of the next page, `None` on the last.
    pub next_cursor: Option<String>,
}

/// A page of an execution's log (`GET /api/executions/{id}/logs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// The lines, oldest first.
    pub items: Vec<LogLine>,
    /// The seq to read after for the next page.
    pub next_after: u64,
    /// Whether the execution has ended and every line was read.
    pub finished: bool,
}

/// A list answer: `{"items": [...]}`.
#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

impl Client {
    /// A client of the dashboard at `base_url` (`http://host:port`, optionally under a path).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let invalid = |message: String| ClientError::InvalidUrl { url: base_url.to_owned(), message };
        let mut base = Url::parse(base_url).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it may not have a query or a fragment".to_owned()));
        }
        // Paths are joined under the base's path, which must end with a slash to be kept.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // Installing twice is refused harmlessly: whoever comes first installs it for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("dashboard-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self { http, base, token: None })
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The dashboard's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Every function, sorted by name.
    pub async fn functions(&self) -> Result<Vec<Function>, ClientError> {
        let list: Items<Function> = self.send(Method::GET, "api/functions", &[], None).await?;
        Ok(list.items)
    }

    /// Triggers an execution: the new one (`queued`), or the first one for a repeated idempotency key.
    pub async fn trigger(&self, request: &TriggerRequest) -> Result<Execution, ClientError> {
        let body = serde_json::to_value(request).map_err(|source| ClientError::Decode {
            method: "POST",
            path: "/api/executions".to_owned(),
            source,
        })?;
        self.send(Method::POST, "api/executions", &[], Some(body)).await
    }

    /// A page of executions, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<ExecutionPage, ClientError> {
        let limit = filter.limit.map(|limit| limit.to_string());
        let query: Vec<(&str, &str)> = [
            ("status", filter.status.map(ExecutionStatus::as_str)),
            ("function", filter.function.as_deref()),
            ("limit", limit.as_deref()),
            ("before", filter.before.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        self.send(Method::GET, "api/executions", &query, None).await
    }

    /// One execution.
    pub async fn get(&self, execution_id: &str) -> Result<Execution, ClientError> {
        self.send(Method::GET, &execution_path(execution_id, ""), &[], None).await
    }

    /// A page of an execution's log: the lines after seq `after` (0 for the first).
    pub async fn logs(&self, execution_id: &str, after: u64) -> Result<LogPage, ClientError> {
        let after = after.to_string();
        let query = [("after", after.as_str())];
        self.send(Method::GET, &execution_path(execution_id, "/logs"), &query, None).await
    }

    /// Follows an execution's log stream from its first line until the execution ends (see [`LogFollow`]).
    pub fn follow(&self, execution_id: &str) -> LogFollow {
        LogFollow::new(self.clone(), execution_id, ReconnectPolicy::default())
    }

    /// Cancels an execution; the API answers it as it stands after the request (it may still be stopping).
    pub async fn cancel(&self, execution_id: &str) -> Result<Execution, ClientError> {
        self.send(Method::POST, &execution_path(execution_id, "/cancel"), &[], None).await
    }

    /// Retries a finished execution: the new execution.
    pub async fn retry(&self, execution_id: &str) -> Result<Execution, ClientError> {
        self.send(Method::POST, &execution_path(execution_id, "/retry"), &[], None).await
    }

    /// Continues a finished execution's agent session with `prompt`: the new execution, the session's next turn.
    pub async fn continue_session(&self, execution_id: &str, prompt: &str) -> Result<Execution, ClientError> {
        let body = json!({"prompt": prompt});
        self.send(Method::POST, &execution_path(execution_id, "/continue"), &[], Some(body)).await
    }

    /// The pending approvals, oldest first.
    pub async fn approvals(&self) -> Result<Vec<Approval>, ClientError> {
        let list: Items<Approval> = self.send(Method::GET, "api/approvals", &[], None).await?;
        Ok(list.items)
    }

    /// Decides a pending approval, with an optional note for the agent: the approval as decided.
    pub async fn decide(
        &self,
        approval_id: &str,
        decision: Decision,
        note: Option<&str>,
    ) -> Result<Approval, ClientError> {
        let mut body = json!({"decision": decision.as_str()});
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        let path = format!("api/approvals/{}", encode_segment(approval_id));
        self.send(Method::POST, &path, &[], Some(body)).await
    }

    /// The URL of `path` (relative, without a leading slash) under the base, with `query`.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self.base.join(path).map_err(|error| ClientError::InvalidUrl {
            url: format!("{}{path}", self.base),
            message: error.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A request with the token, if any.
    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and reads its JSON answer, or the API's error.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let method_name = method_name(&method);
        let url = self.url(path, query)?;
        let mut request = self.request(method, url.clone()).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transport = |source| ClientError::Transport { method: method_name, url: url.to_string(), source };
        let response = request.send().await.map_err(transport)?;
        let response = check_status(method_name, response).await?;
        let bytes = response.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            method: method_name,
            path: format!("/{path}"),
            source,
        })
    }
}

/// The response, when its status is a success; else the API's error in it.
pub(crate) async fn check_status(
    method: &'static str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let path = response.url().path().to_owned();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<error::ErrorBody>(&body) {
        Ok(parsed) => Err(ClientError::Api { method, path, status: status.as_u16(), error: parsed.error }),
        Err(_) => Err(ClientError::Status {
            method,
            path,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(ERROR_BODY_CHARS).collect(),
        }),
    }
}

/// `api/executions/{id}{rest}`, the id encoded as one path segment.
pub(crate) fn execution_path(execution_id: &str, rest: &str) -> String {
    format!("api/executions/{}{rest}", encode_segment(execution_id))
}

/// A path segment with every byte but unreserved ones percent-encoded: an id from a command line cannot reach
/// another route.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The method's name for error messages.
pub(crate) fn method_name(method: &Method) -> &'static str {
    if *method == Method::POST { "POST" } else { "GET" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_keeps_its_path_and_refuses_other_schemes() {
        let client = Client::new("http://127.0.0.1:8000").expect("a client");
        assert_eq!(
            client.url("api/functions", &[]).expect("a url").as_str(),
            "http://127.0.0.1:8000/api/functions"
        );
        let under = Client::new("https://example.com/dash").expect("a client");
        let url = under.url(&execution_path("a b/c", "/logs"), &[("after", "3")]).expect("a url");
        assert_eq!(url.as_str(), "https://example.com/dash/api/executions/a%20b%2Fc/logs?after=3");
        for wrong in ["ftp://example.com", "localhost:8000", "http://x/?a=1", ""] {
            assert!(matches!(Client::new(wrong), Err(ClientError::InvalidUrl { .. })), "{wrong}");
        }
    }

    #[test]
    fn trigger_request_leaves_out_what_is_not_given() {
        let request = TriggerRequest::new("hello-agent", json!({"steps": 2}));
        assert_eq!(
            serde_json::to_value(&request).expect("json"),
            json!({"function": "hello-agent", "input": {"steps": 2}})
        );
    }
}
