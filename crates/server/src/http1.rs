//! The HTTP/1 server under the dashboard, and the framing rules it keeps beyond actix-http's parser.
//!
//! actix-web's `HttpServer` is actix-http's `HttpService` with defaults; the server is assembled from the same parts
//! here because three rules need hooks `HttpServer` does not offer:
//!
//! - A request with both `Content-Length` and `Transfer-Encoding` is refused (400) and its connection closed, as
//!   RFC 9112 §6.1 asks: the two headers disagree on where the body ends, so whatever follows on the connection may
//!   be another request smuggled past a proxy that read them the other way. actix-http frames such a request by
//!   `Transfer-Encoding` and reads on, decoding the requests pipelined behind it before the first is answered. So
//!   [`refuse_ambiguous_requests`] condemns the [`Connection`]: its stream ([`ConnectionStream`]) reads nothing more,
//!   requests already read behind the refused one are never answered, and the dispatcher, finding the end of input,
//!   writes the 400 and closes. Should the dispatcher not look for more input while such a request waits, the
//!   connection is severed after [`UNANSWERED_LIMIT`]: nothing more is sent on it, and it closes.
//! - A request with more than one `Host` is refused (400): the checks that read `Host` (the localhost rule without
//!   auth, the cross-site check) must see the host the client meant, not the first of several.
//! - A body announced with `Expect: 100-continue` and a `Content-Length` over the limit is answered 413 at once,
//!   without `100 Continue` ([`expect_within_limit`]), and the connection is closed, so no client is invited to send
//!   a body the server will not read.

use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::future::{Future, ready};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::HttpMessage as _;
use actix_http::body::{BoxBody, MessageBody};
use actix_http::{ConnectionType, Extensions, HttpService, KeepAlive, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::ResponseError;
use actix_web::dev::{AppConfig, Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::access_log;
use crate::error::{ApiError, ErrorCode};

/// How long a client may take to send a request's head, and to close after the server's close (`HttpServer`'s
/// defaults).
const REQUEST_HEAD_LIMIT: Duration = Duration::from_secs(5);
const DISCONNECT_LIMIT: Duration = Duration::from_secs(1);
/// How long a request read behind a refused one waits for the dispatcher to close its connection before the
/// connection is severed.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(5);

/// The server on `listener`, one app per worker from `factory`, refusing bodies over `max_body_bytes` announced
/// with `Expect: 100-continue`.
pub(crate) fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    max_body_bytes: usize,
    factory: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let server = Server::build().listen("agent-dashboard", listener, move || {
        let app = factory().into_factory().map_err(|error| error.into().error_response());
        // The application's view of the connection: what `HttpServer` gives it (`AppConfig::new` is private to
        // actix-web; this is the constructor actix-test uses). Its host is used only for a request without `Host`.
        let app = map_config(app, move |_| AppConfig::__priv_test_new(false, address.to_string(), address));
        let http = HttpService::<ConnectionStream, _, _, _, _>::build()
            .keep_alive(KeepAlive::default())
            .client_request_timeout(REQUEST_HEAD_LIMIT)
            .client_disconnect_timeout(DISCONNECT_LIMIT)
            // A client that closes its side of the connection is gone: the server stops there (as hyper does by
            // default) instead of serving a half-closed connection. Without this a live stream whose client left
            // kept running, and kept its place under the SSE cap, until a heartbeat found the connection dead, up
            // to 30 s later. A condemned connection closes the same way.
            .h1_allow_half_closed(false)
            .local_addr(address)
            .expect(fn_service(move |request: Request| ready(expect_within_limit(request, max_body_bytes))))
            .on_connect_ext(|stream: &ConnectionStream, data: &mut Extensions| {
                data.insert(Rc::clone(&stream.connection));
            })
            .h1(app);
        fn_service(|stream: TcpStream| {
            let peer = stream.peer_addr().ok();
            ready(Ok((ConnectionStream { stream, connection: Rc::default() }, peer)))
        })
        .and_then(http)
    })?;
    Ok(server.shutdown_timeout(5).run())
}

/// What the server knows of one connection beyond actix-http: whether it is condemned to close, and whether it is
/// severed.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    is_condemned: Cell<bool>,
    is_severed: Cell<bool>,
}

impl Connection {
    /// From now on the connection reads nothing more; it closes once the answers written so far are sent.
    fn condemn(&self) {
        self.is_condemned.set(true);
    }

    fn is_condemned(&self) -> bool {
        self.is_condemned.get()
    }

    /// From now on the connection also sends nothing more: whatever the dispatcher writes is dropped, so that it
    /// finishes its answer, unsent, and closes.
    fn sever(&self) {
        self.condemn();
        self.is_severed.set(true);
    }

    fn is_severed(&self) -> bool {
        self.is_severed.get()
    }
}

/// A TCP stream that ends its input once its connection is condemned, and drops its output once it is severed.
pub(crate) struct ConnectionStream {
    stream: TcpStream,
    connection: Rc<Connection>,
}

