//! The access log: one line per answered request — method, path, query, version, status and time — in which no
//! query value, header or cookie ever appears, since that is where clients put tokens (`?token=…`, `Authorization`,
//! the session cookie).

use actix_web::http::Version;
use actix_web::middleware::Logger;

/// The log target of the access log (`RUST_LOG=agent_dashboard::http=info` shows it).
pub(crate) const TARGET: &str = "agent_dashboard::http";

/// What replaces every query value.
const REDACTED: &str = "REDACTED";

/// The access-log middleware: actix-web's `%r` (the request line as sent) with the query redacted.
pub(crate) fn logger() -> Logger {
    Logger::new("%{request_line}xi %s %Dms")
        .custom_request_replace("request_line", |request| {
            let uri = request.uri();
            request_line(request.method().as_str(), uri.path(), uri.query(), request.version())
        })
        .log_target(TARGET)
}

/// `GET /path?name=REDACTED HTTP/1.1`: the request line with every query value replaced.
pub(crate) fn request_line(method: &str, path: &str, query: Option<&str>, version: Version) -> String {
    match query {
        Some(query) => format!("{method} {path}?{} {version:?}", redact_query(query)),
        None => format!("{method} {path} {version:?}"),
    }
}

/// Keeps each parameter's name (the API's vocabulary) and replaces its value; a parameter without `=` may be a bare
/// secret, so it is replaced whole.
fn redact_query(query: &str) -> String {
    let parameters = query.split('&').map(|parameter| match parameter.split_once('=') {
        Some((name, _)) => format!("{name}={REDACTED}"),
        None if parameter.is_empty() => String::new(),
        None => REDACTED.to_owned(),
    });
    parameters.collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: Option<&str>, expected: &str) {
        assert_eq!(request_line("GET", "/metrics", query, Version::HTTP_11), expected);
    }

    #[test]
    fn query_values_are_redacted_and_names_kept() {
        check(None, "GET /metrics HTTP/1.1");
        check(Some(""), "GET /metrics? HTTP/1.1");
        check(Some("token=secret-admin-token"), "GET /metrics?token=REDACTED HTTP/1.1");
        check(Some("after=5&limit=10"), "GET /metrics?after=REDACTED&limit=REDACTED HTTP/1.1");
        check(Some("a-bare-secret-token"), "GET /metrics?REDACTED HTTP/1.1");
        check(Some("live=poll&&token=x=y"), "GET /metrics?live=REDACTED&&token=REDACTED HTTP/1.1");
    }
}
