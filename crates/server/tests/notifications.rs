//! Notifications end to end, the real binary posting to receivers the test runs on 127.0.0.1: a failed execution
//! reaches a Standard Webhooks receiver that verifies its signature, and a Slack receiver as a message with the
//! error and a link built from `DASHBOARD_PUBLIC_URL`, each exactly once, while a succeeded one reaches neither; a
//! receiver that is down for 10 s while the dashboard is killed and restarted still gets it, once; a receiver that
//! answers 500 gets it again on the retry; and the deliveries are listed by the API and the page.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::binary::{BinaryServer, TestDir, free_port};
use dashboard_core::standard_webhooks::Secret;
use serde_json::{Value, json};

/// The signing secret the test gives the dashboard (the Standard Webhooks specification's example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The dashboard's address as its links must show it.
const PUBLIC_URL: &str = "https://dashboard.example.test";
/// How long anything may take on a loaded machine (a fail-safe, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);
/// How long the test listens for a second, unwanted request after the first.
const QUIET: Duration = Duration::from_secs(3);

/// One request a receiver took.
#[derive(Clone, Debug)]
struct Request {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What a receiver shares with its handler: the requests taken, and the statuses to answer (200 once they run out).
#[derive(Default)]
struct Inbox {
    requests: Vec<Request>,
    answers: VecDeque<u16>,
}

/// A receiver of notifications on 127.0.0.1, stopped when dropped.
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
    handle: ServerHandle,
}

impl Receiver {
    /// Listens on `port` (0: any free one), answering `answers` in turn, then 200.
    fn start(port: u16, answers: &[u16]) -> Self {
        let inbox = web::Data::new(Mutex::new(Inbox {
            requests: Vec::new(),
            answers: answers.iter().copied().collect(),
        }));
        let shared = inbox.clone().into_inner();
        let server =
            HttpServer::new(move || App::new().app_data(inbox.clone()).route("/hook", web::post().to(take)))
                .workers(1)
                .bind(("127.0.0.1", port))
                .expect("the receiver's port");
        let url = format!("http://{}/hook", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url, inbox: shared, handle }
    }

    fn requests(&self) -> Vec<Request> {
        self.inbox.lock().expect("the inbox").requests.clone()
    }

