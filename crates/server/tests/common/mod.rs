//! The test harness: starts the real server on 127.0.0.1:0 and talks to it over HTTP.

#![allow(dead_code, clippy::unwrap_used)] // Each test file uses part of the harness.

pub mod binary;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dashboard_server::{RunningServer, ServerConfig, StoreSpec, start};
use serde_json::{Value, json};

/// A running server and a client for it.
pub struct TestServer {
    pub url: String,
    pub client: reqwest::Client,
    server: RunningServer,
}

/// A server with the memory store, the demo backend and the example function.
pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// A server with settings changed by `adjust`.
pub async fn server_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        store: StoreSpec::Memory,
        ..ServerConfig::default()
    };
    adjust(&mut config);
    let server = start(config).await.expect("the server starts");
    TestServer { url: server.url(), client: client(), server }
}

/// A test server around a server the test started itself.
pub fn around(server: RunningServer) -> TestServer {
    TestServer { url: server.url(), client: client(), server }
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("a client")
}

/// A client builder for tests. reqwest is built without a TLS provider of its own, so the ring provider is installed
/// first (a second install is refused harmlessly).
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(30))
}

/// Sends a request and reads the answer.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body, headers }
}

/// Percent-encodes form fields the way a browser does.
pub fn form(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (byte as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser's side of the pages: the cookies the server gave it and the CSRF token its forms carry. It does not
/// follow redirects, so a form post's `Location` can be checked.
pub struct Browser {
    pub url: String,
    pub cookie: String,
    pub csrf: String,
    client: reqwest::Client,
}

impl Browser {
    /// A browser that has opened nothing yet.
    pub fn new(url: &str) -> Self {
        let client = client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        Self { url: url.to_owned(), cookie: String::new(), csrf: String::new(), client }
    }

    /// A browser that signs in with `token` first (when given), then opens the executions page and keeps its cookies
    /// and the CSRF token of its forms.
    pub async fn open(url: &str, token: Option<&str>) -> Self {
        let mut browser = Self::new(url);
        if let Some(token) = token {
            let answer = browser.post_form("/login", &[("token", token), ("next", "/")]).await;
            assert_eq!(answer.status, 303, "login: {:?}", answer.body);
        }
        let page = browser.get("/executions").await;
        assert_eq!(page.status, 200, "the executions page: {:?}", page.body);
        let marker = "name=\"csrf_token\" value=\"";
        let start = page.text().find(marker).expect("a form with a CSRF token") + marker.len();
        browser.csrf = page.text()[start..start + 64].to_owned();
        browser
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.url)).header("Cookie", self.cookie.clone());
        self.keep_cookies(request).await
    }

    /// Posts a form with the CSRF token added.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields = fields.to_vec();
        let csrf = self.csrf.clone();
        fields.push(("csrf_token", &csrf));
        self.post_form_as_is(path, &fields).await
    }

    /// Posts a form exactly as given (no CSRF token unless it is among the fields).
    pub async fn post_form_as_is(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", self.cookie.clone())
            .body(form(fields));
        self.keep_cookies(request).await
    }

    async fn keep_cookies(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let answer = answer(request).await;
        for set in answer.headers.get_all("set-cookie") {
            let pair = set.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_owned();
            let name = pair.split('=').next().unwrap_or("").to_owned();
            let mut kept: Vec<String> = self
                .cookie
                .split("; ")
                .filter(|old| !old.is_empty() && !old.starts_with(&format!("{name}=")))
                .map(str::to_owned)
                .collect();
            kept.push(pair);
            self.cookie = kept.join("; ");
        }
        answer
    }
}

impl Answer {
    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|value| value.to_str().ok()).unwrap_or("")
    }
}

