//! What every HTML answer needs, whoever gives it (a page, the authentication guard, the login form): the context
//! every template starts from, the error and 404 pages, the login form, and the redirect of a form post.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use dashboard_backend_api::Scope;

use super::{Caller, Via};
use crate::error::ApiError;
use crate::state::AppState;

/// The HTML 404 page.
pub(crate) fn not_found_page(state: &AppState, path: &str) -> HttpResponse {
    let mut context = base_context(None, "", "Not found");
    context.insert("message", &format!("There is no page at {path}."));
    state.render(StatusCode::NOT_FOUND, "error.html", &context)
}

/// The context every page starts from: the page title, which nav entry is current, the version for the footer, and
/// the caller: its name and sign-out form when signed in, the CSRF token every form carries, and what it may do (the
/// pages hide buttons its scope does not allow). Error pages have no caller.
pub(crate) fn base_context(caller: Option<&Caller>, nav: &str, title: &str) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("nav", nav);
    context.insert("title", title);
    context.insert("version", env!("CARGO_PKG_VERSION"));
    let may = |scope| caller.is_some_and(|caller| caller.may(scope));
    context.insert("user", &caller.and_then(|caller| caller.principal.name.as_deref()));
    context.insert("is_signed_in", &caller.is_some_and(|caller| caller.via == Via::Session));
    context.insert("csrf_token", caller.map_or("", |caller| caller.csrf.as_str()));
    context.insert("may_trigger", &may(Scope::Trigger));
    context.insert("may_admin", &may(Scope::Admin));
    // The header's count of pending approvals, which the pages fill in (`pages::page_context`); none on error pages.
    context.insert("pending_approvals", &None::<u64>);
    context
}

/// The error page for a failed read or action: an unknown function or execution gives the 404 page, anything else
/// the status and sentence the JSON API would answer with.
pub(crate) fn error_page(state: &AppState, error: &ApiError) -> HttpResponse {
    let title = match error.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::FORBIDDEN => "Not allowed",
        status if status.is_server_error() => "Something went wrong",
        _ => "Cannot do that",
    };
    let mut context = base_context(None, "", title);
    context.insert("message", &sentence(&error.message));
    state.render(error.status(), "error.html", &context)
}

/// A message as a sentence: capitalised, ending with a full stop.
pub(crate) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

/// 303 See Other: where a successful form post sends the browser.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// The login form in place of a page that needs a session: answered with `status` (401), it signs in and comes
/// back to the page asked for (to the overview after a form post, which a redirect cannot repeat).
pub(crate) fn login_page(
    state: &AppState,
    request: &HttpRequest,
    status: StatusCode,
    message: Option<&str>,
) -> HttpResponse {
    let next = match request.query_string() {
        _ if request.method() != actix_web::http::Method::GET => "/".to_owned(),
        "" => request.path().to_owned(),
        query => format!("{}?{query}", request.path()),
    };
    login_form(state, local_path(&next), status, message)
}

pub(crate) fn login_form(
    state: &AppState,
    next: &str,
    status: StatusCode,
    message: Option<&str>,
) -> HttpResponse {
    let mut context = base_context(None, "", "Sign in");
    context.insert("next", next);
    context.insert("message", &message);
    state.render(status, "login.html", &context)
}

/// `next` when it is a path on this site, else `/`: the login never sends a browser elsewhere.
pub(crate) fn local_path(next: &str) -> &str {
    let is_local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|char| char.is_control())
        && !next.starts_with("/login");
    if is_local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_sentences() {
        assert_eq!(sentence("function x not found"), "Function x not found.");
        assert_eq!(sentence("done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
