//! The ceiling: a minimal actix-web server whose one handler parses a JSON body and echoes it back.

use actix_web::{App, HttpResponse, HttpServer, web};

/// Starts the echo server on 127.0.0.1 (a free port); returns its URL and a handle to stop it.
pub fn start() -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(|| App::new().route("/echo", web::post().to(echo)))
        .bind(("127.0.0.1", 0))
        .expect("127.0.0.1 has a free port");
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{address}"), handle)
}

async fn echo(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}
