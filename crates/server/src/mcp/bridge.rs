//! Hands an actix request to rmcp's transport (an `http` 1 request with the caller's [`Principal`] in its
//! extensions) and streams rmcp's answer back.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use dashboard_backend_api::Principal;
use futures_util::StreamExt;
use http_body_util::{BodyDataStream, Full};

use crate::common::Caller;
use crate::state::State;

/// `POST /mcp`: one MCP message, answered by rmcp.
pub(crate) async fn serve(
    state: State,
    caller: Caller,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let mut forwarded =
        http::Request::builder().method(request.method().as_str()).uri(request.uri().to_string());
    for (name, value) in request.headers() {
        forwarded = forwarded.header(name.as_str(), value.as_bytes());
    }
    let mut forwarded = match forwarded.body(Full::new(body)) {
        Ok(forwarded) => forwarded,
        Err(error) => {
            return HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(format!("this request cannot be passed to the MCP server: {error}"));
        }
    };
    forwarded.extensions_mut().insert::<Principal>(caller.principal);
    let (parts, body) = state.mcp.handle(forwarded).await.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        answer.append_header((name.as_str(), value.as_bytes()));
    }
    if !parts.headers.contains_key("content-type") {
        // rmcp's plain refusals (406, 415) carry no type; actix would call the stream octets.
        answer.content_type("text/plain; charset=utf-8");
    }
    answer.streaming(
        BodyDataStream::new(body).map(|chunk| chunk.map_err(|never| -> actix_web::Error { match never {} })),
    )
}
