//! The checks of every request: [`authenticate`] (around everything) finds out who is asking and refuses cross-site
//! writes; [`require`] (around each route the table gives a scope) answers 401 to no one, 403 to a scope too small,
//! and 403 to a write without the caller's CSRF token.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};
use dashboard_backend_api::{Principal, Scope};
use dashboard_core::ExecutionId;

use super::same_secret;
use crate::common::route_info::{RouteInfo, is_api_path};
use crate::common::{Caller, Via};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The cookie of a login session.
pub(crate) const SESSION_COOKIE: &str = "agent_dashboard_session";
/// With auth off, the cookie whose HMAC the pages' forms carry as their CSRF token.
pub(crate) const CSRF_COOKIE: &str = "agent_dashboard_csrf";
/// The form field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf_token";
/// The header that carries it on API writes made with a session cookie.
pub(crate) const CSRF_HEADER: &str = "X-CSRF-Token";

/// Whether a method changes something (everything but GET, HEAD and OPTIONS).
fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Finds out who is asking and records it as the request's [`Caller`]: with auth off, anyone (with a CSRF cookie
/// for the forms); with auth on, the bearer token's or the session's principal, or no one. A write that a browser
/// says comes from another site is refused here, before any route.
pub(crate) async fn authenticate(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    // The health check answers any name: load balancers and probes ask by theirs, and it tells nothing.
    if !state.auth.is_on() && request.path() != "/healthz" && !is_local_host(request.request(), &state) {
        let error = ApiError::new(
            ErrorCode::HostNotAllowed,
            "without authentication this dashboard answers only to localhost, an IP address or the host of \
             DASHBOARD_PUBLIC_URL (a defence against DNS rebinding); set DASHBOARD_PUBLIC_URL to use a name, or \
             turn authentication on",
        );
        return Ok(refuse(request, &state, error, false));
    }
    if is_write(request.method()) && is_cross_site(request.request()) {
        let error = ApiError::new(
            ErrorCode::CrossSiteRequest,
            "a write from another site is refused (its Origin or Sec-Fetch-Site header says so)",
        );
        return Ok(refuse(request, &state, error, false));
    }
    let mut new_csrf_cookie = None;
    let caller = if !state.auth.is_on() {
        // Only the pages' forms use the double-submit token; an API call with auth off needs none.
        let csrf = if is_api_path(request.path()) {
            String::new()
        } else {
            let nonce = request.cookie(CSRF_COOKIE).map(|cookie| cookie.value().to_owned());
            let nonce = match nonce.filter(|value| value.len() == 64) {
                Some(nonce) => nonce,
                None => {
                    let nonce = super::random_token();
                    new_csrf_cookie = Some(cookie(request.request(), &state, CSRF_COOKIE, nonce.clone()));
                    nonce
                }
            };
            state.auth.csrf_for(&nonce)
        };
        Some(Caller { principal: Principal::anonymous(), via: Via::Open, csrf })
    } else if let Some(principal) = state.auth.bearer(request.request()) {
        Some(Caller { principal, via: Via::Bearer, csrf: String::new() })
    } else {
        match request.cookie(SESSION_COOKIE) {
            None => None,
            Some(cookie) => match state.auth.session(cookie.value()).await {
                Ok(session) => session.map(|session| Caller {
                    principal: session.principal,
                    via: Via::Session,
                    csrf: session.csrf,
                }),
                Err(error) => {
                    // The sessions' store does not answer: who this is cannot be known. A route that needs a caller
                    // answers the store's error (503), not 401 — the browser is not signed out; public ones go on.
                    request.extensions_mut().insert(SessionUnknown(ApiError::from(error)));
                    None
                }
            },
        }
    };
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    if let Some(cookie) = new_csrf_cookie {
        response.response_mut().add_cookie(&cookie)?;
    }
    Ok(response)
}

/// Recorded instead of a [`Caller`] when the request's session could not be read (the store is down): the error that
/// a route needing a caller answers with.
#[derive(Clone, Debug)]
struct SessionUnknown(ApiError);

