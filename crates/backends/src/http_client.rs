//! The HTTP client of the backends that speak HTTP (`http`, `openai`): rustls with the ring provider, so the binary
//! needs no system TLS library.

use std::time::Duration;

use dashboard_backend_api::BackendError;

use crate::limits::ERROR_BODY_BYTES;

/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one backend. `request_timeout` bounds a whole request (`None` for streams that run as long as the
/// run does: cancellation and the engine's timeout stop those).
pub(crate) fn client(request_timeout: Option<Duration>) -> Result<reqwest::Client, BackendError> {
    // Installing twice is refused harmlessly: whichever backend comes first installs it for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("agent-dashboard/", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = request_timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().map_err(|error| BackendError::Other {
        message: format!("could not build an HTTP client: {error}"),
        source: Some(Box::new(error)),
    })
}

/// A body read up to a limit.
pub(crate) struct LimitedBody {
    /// The bytes read: all of the body, or the first `limit` of it.
    pub(crate) bytes: Vec<u8>,
    /// Whether the body holds more than the limit; the rest was not read.
    pub(crate) is_over: bool,
}

/// Reads a body, but no more than `limit` bytes of it: a longer body is cut there and the rest is never read (the
/// connection is dropped with the response).
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<LimitedBody, reqwest::Error> {
    let announced = response.content_length().and_then(|length| usize::try_from(length).ok());
    let mut bytes = Vec::with_capacity(announced.unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(LimitedBody { bytes, is_over: true });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(LimitedBody { bytes, is_over: false })
}

/// The start of an error answer's body, as text: only the first few KiB are read, enough for a message; a body that
/// cannot be read gives none (the status still speaks).
pub(crate) async fn error_body(response: reqwest::Response) -> String {
    let bytes = read_limited(response, ERROR_BODY_BYTES).await.map(|body| body.bytes).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The text of an error answer: the `error.message` of an OpenAI-style JSON body, else the body itself (cut short).
pub(crate) fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|value| {
        let error = value.get("error")?;
        error
            .get("message")
            .and_then(|message| message.as_str())
            .or_else(|| error.as_str())
            .map(str::to_owned)
    });
    let detail = from_json.unwrap_or_else(|| body.chars().take(500).collect::<String>().trim().to_owned());
    if detail.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {detail}") }
}
