//! Auth end to end, with tokens on: every route of the route table refuses a caller without a token and serves one
//! with a token; scopes and per-backend grants hold over the API and the pages; login sessions, their cookies and
//! CSRF tokens; callbacks keep their own tokens; and no token reaches the log.

mod common;

use std::time::Duration;

use common::binary::{BinaryServer, TestDir};
use common::{Answer, Browser, TestServer, answer, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use dashboard_server::routes::{Access, RouteInfo, table};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";
/// A trigger token granted backend `a` only.
const CI: &str = "ci-token-0123456789abcdef";
/// An admin token granted backend `a` only.
const OPS: &str = "ops-token-0123456789abcdef";
const SETTLE: Duration = Duration::from_secs(10);

/// A server with auth on (an admin, a reader and a `ci` token limited to backend `a`), two demo backends `a` and
/// `b`, and a function on each.
async fn guarded_server(dir: &TestDir) -> TestServer {
    let config_file = dir.path().join("dashboard.toml");
    std::fs::write(
        &config_file,
        r#"
        [[backends]]
        name = "a"
        kind = "demo"

        [[backends]]
        name = "b"
        kind = "demo"

        [[functions]]
        name = "on-a"
        backend = "a"

        [[functions]]
        name = "on-b"
        backend = "b"
        "#,
    )
    .expect("the config file is written");
    server_with(|config| {
        config.config_file = Some(config_file);
        config.auth_tokens = vec![
            TokenSpec::from_secret("root", ADMIN, Scope::Admin),
            TokenSpec::from_secret("viewer", READER, Scope::Read),
            TokenSpec {
                backends: Some(vec!["a".into()]),
                ..TokenSpec::from_secret("ci", CI, Scope::Trigger)
            },
            TokenSpec {
                backends: Some(vec!["a".into()]),
                ..TokenSpec::from_secret("ops", OPS, Scope::Admin)
            },
        ];
    })
    .await
}

/// A route's method as the client spells it (actix-web and reqwest use different versions of `http`).
fn method_of(route: &RouteInfo) -> Method {
    Method::from_bytes(route.method.as_str().as_bytes()).expect("a standard method")
}

/// A route's path with its parameters filled in: an approval's routes with `approval_id`, the others' `{id}` with
/// `execution_id`.
fn concrete(path: &str, execution_id: &str, approval_id: &str, schedule_id: &str) -> String {
    let id = if path.contains("/approvals/") {
        approval_id
    } else if path.contains("/schedules/") {
        schedule_id
    } else {
        execution_id
    };
    path.replace("{key}", "on-a").replace("{id}", id).replace("{path:.*}", "app.css")
}

/// Opens a route and reads only the head of the answer: the streams never end by themselves.
async fn status_of(server: &TestServer, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = not_following().request(method.clone(), format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if *method != Method::GET {
        request = if path.starts_with("/api/") {
            request.json(&json!({}))
        } else {
            request.header("Content-Type", "application/x-www-form-urlencoded").body("x=")
        };
    }
    let response = request.send().await.expect("the server answers");
    let content_type =
        response.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    (response.status().as_u16(), content_type)
}

/// The `WWW-Authenticate` header of the answer to a request without a token.
async fn www_authenticate(server: &TestServer, method: &Method, path: &str) -> Option<String> {
    let mut request = not_following().request(method.clone(), format!("{}{path}", server.url));
    if *method != Method::GET {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("the server answers");
    response.headers().get("www-authenticate").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_no_token_and_serves_a_valid_one() {
    let dir = TestDir::new("auth-routes");
    let server = guarded_server(&dir).await;
    // The run asks one approval, which the function's policy (`auto`) approves: an approval for its routes.
    let body = json!({"function": "on-a", "input": {"approvals": 1}});
    let triggered = server.call(Method::POST, "/api/executions", Some(ADMIN), Some(body)).await;
    assert_eq!(triggered.status, 202, "{:?}", triggered.body);
    let id = triggered.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(triggered.body["triggered_by"], "root", "the token's name is recorded");
    server.wait_for_with(&id, "succeeded", ADMIN).await;
    let approvals = server
        .call(Method::GET, &format!("/api/approvals?status=all&execution={id}"), Some(ADMIN), None)
        .await;
    let approval_id = approvals.body["items"][0]["id"].as_str().expect("an approval").to_owned();

    // A disabled schedule of the function, for the schedules' routes.
    let body = json!({"function": "on-a", "cron": "0 3 * * *", "enabled": false});
    let scheduled = server.call(Method::POST, "/api/schedules", Some(ADMIN), Some(body)).await;
    assert_eq!(scheduled.status, 201, "{:?}", scheduled.body);
    let schedule_id = scheduled.body["id"].as_str().expect("an id").to_owned();

    let routes = table();
    assert!(routes.len() > 30, "the table lists the routes: {}", routes.len());
    for route in &routes {
        let path = concrete(route.path, &id, &approval_id, &schedule_id);
        let (status, content_type) = status_of(&server, &method_of(route), &path, None).await;
        match route.access {
            Access::Public if method_of(route) == Method::GET => {
                assert_eq!(status, 200, "GET {path} is public")
            }
            Access::Public => {}
            _ => {
                assert_eq!(status, 401, "{} {path} without a token", route.method);
                if route.is_api() {
                    let challenge = www_authenticate(&server, &method_of(route), &path).await;
                    assert_eq!(
                        challenge.as_deref(),
                        Some("Bearer"),
                        "{} {path}: RFC 6750's challenge",
                        route.method
                    );
                }
                let expected = if route.is_api() { "application/json" } else { "text/html" };
                assert!(content_type.starts_with(expected), "{} {path}: {content_type}", route.method);
            }
        }
        // A wrong user token is 401; a callback cannot tell a wrong token from another execution's: 403.
        let (status, _) = status_of(&server, &method_of(route), &path, Some("not-a-token-of-ours")).await;
        match route.access {
            Access::Public => {}
            Access::Callback => assert_eq!(status, 403, "{} {path} with a wrong token", route.method),
            Access::Scope(_) => assert_eq!(status, 401, "{} {path} with a wrong token", route.method),
        }
    }
    // With the admin token: every read answers 200 (204 for a diff the execution does not have), then every write is let through (whatever the handler then
    // says of an empty body). Reads go first, since the writes delete the function the paths name.
    let (reads, writes): (Vec<_>, Vec<_>) = routes
        .iter()
        .filter(|route| matches!(route.access, Access::Scope(_)))
        .partition(|route| method_of(route) == Method::GET);
    for route in reads.into_iter().chain(writes) {
        let path = concrete(route.path, &id, &approval_id, &schedule_id);
        let (status, _) = status_of(&server, &method_of(route), &path, Some(ADMIN)).await;
        assert!(
            !matches!(status, 401 | 403) && status < 500,
            "{} {path} with the admin token answered {status}",
            route.method
        );
        if method_of(route) == Method::GET {
            let expected = if route.path.ends_with("/diff") { 204 } else { 200 };
            assert_eq!(status, expected, "GET {path} with the admin token");
        }
    }
    assert_eq!(status_of(&server, &Method::GET, "/healthz", None).await.0, 200, "/healthz stays open");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_backend_grants_hold() {
    let dir = TestDir::new("auth-scopes");
    let server = guarded_server(&dir).await;
    let trigger = |function: &str, backend: Option<&str>| {
        let mut body = json!({"function": function});
        if let Some(backend) = backend {
            body["backend"] = json!(backend);
        }
        body
    };
    // A reader sees everything and changes nothing.
    assert_eq!(server.call(Method::GET, "/api/executions", Some(READER), None).await.status, 200);
    let refused =
        server.call(Method::POST, "/api/executions", Some(READER), Some(trigger("on-a", None))).await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"), "{:?}", refused.body);
    let refused = server
        .call(Method::POST, "/api/functions", Some(READER), Some(json!({"name": "x", "backend": "a"})))
        .await;
    assert_eq!(refused.status, 403);

    // The ci token triggers on a, not on b, not even by naming b in the body.
    let on_a = server.call(Method::POST, "/api/executions", Some(CI), Some(trigger("on-a", None))).await;
    assert_eq!(on_a.status, 202, "{:?}", on_a.body);
    assert_eq!(on_a.body["triggered_by"], "ci");
    let on_b = server.call(Method::POST, "/api/executions", Some(CI), Some(trigger("on-b", None))).await;
    assert_eq!((on_b.status, on_b.code()), (403, "forbidden"), "{:?}", on_b.body);
    assert_eq!(on_b.body["error"]["details"]["backend"], "b");
    let overridden =
        server.call(Method::POST, "/api/executions", Some(CI), Some(trigger("on-a", Some("b")))).await;
    assert_eq!((overridden.status, overridden.code()), (403, "forbidden"), "{:?}", overridden.body);
    // Nor may it change functions, cancel or retry what runs on b.
    let replaced = server
        .call(Method::PUT, "/api/functions/on-a", Some(CI), Some(json!({"name": "on-a", "backend": "b"})))
        .await;
    assert_eq!(replaced.status, 403);
    let b_run = server.call(Method::POST, "/api/executions", Some(ADMIN), Some(trigger("on-b", None))).await;
    let b_id = b_run.body["id"].as_str().expect("an id").to_owned();
    server.wait_for_with(&b_id, "succeeded", ADMIN).await;
    let retried = server.call(Method::POST, &format!("/api/executions/{b_id}/retry"), Some(CI), None).await;
    assert_eq!(retried.status, 403, "{:?}", retried.body);
    let cancelled =
        server.call(Method::POST, &format!("/api/executions/{b_id}/cancel"), Some(CI), None).await;
    assert_eq!(cancelled.status, 403, "{:?}", cancelled.body);

    // An admin token limited to a changes only functions on a: not one on b, nor one moved from a to b.
    let function = |name: &str, backend: &str| json!({"name": name, "backend": backend});
    let call =
        |method: Method, path: &'static str, body: Option<Value>| server.call(method, path, Some(OPS), body);
    assert_eq!(call(Method::POST, "/api/functions", Some(function("new-on-b", "b"))).await.status, 403);
    assert_eq!(call(Method::PUT, "/api/functions/on-b", Some(function("on-b", "b"))).await.status, 403);
    assert_eq!(call(Method::PUT, "/api/functions/on-a", Some(function("on-a", "b"))).await.status, 403);
    assert_eq!(call(Method::DELETE, "/api/functions/on-b", None).await.status, 403);
    let described = json!({"name": "on-a", "backend": "a", "description": "changed by ops"});
    assert_eq!(call(Method::PUT, "/api/functions/on-a", Some(described)).await.status, 200);
    assert_eq!(call(Method::POST, "/api/functions", Some(function("new-on-a", "a"))).await.status, 201);
    let mut ops = Browser::open(&server.url, Some(OPS)).await;
    assert_eq!(ops.post_form("/functions/on-b/delete", &[]).await.status, 403);
    assert_eq!(
        server.call(Method::GET, "/api/functions/on-b", Some(READER), None).await.status,
        200,
        "still there"
    );

    // The same through the pages: a signed-in reader's form post is refused, the ci session's on b too.
    let mut reader = Browser::open(&server.url, Some(READER)).await;
    let page = reader.get("/functions/on-a").await;
    assert!(!page.text().contains(">Trigger</button>"), "a reader is offered no trigger button");
    assert_eq!(
        reader.post_form("/functions/on-a/trigger", &[("mode", "json"), ("input", "{}")]).await.status,
        403
    );
    let mut ci = Browser::open(&server.url, Some(CI)).await;
    assert_eq!(
        ci.post_form("/functions/on-a/trigger", &[("mode", "json"), ("input", "{}")]).await.status,
        303
    );
    let on_b = ci.post_form("/functions/on-b/trigger", &[("mode", "json"), ("input", "{}")]).await;
    assert_eq!(on_b.status, 403, "{:?}", on_b.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_count_what_the_token_may_not_do_as_refused() {
    let dir = TestDir::new("auth-bulk");
    let server = guarded_server(&dir).await;
    let hanging = json!({"function": "on-b", "input": {"steps": 1, "hang": true}});
    let on_b = server.call(Method::POST, "/api/executions", Some(ADMIN), Some(hanging)).await;
    let id = on_b.body["id"].as_str().expect("an id").to_owned();
    server.wait_for_with(&id, "running", ADMIN).await;

    let mut ci = Browser::open(&server.url, Some(CI)).await;
    let fields = [("action", "cancel"), ("back", "/executions"), ("ids", id.as_str())];
    let posted = ci.post_form("/executions/bulk", &fields).await;
    assert_eq!(posted.status, 303);
    assert_eq!(posted.location(), "/executions?bulk=cancel&done=0&skipped=0&failed=0&refused=1");
    let list = ci.get(posted.location()).await;
    assert!(list.text().contains("refused 1 that you may not cancel"), "the list says so");
    let execution = server.call(Method::GET, &format!("/api/executions/{id}"), Some(ADMIN), None).await;
    assert_eq!(execution.body["status"], "running", "the refused cancel did nothing");

    let cancelled =
        server.call(Method::POST, &format!("/api/executions/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(cancelled.status, 202);
    server.wait_for_with(&id, "cancelled", ADMIN).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_session_is_a_strict_http_only_cookie_and_its_forms_need_the_csrf_token() {
    let dir = TestDir::new("auth-session");
    let server = guarded_server(&dir).await;
    let mut browser = Browser::new(&server.url);
    let wrong = browser.post_form_as_is("/login", &[("token", "guess"), ("next", "/")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(browser.post_form_as_is("/login", &[("token", ""), ("next", "/")]).await.status, 401);
    assert!(wrong.text().contains("That token is not valid."));
    let signed_in =
        browser.post_form_as_is("/login", &[("token", ADMIN), ("next", "/executions?status=failed")]).await;
    assert_eq!((signed_in.status, signed_in.location()), (303, "/executions?status=failed"));
    let cookie = signed_in.headers["set-cookie"].to_str().expect("ASCII").to_owned();
    assert!(cookie.starts_with("agent_dashboard_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "the session cookie lacks {flag}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on 127.0.0.1: {cookie}");

    // Behind a proxy that says the browser used HTTPS, the cookie is Secure.
    let proxied =
        server.form_post("/login", &[("token", ADMIN), ("next", "/")]).header("X-Forwarded-Proto", "https");
    let proxied = answer(proxied).await;
    assert!(proxied.headers["set-cookie"].to_str().expect("ASCII").contains("Secure"));

    let mut session = Browser::open(&server.url, Some(ADMIN)).await;
    let page = session.get("/").await;
    assert!(
        page.text().contains("root") && page.text().contains("Sign out"),
        "the header names who signed in"
    );

    // A form post without the CSRF token, with a stale one, or from another site is refused; with it, it works.
    let fields = [("mode", "json"), ("input", "{}")];
    let path = "/functions/on-a/trigger";
    assert_eq!(session.post_form_as_is(path, &fields).await.status, 403);
    let stale = [("mode", "json"), ("input", "{}"), ("csrf_token", &"0".repeat(64))];
    assert_eq!(session.post_form_as_is(path, &stale).await.status, 403);
    let cross_site = server
        .form_post(path, &[("mode", "json"), ("input", "{}"), ("csrf_token", session.csrf.as_str())])
        .header("Cookie", session.cookie.clone())
        .header("Origin", "https://evil.example");
    let cross_site = answer(cross_site).await;
    assert_eq!(cross_site.status, 403, "{:?}", cross_site.body);
    let posted = session.post_form(path, &fields).await;
    assert_eq!(posted.status, 303, "{:?}", posted.body);

    // An API write with the session cookie needs the token in a header.
    let api = |csrf: Option<&str>| {
        let mut request = server
            .client
            .post(format!("{}/api/executions", server.url))
            .header("Cookie", session.cookie.clone())
            .json(&json!({"function": "on-a"}));
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        answer(request)
    };
    assert_eq!(api(None).await.status, 403);
    assert_eq!(api(Some(&session.csrf)).await.status, 202);

    // Signing out ends the session: its cookie no longer opens a page.
    let old_cookie = session.cookie.clone();
    assert_eq!(
        answer(not_following().get(format!("{}/", server.url)).header("Cookie", old_cookie.clone()))
            .await
            .status,
        200
    );
    let signed_out = session.post_form("/logout", &[]).await;
    assert_eq!((signed_out.status, signed_out.location()), (303, "/login"));
    let after = answer(server.client.get(format!("{}/", server.url)).header("Cookie", old_cookie)).await;
    assert_eq!(after.status, 401);
    assert!(after.text().contains("name=\"token\""), "the login form in place of the page");
    server.stop().await;
}

/// A client that reports redirects instead of following them.
fn not_following() -> reqwest::Client {
    common::client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client")
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().and_then(|pair| pair.split_once('=')).map_or("", |(_, value)| value)
}

/// With auth off, the forms still carry a CSRF token (a double-submit cookie), so another site cannot post them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_off_forms_still_need_the_csrf_token() {
    let server = common::server().await;
    let mut browser = Browser::open(&server.url, None).await;
    let path = "/functions/hello-agent/trigger";
    let fields = [("mode", "json"), ("input", "{}")];
    assert_eq!(browser.post_form_as_is(path, &fields).await.status, 403);
    assert_eq!(browser.post_form(path, &fields).await.status, 303);
    // A cookie planted by another site, repeated in the form, is no token: the token is the server's HMAC of it.
    let planted = "a".repeat(64);
    let mut forger = Browser::new(&server.url);
    forger.cookie = format!("agent_dashboard_csrf={planted}");
    let forged = [("mode", "json"), ("input", "{}"), ("csrf_token", planted.as_str())];
    assert_eq!(forger.post_form_as_is(path, &forged).await.status, 403);
    let cross_site =
        server.client.post(format!("{}/api/executions", server.url)).header("Sec-Fetch-Site", "cross-site");
    let cross_site = answer(cross_site.json(&json!({"function": "hello-agent"}))).await;
    assert_eq!((cross_site.status, cross_site.code()), (403, "cross-site-request"));
    // A script or curl (no Origin, no Sec-Fetch-Site) uses the API as before.
    assert_eq!(server.post("/api/executions", json!({"function": "hello-agent"})).await.status, 202);
    // A name that is not this machine's is refused (DNS rebinding), even for reads; localhost and IPs are fine.
    let port = server.url.rsplit(':').next().expect("a port").to_owned();
    for (host, expected) in [
        (format!("rebound.evil.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
    ] {
        let read =
            answer(server.client.get(format!("{}/api/functions", server.url)).header("Host", &host)).await;
        assert_eq!(read.status, expected, "Host: {host}");
        let health = answer(server.client.get(format!("{}/healthz", server.url)).header("Host", &host)).await;
        assert_eq!(health.status, 200, "the health check answers any name: {host}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_keep_their_own_tokens_when_auth_is_on() {
    let dir = TestDir::new("auth-callbacks");
    let server = guarded_server(&dir).await;
    let hang = json!({"function": "on-a", "input": {"hang": true}});
    let first = server.call(Method::POST, "/api/executions", Some(ADMIN), Some(hang.clone())).await;
    let second = server.call(Method::POST, "/api/executions", Some(ADMIN), Some(hang)).await;
    let (first, second) = (first.body["id"].as_str().expect("id"), second.body["id"].as_str().expect("id"));
    server.wait_for_with(first, "running", ADMIN).await;
    let token = server.dashboard().callback_token(first.parse().expect("an execution id"));
    let lines = json!({"lines": [{"message": "from the agent"}]});
    let own = server
        .call(Method::POST, &format!("/api/executions/{first}/logs"), Some(&token), Some(lines.clone()))
        .await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let foreign = server
        .call(Method::POST, &format!("/api/executions/{second}/logs"), Some(&token), Some(lines.clone()))
        .await;
    assert_eq!(foreign.status, 403);
    let user =
        server.call(Method::POST, &format!("/api/executions/{first}/logs"), Some(ADMIN), Some(lines)).await;
    assert_eq!(user.status, 403, "a user's token is not a callback token");
    for id in [first, second] {
        server.call(Method::POST, &format!("/api/executions/{id}/cancel"), Some(ADMIN), None).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_log() {
    let dir = TestDir::new("auth-log");
    let secret = "log-secret-token-0123456789abcdef";
    let wrong = "wrong-secret-token-0123456789abcdef";
    let server = BinaryServer::start(
        &dir,
        &[
            ("DASHBOARD_STORE", "memory".into()),
            ("DASHBOARD_AUTH_TOKEN", secret.into()),
            ("RUST_LOG", "debug".into()),
        ],
    )
    .await;
    let with =
        |token: &str, path: &str| server.client.get(format!("{}{path}", server.url)).bearer_auth(token);
    assert_eq!(server.send(with(secret, "/api/functions")).await.status, 200);
    assert_eq!(server.send(with(wrong, "/api/functions?token=x")).await.status, 401);
    let login = |token: &str| {
        not_following()
            .post(format!("{}/login", server.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::form(&[("token", token)]))
    };
    assert_eq!(server.send(login(wrong)).await.status, 401);
    let signed_in = server.send(login(secret)).await;
    assert_eq!(signed_in.status, 303);
    let session = cookie_value(signed_in.headers["set-cookie"].to_str().expect("ASCII")).to_owned();
    let triggered =
        server.post_with_token("/api/executions", secret, json!({"function": "hello-agent"})).await;
    assert_eq!(triggered.status, 202);
    let log = server.log();
    assert!(log.contains("login: admin"), "the log says who signed in:\n{log}");
    for text in [secret, wrong, session.as_str()] {
        assert!(!log.contains(text), "{text:?} appeared in the server log");
    }
}

impl TestServer {
    /// Sends a request with a bearer token and a JSON body, when given.
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request).await
    }

    /// A form post that does not follow the redirect (no cookie, no CSRF token unless among the fields).
    fn form_post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        not_following()
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::form(fields))
    }

    /// Polls an execution with a token until it has `status`.
    async fn wait_for_with(&self, id: &str, status: &str, token: &str) -> Value {
        common::poll_status(
            |path| async move { self.call(Method::GET, &path, Some(token), None).await },
            id,
            status,
            SETTLE,
        )
        .await
    }
}

/// Every answer — a page, an API answer, a refusal — carries the security headers; the policy allows no inline script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let dir = TestDir::new("auth-headers");
    let server = guarded_server(&dir).await;
    for (path, token, status) in [
        ("/", Some(ADMIN), 200),
        ("/api/functions", Some(ADMIN), 200),
        ("/api/functions", None, 401),
        ("/", None, 401),
    ] {
        let answer = server.call(Method::GET, path, token, None).await;
        assert_eq!(answer.status, status, "{path}");
        let header =
            |name: &str| answer.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        let policy = header("content-security-policy");
        for directive in
            ["script-src 'self'", "frame-ancestors 'none'", "default-src 'self'", "form-action 'self'"]
        {
            assert!(policy.contains(directive), "{path}: {policy:?} lacks {directive}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{path}: {policy}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
    server.stop().await;
}