/// What a route needs, fixed when the router is built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Check {
    scope: Scope,
    api: bool,
}

impl Check {
    /// The check of `route`, which needs `scope`.
    pub(crate) fn new(scope: Scope, route: &RouteInfo) -> Self {
        Self { scope, api: route.is_api() }
    }
}

/// Lets the request through only when its caller has `check.scope`, and, for a write from a browser, carries the
/// caller's CSRF token: the form field on a page's form post, the `X-CSRF-Token` header on an API write made with
/// the session cookie. A bearer token needs no CSRF token: a browser never sends one by itself.
pub(crate) async fn require(
    check: Check,
    mut request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "this route needs a token").into());
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        let unknown = request.extensions().get::<SessionUnknown>().map(|unknown| unknown.0.clone());
        if let Some(error) = unknown {
            return Ok(refuse(request, &state, error, check.api));
        }
        let message = if super::bearer_token(request.request()).is_some() {
            "the token is not valid"
        } else if check.api {
            "this route needs a token: send `Authorization: Bearer <token>`"
        } else {
            "sign in to see this page"
        };
        let error = ApiError::new(ErrorCode::Unauthorized, message);
        return Ok(refuse(request, &state, error, check.api));
    };
    if !caller.principal.has_scope(check.scope) {
        let error = ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the token {} has the {} scope; this needs {}",
                caller.principal.label(),
                caller.principal.scope,
                check.scope
            ),
        );
        return Ok(refuse(request, &state, error, check.api));
    }
    if is_write(request.method()) && caller.via != Via::Bearer {
        let presented = if check.api {
            (caller.via == Via::Session).then(|| {
                request
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            })
        } else {
            let body = request.extract::<web::Bytes>().await?;
            let field = form_field(&body, CSRF_FIELD).unwrap_or_default();
            request.set_payload(body.into());
            Some(field)
        };
        if let Some(presented) = presented
            && !same_secret(&presented, &caller.csrf)
        {
            let error = ApiError::new(
                ErrorCode::CsrfTokenMissing,
                "this form was not sent from this dashboard's own page (its CSRF token is missing or stale); \
                 reload the page and send it again",
            );
            return Ok(refuse(request, &state, error, check.api));
        }
    }
    next.call(request).await
}

/// Lets a callback through only with the execution's own callback token, checked before the body is read: 401
/// without a token, 403 with another one (a user's token is never a callback token), 404 for a path that names no
/// execution.
pub(crate) async fn callback(
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "this route needs a token").into());
    };
    let text = request.match_info().get("id").unwrap_or_default().to_owned();
    let checked = crate::common::parse_execution_id(&text)
        .and_then(|id| callback_token_check(&state, request.request(), id));
    match checked {
        Ok(()) => next.call(request).await,
        Err(error) => Ok(refuse(request, &state, error, true)),
    }
}

/// Checks the bearer token against execution `id`: 401 without one, 403 when it belongs to no such execution.
fn callback_token_check(state: &AppState, request: &HttpRequest, id: ExecutionId) -> Result<(), ApiError> {
    let Some(token) = super::bearer_token(request) else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a callback needs the execution's callback token as `Authorization: Bearer <token>`",
        ));
    };
    if state.dashboard.verify_callback_token(id, token) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "this token does not authorize reports on this execution"))
    }
}

/// One field of a URL-encoded form body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

