//! The HTTP client of the backends that speak HTTP (`http`, `openai`): rustls with the ring provider, so the binary
//! needs no system TLS library.

use std::time::Duration;

use crate::BackendError;

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