impl AsyncRead for ConnectionStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.connection.is_condemned() {
            return Poll::Ready(Ok(())); // Nothing read: the end of input.
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnectionStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.connection.is_severed() {
            return Poll::Ready(Ok(buf.len())); // Dropped: nothing more is sent.
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.connection.is_severed() {
            return Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The `Expect: 100-continue` check: a `Content-Length` over the limit is answered 413 before the body is sent.
fn expect_within_limit(request: Request, max_body_bytes: usize) -> Result<Request, Response<BoxBody>> {
    let length =
        request.headers().get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.trim().parse().ok());
    if length.is_none_or(|length: u64| length <= max_body_bytes as u64) {
        return Ok(request);
    }
    // The dispatcher answers this itself, before the app and its access log see the request: logged here.
    let head = request.head();
    log::info!(
        target: access_log::TARGET,
        "{} 413 (Expect: 100-continue)",
        access_log::request_line(head.method.as_str(), head.uri.path(), head.uri.query(), head.version)
    );
    let mut response: Response<BoxBody> = body_too_large().error_response().into();
    response.head_mut().set_connection_type(ConnectionType::Close);
    Err(response)
}

/// The 413 of a body over the limit, the same as the body extractors' (`api::payload_error`).
fn body_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        "the body is larger than this server accepts (DASHBOARD_MAX_BODY_BYTES)",
    )
}

/// The middleware that refuses requests whose framing or host is ambiguous (see the module's documentation).
/// Mounted with the dashboard, so an embedding app gets the refusals too; only this module's server can also close
/// the connection before the requests pipelined behind such a request are answered.
pub(crate) async fn refuse_ambiguous_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let connection = request.conn_data::<Rc<Connection>>().cloned();
    if let Some(connection) = connection.as_ref().filter(|connection| connection.is_condemned()) {
        // Read behind a refused request on the same connection: it may be smuggled, so it gets no answer.
        let refusal = unanswered(connection, UNANSWERED_LIMIT).await;
        return Ok(request.into_response(refusal));
    }
    let headers = request.headers();
    if headers.contains_key(CONTENT_LENGTH) && headers.contains_key(TRANSFER_ENCODING) {
        if let Some(connection) = connection {
            connection.condemn();
        }
        let refusal = ApiError::new(
            ErrorCode::InvalidHeader,
            "a request may not carry both Content-Length and Transfer-Encoding; the connection is closed",
        )
        .details(json!({"header": "transfer-encoding"}));
        let mut response = refusal.error_response();
        response.head_mut().set_connection_type(ConnectionType::Close);
        return Ok(request.into_response(response));
    }
    if headers.get_all(HOST).nth(1).is_some() {
        let refusal = ApiError::new(ErrorCode::InvalidHeader, "a request may carry one Host header")
            .details(json!({"header": "host"}));
        return Ok(request.into_response(refusal.error_response()));
    }
    next.call(request).await.map(ServiceResponse::map_into_boxed_body)
}

/// What a request that must get no answer waits for: its connection closed by the dispatcher (which drops this
/// future), or else, after `limit`, its connection severed. The answer it then gives is dropped unsent; it only lets
/// the dispatcher finish, and close the connection, since it says `Connection: close`.
async fn unanswered(connection: &Connection, limit: Duration) -> actix_web::HttpResponse {
    if let Ok(never) = actix_web::rt::time::timeout(limit, Unanswered::default()).await {
        match never {}
    }
    connection.sever();
    let mut response = ApiError::new(
        ErrorCode::InvalidHeader,
        "a request read behind a refused one on the same connection gets no answer",
    )
    .error_response();
    response.head_mut().set_connection_type(ConnectionType::Close);
    response
}

/// Never ready: what a request that must get no answer waits for until its connection is closed. It wakes its task
/// once, so that the dispatcher polls the connection again and finds the end of its input.
#[derive(Default)]
struct Unanswered {
    has_woken: bool,
}

impl Future for Unanswered {
    type Output = Infallible;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Infallible> {
        if !self.has_woken {
            self.has_woken = true;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    /// The status the expect check gives a request announcing `content_length` (100: it may send its body).
    fn check(content_length: Option<&'static str>, expected: u16) {
        let mut request = Request::new();
        if let Some(length) = content_length {
            request.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static(length));
        }
        let status = match expect_within_limit(request, 1024) {
            Ok(_) => 100,
            Err(response) => {
                assert_eq!(response.head().connection_type(), ConnectionType::Close);
                response.status().as_u16()
            }
        };
        assert_eq!(status, expected, "Content-Length {content_length:?}");
    }

    #[actix_web::test]
    async fn a_request_that_gets_no_answer_severs_its_connection_after_the_limit() {
        let connection = Connection::default();
        connection.condemn();
        let refusal = unanswered(&connection, Duration::from_millis(1)).await;
        assert!(connection.is_severed());
        assert_eq!(refusal.head().connection_type(), ConnectionType::Close);
    }

    #[actix_web::test]
    async fn a_severed_stream_reads_and_sends_nothing() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let mut client =
            TcpStream::connect(listener.local_addr().expect("its address")).await.expect("a client");
        let (server, _) = listener.accept().await.expect("a connection");
        let mut stream = ConnectionStream { stream: server, connection: Rc::default() };
        client.write_all(b"unread").await.expect("sent");
        stream.connection.sever();
        let mut read = Vec::new();
        assert_eq!(stream.read_to_end(&mut read).await.expect("the end of input"), 0);
        stream.write_all(b"never sent").await.expect("dropped");
        stream.shutdown().await.expect("closed");
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.expect("the end");
        assert!(received.is_empty(), "{received:?}");
    }

    #[test]
    fn the_expect_check_refuses_only_a_length_over_the_limit() {
        check(None, 100);
        check(Some("0"), 100);
        check(Some("1024"), 100);
        check(Some("1025"), 413);
        check(Some(" 99999999999 "), 413);
        // Not a length: the parser refuses it before the expect check is asked.
        check(Some("many"), 100);
    }
}
