//! The server over a store that is down — every call, reads too, answers `Unavailable`, as PostgreSQL does while it
//! restarts: every API route that needs the store answers 503 with the JSON error `store-unavailable`, every page an
//! HTML 503, `/healthz` 503; nothing answers 500 and nothing panics, and everything answers again once the store is
//! back. A browser whose login session cannot be read (sessions kept in the shared store) is answered the same 503,
//! not signed out. Sessions kept in a shared store hold on every instance, with the rights their token has there.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its message.

mod common;
#[path = "common/hooked_store.rs"]
mod hooked_store;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use async_trait::async_trait;
use common::{Answer, Browser, answer, client};
use dashboard_backend_api::{Principal, Scope};
use dashboard_backends::DemoBackend;
use dashboard_core::{ApprovalId, Execution, ExecutionId, FunctionSpec};
use dashboard_engine::Dashboard;
use dashboard_server::routes::{Access, table};
use dashboard_server::{AppState, ServerConfig, StoreSpec, Templates, TokenSpec, WebSource, configure};
use dashboard_store::{
    Cluster, DashboardStore, Heartbeat, InstanceInfo, LoginRecord, MemoryStore, SignalSink, StoreError,
};
use hooked_store::{Hook, HookedStore};
use serde_json::json;

const TOKEN: &str = "a-long-admin-token-for-tests";

/// What a store that is down answers.
fn down() -> StoreError {
    StoreError::Unavailable {
        message: "connection refused (injected: the database is down)".into(),
        source: None,
    }
}

/// Login sessions kept apart from the engine's store, as in a shared store: every call fails while `is_down`.
struct Logins {
    is_down: Arc<AtomicBool>,
    records: Mutex<HashMap<String, LoginRecord>>,
}

impl Logins {
    fn check(&self) -> Result<(), StoreError> {
        if self.is_down.load(Ordering::SeqCst) { Err(down()) } else { Ok(()) }
    }
}

/// Only the login sessions of [`Cluster`]: the engine of this test runs alone, and nothing else is called.
#[async_trait]
impl Cluster for Logins {
    async fn join(&self, _: &str) -> Result<(), StoreError> {
        Err(down())
    }

    async fn heartbeat(&self, _: &str, _: &[ExecutionId], _: Duration) -> Result<Heartbeat, StoreError> {
        Err(down())
    }

    async fn leave(&self, _: &str) -> Result<(), StoreError> {
        Err(down())
    }

    async fn list_instances(&self, _: Duration) -> Result<Vec<InstanceInfo>, StoreError> {
        Err(down())
    }

    async fn claim(&self, _: &str, _: usize, _: Duration) -> Result<Vec<Execution>, StoreError> {
        Err(down())
    }

    async fn release(&self, _: &str, _: ExecutionId) -> Result<(), StoreError> {
        Err(down())
    }

    async fn expired(&self, _: Option<&str>, _: usize) -> Result<Vec<Execution>, StoreError> {
        Err(down())
    }

    async fn request_cancel(&self, _: ExecutionId, _: Option<&str>) -> Result<(), StoreError> {
        Err(down())
    }

    async fn announce_decision(&self, _: ApprovalId) -> Result<(), StoreError> {
        Err(down())
    }

    fn subscribe(&self, _: SignalSink) {}

    async fn shared_secret(&self) -> Result<[u8; 32], StoreError> {
        Err(down())
    }

    async fn create_login(&self, login: &LoginRecord) -> Result<(), StoreError> {
        self.check()?;
        self.records.lock().unwrap().insert(login.id_hash.clone(), login.clone());
        Ok(())
    }

    async fn get_login(&self, id_hash: &str) -> Result<Option<LoginRecord>, StoreError> {
        self.check()?;
        Ok(self.records.lock().unwrap().get(id_hash).cloned())
    }

    async fn delete_login(&self, id_hash: &str) -> Result<(), StoreError> {
        self.check()?;
        self.records.lock().unwrap().remove(id_hash);
        Ok(())
    }
}