/// The refusal as the route's kind of answer: the JSON error under `/api`; for pages, the login form for a 401 and
/// the error page otherwise.
fn refuse(request: ServiceRequest, state: &AppState, error: ApiError, api: bool) -> ServiceResponse<BoxBody> {
    let (request, _) = request.into_parts();
    let response = if api || is_api_path(request.path()) {
        error.error_response()
    } else if error.status() == StatusCode::UNAUTHORIZED {
        crate::common::html::login_page(state, &request, error.status(), None)
    } else {
        crate::common::html::error_page(state, &error)
    };
    ServiceResponse::new(request, response)
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site` other than `same-origin` or
/// `none`, or an `Origin` whose host is not the one asked for. Clients that send neither (curl, servers) pass.
fn is_cross_site(request: &HttpRequest) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = header("Sec-Fetch-Site")
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match header("Origin") {
        None => false,
        Some(origin) => {
            let host = origin.split_once("://").map(|(_, host)| host).unwrap_or("");
            !host.eq_ignore_ascii_case(request.connection_info().host())
        }
    }
}

/// Whether the `Host` header names this machine: `localhost` (or a name under it), an IP address, or the host of
/// `DASHBOARD_PUBLIC_URL`. Without authentication, a page of another site that made its own name resolve to
/// 127.0.0.1 (DNS rebinding) would otherwise count as same-origin and could read and post the forms. The header is
/// read as sent, never from `X-Forwarded-Host`, which such a page could set itself.
fn is_local_host(request: &HttpRequest, state: &AppState) -> bool {
    let header = request.headers().get(actix_web::http::header::HOST).and_then(|value| value.to_str().ok());
    let Some(host) = header.map(host_name) else {
        return true; // HTTP/1.0 without Host: not a browser.
    };
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
        || state.auth.public_host().is_some_and(|public| public.eq_ignore_ascii_case(host))
}

/// The host name of a URL such as `DASHBOARD_PUBLIC_URL`.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    Some(host_name(rest.split('/').next().unwrap_or_default()))
}

/// The name part of `host[:port]` (an IPv6 address keeps its brackets).
fn host_name(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(authority, |(inside, _)| &authority[..inside.len() + 2]),
        None => authority.split(':').next().unwrap_or(authority),
    }
}

/// A cookie of ours: HttpOnly, SameSite=Strict, for the whole site, and Secure when the dashboard is served over
/// HTTPS (directly, behind a proxy that says so in `X-Forwarded-Proto`/`Forwarded`, or by its public URL).
pub(crate) fn cookie(
    request: &HttpRequest,
    state: &AppState,
    name: &'static str,
    value: String,
) -> Cookie<'static> {
    let secure = request.connection_info().scheme() == "https"
        || state.config.public_url.as_deref().is_some_and(|url| url.starts_with("https://"));
    Cookie::build(name, value).path("/").http_only(true).same_site(SameSite::Strict).secure(secure).finish()
}

/// A response that removes one of our cookies.
pub(crate) fn expired_cookie(request: &HttpRequest, state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut cookie = cookie(request, state, name, String::new());
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn cross_site_writes_are_recognised() {
        let request = |headers: &[(&str, &str)]| {
            let mut builder =
                TestRequest::post().uri("/functions").insert_header(("Host", "dash.example:8000"));
            for header in headers {
                builder = builder.insert_header(*header);
            }
            builder.to_http_request()
        };
        assert!(!is_cross_site(&request(&[])), "curl sends neither header");
        assert!(!is_cross_site(&request(&[("Origin", "http://dash.example:8000")])));
        assert!(!is_cross_site(&request(&[("Sec-Fetch-Site", "same-origin")])));
        assert!(is_cross_site(&request(&[("Origin", "https://evil.example")])));
        assert!(is_cross_site(&request(&[("Origin", "null")])));
        assert!(is_cross_site(&request(&[("Sec-Fetch-Site", "cross-site")])));
        assert!(is_cross_site(&request(&[("Sec-Fetch-Site", "same-site")])));
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("localhost:8000"), "localhost");
        assert_eq!(host_name("[::1]:8000"), "[::1]");
        assert_eq!(host_name("dash.example"), "dash.example");
    }

    #[test]
    fn the_csrf_field_is_read_from_a_form_body() {
        assert_eq!(form_field(b"a=1&csrf_token=abc%2F&b=2", CSRF_FIELD).as_deref(), Some("abc/"));
        assert_eq!(form_field(b"a=1", CSRF_FIELD), None);
        assert_eq!(form_field(&[0xff, 0xfe], CSRF_FIELD), None);
    }
}
