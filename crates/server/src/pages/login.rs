//! `/login` and `/logout`: the form that turns a token into a session cookie, and the post that ends it. A page asked
//! for without a session answers 401 with this same form, which comes back to that page once signed in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::TokenSpec;
use crate::auth::guard::{SESSION_COOKIE, cookie, expired_cookie};
use crate::common::Caller;
use crate::common::html::{error_page, local_path, login_form, see_other};
use crate::error::ApiError;
use crate::state::State;

/// The login form as posted.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `?next=` of `GET /login`.
#[derive(Deserialize)]
pub(crate) struct NextQuery {
    #[serde(default)]
    next: String,
}

/// `GET /login`: the form; with auth off, or already signed in, straight on to the page asked for.
pub(crate) async fn form(state: State, request: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    let next = local_path(&query.next);
    let is_signed_in = match request.cookie(SESSION_COOKIE) {
        Some(session) if state.auth.is_on() => match state.auth.session(session.value()).await {
            Ok(session) => session.is_some(),
            Err(error) => return error_page(&state, &ApiError::from(error)),
        },
        _ => false,
    };
    if !state.auth.is_on() || is_signed_in {
        return see_other(next);
    }
    login_form(&state, next, StatusCode::OK, None)
}

/// `POST /login`: a valid token starts a session and goes on to `next`; anything else shows the form again, 401.
pub(crate) async fn sign_in(state: State, request: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let next = local_path(&form.next);
    if !state.auth.is_on() {
        return see_other(next);
    }
    let Some(token) = state.auth.token(form.token.trim()) else {
        log::warn!("login refused from {}: the token is not valid", peer(&request));
        return login_form(&state, next, StatusCode::UNAUTHORIZED, Some("That token is not valid."));
    };
    let session = match state.auth.start_session(token).await {
        Ok(session) => session,
        Err(error) => return error_page(&state, &ApiError::from(error)),
    };
    let principal = TokenSpec::principal(token);
    log::info!("login: {} ({} scope) from {}", principal.label(), principal.scope, peer(&request));
    let mut response = see_other(next);
    // Adding a cookie fails only for a value that is not a valid header, which a hex id never is.
    let _ = response.add_cookie(&cookie(&request, &state, SESSION_COOKIE, session));
    response
}

/// `POST /logout`: ends the session and removes its cookie.
pub(crate) async fn sign_out(state: State, request: HttpRequest, caller: Caller) -> HttpResponse {
    // A session that cannot be ended now stays usable: the browser keeps its cookie and may sign out again.
    if let Some(session) = request.cookie(SESSION_COOKIE)
        && let Err(error) = state.auth.end_session(session.value()).await
    {
        return error_page(&state, &ApiError::from(error));
    }
    log::info!("logout: {}", caller.principal.label());
    let mut response = see_other(if state.auth.is_on() { "/login" } else { "/" });
    let _ = response.add_cookie(&expired_cookie(&request, &state, SESSION_COOKIE));
    response
}

/// The client's address, for the log.
fn peer(request: &HttpRequest) -> String {
    request.peer_addr().map_or_else(|| "an unknown address".to_owned(), |address| address.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_goes_on_only_to_paths_of_this_site() {
        for (next, expected) in [
            ("/executions?status=failed", "/executions?status=failed"),
            ("/", "/"),
            ("", "/"),
            ("https://evil.example/", "/"),
            ("//evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("/login?next=/", "/"),
            ("/a\nb", "/"),
        ] {
            assert_eq!(local_path(next), expected, "{next:?}");
        }
    }
}