/// The dashboard with auth on for `tokens` and its login sessions in [`Logins`], in a real actix-web server on
/// 127.0.0.1:0.
fn serve(
    dashboard: Dashboard,
    logins: Arc<Logins>,
    tokens: Vec<TokenSpec>,
) -> (String, actix_web::dev::ServerHandle) {
    let web_source = WebSource::choose(None, false);
    let templates = Templates::load(&web_source).expect("the embedded templates");
    let config = ServerConfig { store: StoreSpec::Memory, auth_tokens: tokens, ..ServerConfig::default() };
    let state = web::Data::new(AppState::new(dashboard, templates, config).with_shared_sessions(logins));
    let web_source = web::Data::new(web_source);
    let server = HttpServer::new(move || App::new().configure(configure(state.clone(), web_source.clone())))
        .workers(1)
        .bind((Ipv4Addr::LOCALHOST, 0))
        .expect("a free port");
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

/// Whether an answer is the JSON error of a store that is down.
fn is_store_unavailable(answer: &Answer) -> bool {
    answer.status == 503 && answer.code() == "store-unavailable"
}

/// Whether an answer is an HTML page with status 503.
fn is_html_503(answer: &Answer) -> bool {
    let content_type = answer.headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    answer.status == 503 && content_type.starts_with("text/html")
}

#[actix_web::test]
async fn while_the_store_is_down_every_route_answers_503_and_none_500() {
    let is_down = Arc::new(AtomicBool::new(false));
    let flag = is_down.clone();
    let hook: Hook = Arc::new(move |_| {
        let is_down = flag.load(Ordering::SeqCst);
        Box::pin(async move { if is_down { Err(down()) } else { Ok(()) } })
    });
    let store: Arc<dyn DashboardStore> = Arc::new(HookedStore::new(Arc::new(MemoryStore::default()), hook));
    let dashboard = Dashboard::builder().store(store).backend("demo", DemoBackend).build();
    dashboard.create_function(&Principal::anonymous(), FunctionSpec::new("greet", "demo")).await.unwrap();
    let logins = Arc::new(Logins { is_down: is_down.clone(), records: Mutex::default() });
    let (url, handle) = serve(dashboard, logins, vec![TokenSpec::from_secret("admin", TOKEN, Scope::Admin)]);
    let client = client();
    let get = |path: String| answer(client.get(format!("{url}{path}")).bearer_auth(TOKEN));
    let post = |path: &str, body: serde_json::Value| {
        answer(client.post(format!("{url}{path}")).bearer_auth(TOKEN).json(&body))
    };

    let triggered =
        post("/api/executions", json!({"function": "greet", "input": {"steps": 1, "delay_ms": 0}})).await;
    assert_eq!(triggered.status, 202, "{:?}", triggered.body);
    let id = triggered.body["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    while get(format!("/api/executions/{id}")).await.body["status"] != "succeeded" {
        assert!(started.elapsed() < Duration::from_secs(60), "the execution never succeeded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut browser = Browser::open(&url, Some(TOKEN)).await;

    is_down.store(true, Ordering::SeqCst);
    // Routes that never read the store answer as ever; every other one answers 503.
    let without_store = [
        "/metrics",
        "/api/openapi.json",
        "/api/backends",
        "/api/instances",
        "/login",
        "/functions/new",
        "/backends",
    ];
    let approval = ApprovalId::generate().to_string();
    for route in table() {
        if route.method != actix_web::http::Method::GET
            || route.access == Access::Callback
            || route.path.starts_with("/static/")
        {
            continue;
        }
        let path = route.path.replace("{key}", "greet");
        let path = if path.starts_with("/api/approvals/") || path.starts_with("/approvals/") {
            path.replace("{id}", &approval)
        } else {
            path.replace("{id}", &id)
        };
        if path.ends_with("/stream") {
            // A live stream is refused before it starts; only its status is read.
            let response = client.get(format!("{url}{path}")).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(response.status(), 503, "GET {path}");
            continue;
        }
        let answer = get(path.clone()).await;
        if without_store.contains(&route.path) {
            assert_eq!(answer.status, 200, "GET {path} needs no store: {:?}", answer.body);
        } else if path == "/healthz" {
            assert_eq!(
                (answer.status, &answer.body["status"]),
                (503, &json!("unavailable")),
                "{:?}",
                answer.body
            );
        } else if route.is_api() {
            assert!(is_store_unavailable(&answer), "GET {path}: {} {:?}", answer.status, answer.body);
        } else {
            assert!(is_html_503(&answer), "GET {path}: {} {:?}", answer.status, answer.body);
        }
    }

    // Writes: the API's and the pages' form posts.
    for (path, body) in [
        ("/api/executions", json!({"function": "greet", "input": {}})),
        ("/api/functions", json!({"name": "another", "backend": "demo"})),
        (&format!("/api/executions/{id}/retry") as &str, json!({})),
        (&format!("/api/executions/{id}/cancel"), json!({})),
    ] {
        let answer = post(path, body).await;
        assert!(is_store_unavailable(&answer), "POST {path}: {} {:?}", answer.status, answer.body);
    }
    let form = client
        .post(format!("{url}/functions/greet/trigger"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("input=%7B%7D");
    let answer = answer(form).await;
    assert!(is_html_503(&answer), "a form post: {} {:?}", answer.status, answer.body);

    // A signed-in browser whose session cannot be read is told the store is down, on pages and the API alike.
    let page = browser.get("/executions").await;
    assert!(is_html_503(&page), "{} {:?}", page.status, page.body);
    let api = browser.get("/api/executions").await;
    assert!(is_store_unavailable(&api), "{} {:?}", api.status, api.body);
    let logout = browser.post_form("/logout", &[]).await;
    assert!(is_html_503(&logout), "{} {:?}", logout.status, logout.body);

    is_down.store(false, Ordering::SeqCst);
    assert_eq!(get(format!("/api/executions/{id}")).await.status, 200);
    // The health check reuses its probe's answer for a second: a later one finds the store back.
    let started = std::time::Instant::now();
    while get("/healthz".into()).await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "/healthz never said the store is back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = browser.get("/executions").await;
    assert_eq!(page.status, 200, "the session holds once the store is back: {:?}", page.body);
    common::stop_mounted(handle).await;
}

/// Two instances keep their sessions in one store: a browser signed in through one is signed in on the other, with
/// the rights its token has there; a token the other's configuration no longer has signs in nowhere there, and a
/// logout on one ends the session on both.
#[actix_web::test]
async fn a_session_made_on_one_instance_holds_on_another_while_its_token_does() {
    const VIEWER: &str = "a-long-viewer-token-for-tests";
    let logins = Arc::new(Logins { is_down: Arc::new(AtomicBool::new(false)), records: Mutex::default() });
    let admin = TokenSpec::from_secret("admin", TOKEN, Scope::Admin);
    let viewer = TokenSpec::from_secret("viewer", VIEWER, Scope::Read);
    let instance = || {
        let store: Arc<dyn DashboardStore> = Arc::new(MemoryStore::default());
        Dashboard::builder().store(store).backend("demo", DemoBackend).build()
    };
    let (first, first_handle) = serve(instance(), logins.clone(), vec![admin.clone(), viewer]);
    // The second instance's configuration has lost the viewer's token.
    let (second, second_handle) = serve(instance(), logins.clone(), vec![admin]);

    let mut admin_browser = Browser::open(&first, Some(TOKEN)).await;
    let mut viewer_browser = Browser::open(&first, Some(VIEWER)).await;
    assert_eq!(logins.records.lock().unwrap().len(), 2, "both sessions are in the shared store");
    assert!(
        logins.records.lock().unwrap().values().all(|record| record.id_hash.len() == 64
            && !admin_browser.cookie.contains(&record.id_hash)
            && !viewer_browser.cookie.contains(&record.id_hash)),
        "the store keeps hashes of the cookies, never their values"
    );

    admin_browser.url = second.clone();
    viewer_browser.url = second.clone();
    let page = admin_browser.get("/executions").await;
    assert_eq!(page.status, 200, "the admin's session holds on the other instance: {:?}", page.body);
    let page = viewer_browser.get("/executions").await;
    assert_eq!(page.status, 401, "a token the instance does not have signs in nowhere: {:?}", page.body);
    let api = viewer_browser.get("/api/executions").await;
    assert_eq!((api.status, api.code()), (401, "unauthorized"), "{:?}", api.body);

    // The cookie is kept past the logout (which removes it), to show the session itself is gone.
    let cookie = admin_browser.cookie.clone();
    let logout = admin_browser.post_form("/logout", &[]).await;
    assert_eq!(logout.status, 303, "{:?}", logout.body);
    admin_browser.cookie = cookie;
    admin_browser.url = first.clone();
    let page = admin_browser.get("/executions").await;
    assert_eq!(page.status, 401, "a logout on one instance ends the session on all: {:?}", page.body);
    common::stop_mounted(first_handle).await;
    common::stop_mounted(second_handle).await;
}