/// Polls `GET /api/executions/{id}` through `get` until its status is `status`, for at most `limit`.
pub async fn poll_status<F, Fut>(get: F, id: &str, status: &str, limit: Duration) -> Value
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let started = Instant::now();
    loop {
        let answer = get(format!("/api/executions/{id}")).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        if answer.body["status"] == status {
            return answer.body;
        }
        assert!(
            started.elapsed() < limit,
            "execution {id} did not become {status} within {limit:?}; it is {}",
            answer.body["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An answer: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The error code of a JSON error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn text(&self) -> &str {
        self.body.as_str().unwrap_or("")
    }
}

impl TestServer {
    /// Stops the server; the client goes first, so no idle keep-alive connection holds up the graceful stop.
    pub async fn stop(self) {
        drop(self.client);
        // Once seen under a heavy load: actix's graceful stop never finished (the test's runtime parked with nothing
        // left to wake it). A test that got this far has made its point; it ends rather than hangs.
        if tokio::time::timeout(Duration::from_secs(30), self.server.stop()).await.is_err() {
            eprintln!("the server did not stop within 30 s; going on");
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        answer(request).await
    }

    /// The engine behind the server.
    pub fn dashboard(&self) -> &dashboard_engine::Dashboard {
        &self.server.dashboard
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.client.put(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.client.delete(format!("{}{path}", self.url))).await
    }

    /// Posts raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
        let request =
            self.client.post(format!("{}{path}", self.url)).header("Content-Type", content_type).body(body);
        self.send(request).await
    }

    /// Creates a function on the demo backend with extra fields; panics unless 201.
    pub async fn create_function(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "backend": "demo"});
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            body[key] = value;
        }
        let answer = self.post("/api/functions", body).await;
        assert_eq!(answer.status, 201, "create {name}: {:?}", answer.body);
        answer.body
    }

    /// Triggers a function; panics unless 202. Returns the execution id.
    pub async fn trigger(&self, function: &str, input: Value) -> String {
        let answer = self.post("/api/executions", json!({"function": function, "input": input})).await;
        assert_eq!(answer.status, 202, "trigger {function}: {:?}", answer.body);
        answer.body["id"].as_str().expect("an id").to_owned()
    }

    /// Polls an execution until its status is `status`, for at most `limit`; returns it.
    pub async fn wait_for(&self, id: &str, status: &str, limit: Duration) -> Value {
        poll_status(|path| async move { self.get(&path).await }, id, status, limit).await
    }

    /// The last event id now.
    pub async fn event_cursor(&self) -> u64 {
        let mut after = 0;
        loop {
            let answer = self.get(&format!("/api/events?after={after}&limit=1000")).await;
            let next = answer.body["next_after"].as_u64().expect("next_after");
            if next == after {
                return after;
            }
            after = next;
        }
    }
}

/// Mounts the dashboard around an engine the test built itself (its own store or backends) in a real actix-web
/// server on 127.0.0.1:0, as an embedding app would (`configure`), optionally under a Content-Security-Policy; its
/// URL and the handle that stops it.
pub fn mount(
    dashboard: dashboard_engine::Dashboard,
    csp: Option<&'static str>,
) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpServer, web};
    use dashboard_server::{AppState, Templates, WebSource, configure};

    let web_source = WebSource::choose(None, false);
    let templates = Templates::load(&web_source).expect("the embedded templates");
    let config = ServerConfig { store: StoreSpec::Memory, ..ServerConfig::default() };
    let state = web::Data::new(AppState::new(dashboard, templates, config));
    let web_source = web::Data::new(web_source);
    let server = HttpServer::new(move || {
        let headers = actix_web::middleware::DefaultHeaders::new();
        let headers = match csp {
            Some(policy) => headers.add(("Content-Security-Policy", policy)),
            None => headers,
        };
        App::new().wrap(headers).configure(configure(state.clone(), web_source.clone()))
    })
    .workers(1)
    .bind((Ipv4Addr::LOCALHOST, 0))
    .expect("a free port");
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

/// Stops a server started with [`mount`]: gracefully, but for 30 s at most — actix's graceful stop has been seen to
/// never finish (the runtime parked with nothing left to wake it), and a test that got this far has made its point.
pub async fn stop_mounted(handle: actix_web::dev::ServerHandle) {
    if tokio::time::timeout(Duration::from_secs(30), handle.stop(true)).await.is_err() {
        eprintln!("the server did not stop within 30 s; going on");
    }
}
