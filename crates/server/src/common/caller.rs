//! Who is asking, as the authentication middleware found out: the [`Caller`] every handler may take as an extractor,
//! whether it answers JSON or pages.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use dashboard_backend_api::{Principal, Scope};

use crate::error::{ApiError, ErrorCode};

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Auth is off: anyone is everyone.
    Open,
    /// `Authorization: Bearer` with a configured token.
    Bearer,
    /// The login session cookie.
    Session,
}

/// Who is asking, as the authentication middleware found out; handlers take it as an extractor.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The name, scope and backends the engine checks.
    pub principal: Principal,
    /// How it proved it.
    pub via: Via,
    /// The CSRF token its form posts (and, with a session, its API writes) must carry; empty for a bearer token,
    /// which a browser never sends by itself.
    pub csrf: String,
}

impl Caller {
    /// Whether the pages should offer what `scope` allows (buttons a token cannot use are hidden).
    pub(crate) fn may(&self, scope: Scope) -> bool {
        self.principal.has_scope(scope)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    /// The caller the middleware recorded. A route that is not behind the middleware has none, and is refused rather
    /// than served as anyone.
    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "this route needs a token")),
        )
    }
}