    /// Waits until the receiver has taken `count` requests, then a little longer to see that no other one comes.
    async fn exactly(&self, count: usize) -> Vec<Request> {
        let started = Instant::now();
        while self.requests().len() < count {
            assert!(started.elapsed() < PATIENCE, "{} of {count} requests came", self.requests().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(QUIET).await;
        let requests = self.requests();
        assert_eq!(requests.len(), count, "{requests:#?}");
        requests
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn take(inbox: web::Data<Mutex<Inbox>>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut inbox = inbox.lock().expect("the inbox");
    inbox.requests.push(Request { headers, body: body.to_vec() });
    let status = inbox.answers.pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"))
        .body("receiver says hi")
}

/// A config file with the demo backend, the function `build`, and `notifications` (TOML `[[notifications]]` tables).
fn config(dir: &TestDir, notifications: &str) -> String {
    let path = dir.path().join("dashboard.toml");
    let text = format!(
        "[[backends]]\nname = \"demo\"\nkind = \"demo\"\n\n[[functions]]\nname = \"build\"\nbackend = \"demo\"\n\n\
         {notifications}"
    );
    std::fs::write(&path, text).expect("the config file");
    path.display().to_string()
}

fn environment(config: String, store: String) -> Vec<(&'static str, String)> {
    vec![
        ("DASHBOARD_CONFIG", config),
        ("DASHBOARD_STORE", store),
        ("DASHBOARD_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("NOTIFY_SECRET", SECRET.to_owned()),
    ]
}

/// Runs `build` to its end: failing when `fail`. Returns the execution's id.
async fn run_build(server: &BinaryServer, fail: bool) -> String {
    let id = server.trigger("build", json!({"steps": 1, "delay_ms": 0, "fail": fail})).await;
    server.wait_for(&id, if fail { "failed" } else { "succeeded" }, PATIENCE).await;
    id
}

/// The deliveries the API lists for `query`.
async fn deliveries(server: &BinaryServer, query: &str) -> Vec<Value> {
    let page = server.get_ok(&format!("/api/notifications/deliveries{query}")).await;
    page["items"].as_array().expect("items").clone()
}

/// Polls the API until the deliveries of `query` satisfy `check`.
async fn wait_for_deliveries(
    server: &BinaryServer,
    query: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let items = deliveries(server, query).await;
        if check(&items) {
            return items;
        }
        assert!(started.elapsed() < PATIENCE, "the deliveries never got there: {items:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks an answer of `GET /api/notifications/deliveries` against the schema the server's OpenAPI document gives
/// for its status.
async fn check_against_the_document(server: &BinaryServer, answer: &common::Answer) {
    let document = server.get_ok("/api/openapi.json").await;
    let response =
        &document["paths"]["/api/notifications/deliveries"]["get"]["responses"][answer.status.to_string()];
    let response = match response["$ref"].as_str() {
        Some(target) => {
            document.pointer(target.trim_start_matches('#')).expect("the reference resolves").clone()
        }
        None => response.clone(),
    };
    let mut schema =
        response.pointer("/content/application~1json/schema").expect("a documented body").clone();
    schema["components"] = document["components"].clone();
    let validator = jsonschema::validator_for(&schema).expect("the document's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {:#}", answer.body);
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_is_notified_signed_and_to_slack_and_a_success_is_not() {
    let signed = Receiver::start(0, &[]);
    let chat = Receiver::start(0, &[]);
    let dir = TestDir::new("notifications-formats");
    let config = config(
        &dir,
        &format!(
            "[[notifications]]\nname = \"signed\"\nurl = \"{}\"\non = [\"failed\", \"timed_out\"]\nsecret_env = \
             \"NOTIFY_SECRET\"\n\n[[notifications]]\nname = \"chat\"\nurl = \"{}\"\non = [\"failed\"]\nfunctions = \
             [\"build\"]\nformat = \"slack\"\n",
            signed.url, chat.url
        ),
    );
    let server = BinaryServer::start(&dir, &environment(config, "memory".to_owned())).await;

    // A success first: neither notification is for it.
    run_build(&server, false).await;
    let failed = run_build(&server, true).await;

    let request = signed.exactly(1).await.remove(0);
    let (id, timestamp) = (request.header("webhook-id"), request.header("webhook-timestamp"));
    let secret = Secret::parse(SECRET).expect("the test's secret");
    let verified =
        secret.verify(id, timestamp, request.header("webhook-signature"), &request.body, unix_now());
    assert_eq!(verified, Ok(()), "{request:?}");
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(body["type"], "execution.failed");
    assert_eq!(body["data"]["event"]["execution_id"], failed.as_str());
    assert_eq!(body["data"]["execution"]["id"], failed.as_str());
    assert_eq!(body["data"]["execution"]["status"], "failed");
    assert_eq!(body["data"]["url"], format!("{PUBLIC_URL}/executions/{failed}"));

    let message = chat.exactly(1).await.remove(0);
    assert!(message.header("webhook-signature").is_empty(), "a Slack message is not signed");
    let text = message.json()["text"].as_str().expect("Slack's text").to_owned();
    for expected in [
        "*build*",
        "failed",
        "the demo agent failed as asked",
        &format!("<{PUBLIC_URL}/executions/{failed}|"),
    ] {
        assert!(text.contains(expected), "{expected:?} is not in {text:?}");
    }

    // The API lists both, delivered; the webhook id is the delivery's.
    let items = wait_for_deliveries(&server, "", |items| {
        items.len() == 2 && items.iter().all(|delivery| delivery["status"] == "delivered")
    })
    .await;
    let mut names: Vec<&str> =
        items.iter().map(|delivery| delivery["notification"].as_str().unwrap_or("")).collect();
    names.sort_unstable();
    assert_eq!(names, ["chat", "signed"]);
    let signed_delivery = &deliveries(&server, "?notification=signed").await[0];
    assert_eq!(signed_delivery["id"], id);
    assert_eq!(
        (signed_delivery["attempts"].as_u64(), signed_delivery["response_status"].as_u64()),
        (Some(1), Some(200))
    );
    assert_eq!(deliveries(&server, &format!("?execution={failed}&status=delivered")).await.len(), 2);
    assert!(deliveries(&server, "?status=pending").await.is_empty());
    check_against_the_document(&server, &server.get("/api/notifications/deliveries").await).await;
    let first = server.get_ok("/api/notifications/deliveries?limit=1").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    let second = server
        .get_ok(&format!(
            "/api/notifications/deliveries?limit=1&before={}",
            first["next_cursor"].as_str().expect("a cursor")
        ))
        .await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
    assert_eq!(second["next_cursor"], Value::Null);
    for (query, parameter) in [
        ("status=lost", "status"),
        ("limit=500", "limit"),
        ("execution=x", "execution"),
        ("before=7", "before"),
    ] {
        let answer = server.get(&format!("/api/notifications/deliveries?{query}")).await;
        assert_eq!((answer.status, answer.code()), (400, "invalid-query"), "{query}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["details"]["parameter"], parameter, "{query}");
        check_against_the_document(&server, &answer).await;
    }

    // The page shows them, and its status filter keeps the ones asked for.
    let page = server.get("/notifications").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains(&format!("href=\"/executions/{failed}\"")) && page.text().contains("chat"),
        "{}",
        page.text()
    );
    let pending_only = server.get("/notifications?status=pending").await;
    assert!(pending_only.text().contains("No delivery matches"), "{}", pending_only.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_while_the_dashboard_restarts_gets_the_notification_once_it_is_up() {
    let port = free_port();
    let dir = TestDir::new("notifications-outage");
    let url = format!("http://127.0.0.1:{port}/hook");
    let config = config(
        &dir,
        &format!(
            "[[notifications]]\nname = \"ops\"\nurl = \"{url}\"\non = [\"failed\"]\nsecret_env = \"NOTIFY_SECRET\"\n"
        ),
    );
    let store = format!("sqlite:{}", dir.path().join("dashboard.db").display());
    let env = environment(config, store);
    let mut server = BinaryServer::start(&dir, &env).await;
    let down_since = Instant::now();
    let failed = run_build(&server, true).await;

    // The first attempt is refused (nothing listens), and the delivery waits for its retry.
    let items = wait_for_deliveries(&server, "", |items| {
        items.first().is_some_and(|delivery| delivery["attempts"] != 0)
    })
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "pending", "{items:#?}");
    assert!(items[0]["last_error"].as_str().is_some_and(|error| !error.is_empty()), "{items:#?}");
    let page = server.get("/notifications?status=pending").await;
    assert!(page.text().contains("pending") && page.text().contains("Connection refused"), "{}", page.text());
    assert!(server.get("/notifications?notification=gone").await.text().contains("No delivery matches"));

    // Killed without a word, started again on the same file.
    server.kill();
    drop(server);
    let server = BinaryServer::start(&dir, &env).await;

    // The receiver comes up 10 s after the failure, on the same port.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_since.elapsed())).await;
    let receiver = Receiver::start(port, &[]);
    let request = receiver.exactly(1).await.remove(0);
    let secret = Secret::parse(SECRET).expect("the test's secret");
    let (id, timestamp) = (request.header("webhook-id"), request.header("webhook-timestamp"));
    assert_eq!(
        secret.verify(id, timestamp, request.header("webhook-signature"), &request.body, unix_now()),
        Ok(())
    );
    assert_eq!(request.json()["data"]["execution"]["id"], failed.as_str());

    let delivered = wait_for_deliveries(&server, "", |items| {
        items.first().is_some_and(|delivery| delivery["status"] == "delivered")
    })
    .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["id"], id);
    assert!(delivered[0]["attempts"].as_u64().is_some_and(|attempts| attempts > 1), "{delivered:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_500_gets_the_notification_again_on_the_retry() {
    let receiver = Receiver::start(0, &[500]);
    let dir = TestDir::new("notifications-retry");
    let config = config(
        &dir,
        &format!("[[notifications]]\nname = \"flaky\"\nurl = \"{}\"\non = [\"failed\"]\n", receiver.url),
    );
    let server = BinaryServer::start(&dir, &environment(config, "memory".to_owned())).await;
    run_build(&server, true).await;

    let requests = receiver.exactly(2).await;
    // The same delivery both times; unsigned, since the entry has no secret.
    assert_eq!(requests[0].header("webhook-id"), requests[1].header("webhook-id"));
    assert_eq!(requests[0].body, requests[1].body);
    assert!(requests[1].header("webhook-signature").is_empty());
    let delivered = wait_for_deliveries(&server, "?status=delivered", |items| !items.is_empty()).await;
    assert_eq!(
        (delivered[0]["attempts"].as_u64(), delivered[0]["response_status"].as_u64()),
        (Some(2), Some(200))
    );
    assert!(
        server.log().contains("notification flaky: attempt 1 at delivering execution.failed failed"),
        "{}",
        server.log()
    );
}

/// A receiver that takes connections and never answers, counting how many it holds open at once.
struct Silent {
    url: String,
    most_at_once: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}/hook", listener.local_addr().expect("its address"));
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most_at_once = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (most, taken) = (Arc::clone(&most_at_once), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_open, Ordering::SeqCst);
                taken.fetch_add(1, Ordering::SeqCst);
                let open = Arc::clone(&open);
                tokio::spawn(async move {
                    // Read the request and whatever follows until the client gives up; answer nothing.
                    let mut buffer = [0u8; 4096];
                    while let Ok(read) = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await {
                        if read == 0 {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, most_at_once, accepted, task }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_only_its_own_notifications() {
    use std::sync::atomic::Ordering;
    let silent = Silent::start().await;
    let chat = Receiver::start(0, &[]);
    let dir = TestDir::new("notifications-silent");
    let notifications = format!(
        "[[notifications]]\nname = \"stuck\"\nurl = \"{}\"\non = [\"failed\"]\n\n\
         [[notifications]]\nname = \"chat\"\nurl = \"{}\"\non = [\"failed\"]\nformat = \"slack\"\n",
        silent.url, chat.url
    );
    let config = config(&dir, &notifications);
    let server = BinaryServer::start(&dir, &environment(config, "memory".to_owned())).await;
    // More failures than the sender posts at once in all (16), each told to both receivers.
    for _ in 0..20 {
        server.trigger("build", json!({"steps": 0, "delay_ms": 0, "fail": true})).await;
    }
    // Every message reaches the receiver that answers, while the silent one holds its attempts for 10 s each.
    let messages = chat.exactly(20).await;
    assert_eq!(messages.len(), 20);
    let stuck = deliveries(&server, "?notification=stuck&status=delivered").await;
    assert!(stuck.is_empty(), "the silent receiver answered nothing: {stuck:#?}");
    assert!(silent.accepted.load(Ordering::SeqCst) >= 1, "the silent receiver was tried");
    let most = silent.most_at_once.load(Ordering::SeqCst);
    assert!(most <= 4, "one notification held {most} attempts at once");
}
