//! Every error code of the API in one table — its HTTP status and when it is answered — read by [`ApiError`]
//! (`super::ApiError`), the OpenAPI document (the `code` enum of the error body) and the test that checks
//! `docs/api.md` names each one.

use actix_web::http::StatusCode;

/// Declares [`ErrorCode`] from rows of `Variant = (STATUS, "kebab-code", "when it is answered")`.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($status:ident, $code:literal, $when:literal),)*) => {
        /// A stable kebab-case code of an error answer, which clients can branch on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* #[doc = $when] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as sent: `not-found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The HTTP status answered with it.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }

            /// When it is answered, in one line.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => $when,)*
                }
            }
        }
    };
}

error_codes! {
    MalformedJson = (BAD_REQUEST, "malformed-json", "the body is not valid JSON"),
    BadBody = (BAD_REQUEST, "bad-body", "the body could not be read (the connection broke, or it is not UTF-8 text)"),
    InvalidQuery = (BAD_REQUEST, "invalid-query", "a query parameter cannot be understood (`details.parameter`)"),
    InvalidHeader = (
        BAD_REQUEST,
        "invalid-header",
        "a header cannot be understood, or is there twice (`details.header`: a second `Host`, `Content-Length` with \
         `Transfer-Encoding`, a `Last-Event-ID` that is not a number)"
    ),
    Unauthorized = (
        UNAUTHORIZED,
        "unauthorized",
        "with auth on, no token or a wrong one; a callback without its Bearer token; a webhook delivery that does not \
         verify"
    ),
    Forbidden = (
        FORBIDDEN,
        "forbidden",
        "a token whose scope is too small; a backend the caller may not use; a callback token of another execution"
    ),
    CrossSiteRequest = (FORBIDDEN, "cross-site-request", "a write from another site"),
    CsrfTokenMissing = (
        FORBIDDEN,
        "csrf-token-missing",
        "an API write with the session cookie but without its `X-CSRF-Token` header (or a form post without its token)"
    ),
    HostNotAllowed = (
        FORBIDDEN,
        "host-not-allowed",
        "with auth off, a `Host` that is not localhost, an IP address or that of `DASHBOARD_PUBLIC_URL`"
    ),
    NotFound = (NOT_FOUND, "not-found", "unknown function, execution or route, or a function without a webhook (`details.entity`, `details.key`)"),
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method-not-allowed", "the route exists, the method does not"),
    DuplicateName = (CONFLICT, "duplicate-name", "a function with that name exists"),
    VersionMismatch = (CONFLICT, "version-mismatch", "`expected_version` is not the stored version"),
    ExecutionFinished = (CONFLICT, "execution-finished", "cancel of a terminal execution"),
    ExecutionNotFinished = (
        CONFLICT,
        "execution-not-finished",
        "retry or continue of a queued, running or waiting execution"
    ),
    NoSession = (CONFLICT, "no-session", "continue of an execution whose backend reported no session"),
    IdempotencyKeyReused = (
        CONFLICT,
        "idempotency-key-reused",
        "the key was used with another request (`details.execution_id`)"
    ),
    IllegalTransition = (CONFLICT, "illegal-transition", "a status report the status machine refuses"),
    StatusChanged = (CONFLICT, "status-changed", "the execution changed status meanwhile (a report raced another change)"),
    BudgetExhausted = (TOO_MANY_REQUESTS, "budget-exhausted", "a budget of the function or the token is spent for today (`details.budget`, `details.spent`, `details.limit`)"),
    ApprovalDecided = (CONFLICT, "approval-decided", "the approval was decided or expired already (`details.status`)"),
    BodyTooLarge = (PAYLOAD_TOO_LARGE, "body-too-large", "the body is over `DASHBOARD_MAX_BODY_BYTES` (default 1 MiB)"),
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "the body is not sent as JSON"),
    UnknownField = (UNPROCESSABLE_ENTITY, "unknown-field", "the body has a field the route does not know (`details.field`)"),
    MissingField = (UNPROCESSABLE_ENTITY, "missing-field", "a required field is missing (`details.field`)"),
    InvalidField = (
        UNPROCESSABLE_ENTITY,
        "invalid-field",
        "a field breaks a rule: a bad name, an unknown backend, a wrong type, a prompt template that is not allowed \
         (`details.field`)"
    ),
    CannotContinue = (
        UNPROCESSABLE_ENTITY,
        "cannot-continue",
        "continue on a backend that cannot run a follow-up turn (`details.backend`)"
    ),
    InvalidInput = (
        UNPROCESSABLE_ENTITY,
        "invalid-input",
        "the input breaks the function's schema or its prompt template, or the prompt passes a limit \
         (`details.field`, `details.path`)"
    ),
    Internal = (INTERNAL_SERVER_ERROR, "internal", "a bug; the details are in the server log, never in the answer"),
    ShuttingDown = (SERVICE_UNAVAILABLE, "shutting-down", "the server is stopping"),
    StoreUnavailable = (
        SERVICE_UNAVAILABLE,
        "store-unavailable",
        "the store does not answer, or refuses writes (a full disk, a read-only file)"
    ),
    TooManyStreams = (SERVICE_UNAVAILABLE, "too-many-streams", "`DASHBOARD_MAX_SSE_CLIENTS` live streams are open already"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.split('-').all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()))
            );
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{text}");
        }
    }

    #[test]
    fn docs_api_md_names_every_code_with_its_status() {
        let docs = include_str!("../../../../docs/api.md");
        for code in ErrorCode::ALL {
            let row = docs
                .lines()
                .find(|line| line.starts_with('|') && line.contains(&format!("`{}`", code.as_str())))
                .unwrap_or_else(|| panic!("docs/api.md has no row for `{code}`"));
            assert!(row.contains(&format!("| {} |", code.status().as_u16())), "`{code}`'s row: {row}");
        }
    }
}
