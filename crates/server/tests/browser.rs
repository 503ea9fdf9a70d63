//! The pages in a real browser: headless Chromium driven through chromedriver (WebDriver) against the real server.
//!
//! It creates a function in the builder, triggers it from the generated form, watches the status page reach
//! `succeeded` with log lines arriving without a reload, checks that a log line of markup is shown as text, and
//! cancels a hanging execution from its page; and that the transcript of an agent's run (a message, a command, a file
//! change) is shown in order, with an item that arrives later added without a reload. Skipped with a printed reason when `chromedriver` is not on PATH,
//! unless `DASHBOARD_REQUIRE_BROWSER=1`. With `DASHBOARD_SCREENSHOTS=1` it also saves `docs/screenshots/*.png`.

#![allow(clippy::print_stdout)] // The skip reason is for the person running the tests.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashboard_backend_api::{Backend, BackendError, Principal, Readiness, RunContext, RunOutcome};
use dashboard_core::{
    FileChange, FileChangeKind, FunctionSpec, ItemBody, ItemStatus, MessageRole, NewItem, PlanEntry,
};
use dashboard_engine::Dashboard;
use dashboard_store::MemoryStore;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["text"],
  "properties": {
    "text": {"type": "string", "description": "What to echo"},
    "steps": {"type": "integer", "default": 3},
    "delay_ms": {"type": "integer", "default": 300},
    "mood": {"enum": ["calm", "busy"], "default": "calm"},
    "hang": {"type": "boolean", "default": false}
  }
}"#;

/// Where a program is on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// A chromedriver child process and the browser's profile directory; both go away on drop.
struct Driver {
    child: Child,
    port: u16,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Asked to shut down, chromedriver closes the browsers it started (a test that failed half-way left its
        // session open); killed, it would leave them running.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let request = "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(request.as_bytes()).and_then(|()| stream.read(&mut [0; 256]));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    fn start(program: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let profile = std::env::temp_dir().join(format!("dashboard-browser-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        Driver { child, port, url: format!("http://127.0.0.1:{port}"), profile }
    }

    /// A browser session, once chromedriver answers.
    async fn session(&self) -> Client {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,900".to_owned(),
        ];
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let mut options = json!({"args": args});
        if let Some(chromium) = on_path("chromium") {
            options["binary"] = Value::from(chromium.display().to_string());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let started = Instant::now();
        loop {
            // A connect that hangs (chromedriver accepted, but no browser came up) is tried again, not waited on.
            let mut builder = ClientBuilder::new(HttpConnector::new());
            let connect = builder.capabilities(capabilities.clone()).connect(&self.url);
            let connected = match tokio::time::timeout(Duration::from_secs(30), connect).await {
                Ok(connected) => connected.map_err(|error| error.to_string()),
                Err(_) => Err("chromedriver took over 30 s to start a browser".to_owned()),
            };
            match connected {
                Ok(client) => return client,
                Err(error) if started.elapsed() < Duration::from_secs(60) => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no browser session from chromedriver at {}: {error}", self.url),
            }
        }
    }
}

/// Runs `script` (a function body returning a value) until it returns `true`, for at most `limit`.
async fn wait_until(browser: &Client, what: &str, script: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let answer = browser.execute(script, Vec::new()).await.expect("the script runs");
        if answer == Value::Bool(true) {
            return;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?} (last answer {answer})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser.find(Locator::Css(css)).await.expect(css).text().await.expect("its text")
}

/// Sets a text field's value as typed (through the DOM, which is quicker than keystrokes for long JSON).
async fn fill(browser: &Client, css: &str, value: &str) {
    let field = browser.find(Locator::Css(css)).await.expect(css);
    let field = serde_json::to_value(&field).expect("an element reference");
    browser
        .execute("arguments[0].value = arguments[1];", vec![field, Value::from(value)])
        .await
        .expect("the field takes the value");
}

async fn click(browser: &Client, css: &str) {
    browser.find(Locator::Css(css)).await.expect(css).click().await.expect("the click lands");
}

/// The execution id of the status page the browser is on.
async fn execution_id(browser: &Client) -> String {
    let url = browser.current_url().await.expect("a URL");
    let id = url.path().strip_prefix("/executions/").expect("on a status page").to_owned();
    assert!(!id.is_empty() && !id.contains('/'), "{url}");
    id
}

/// Saves a screenshot of `path` at `width` when `DASHBOARD_SCREENSHOTS=1`.
async fn screenshot(browser: &Client, base: &str, path: &str, name: &str) {
    if std::env::var("DASHBOARD_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    browser.goto(&format!("{base}{path}")).await.expect("the page loads");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is saved");
}

/// The browser tests take turns: two Chromiums at once on a small machine make both slow enough to time out.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// chromedriver, or `None` (and a printed reason) when the test should be skipped.
fn chromedriver() -> Option<PathBuf> {
    let found = on_path("chromedriver");
    if found.is_none() {
        assert!(
            std::env::var("DASHBOARD_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "DASHBOARD_REQUIRE_BROWSER=1 but chromedriver is not on PATH"
        );
        println!(
            "skipped: chromedriver is not on PATH (install chromium and chromium-driver to run this test)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_is_built_triggered_followed_and_cancelled_in_the_browser() {
    let Some(chromedriver) = chromedriver() else {
        return;
    };
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let driver = Driver::start(&chromedriver);
    let browser = driver.session().await;
    let server = common::server().await;
    let base = server.url.clone();
    let limit = Duration::from_secs(15);

    // The builder: a function whose prompt echoes its input; the demo backend logs the prompt as an agent line.
    browser.goto(&format!("{base}/functions/new")).await.expect("the builder loads");
    fill(&browser, "#f-name", "echo").await;
    fill(&browser, "#f-description", "Echoes its text.").await;
    fill(&browser, "#f-prompt", "{{ input.text }}").await;
    fill(&browser, "#f-schema", SCHEMA).await;
    fill(&browser, "#f-tags", "browser, test").await;
    click(&browser, "form button[type=submit]").await;
    wait_until(&browser, "the function page", "return location.pathname === '/functions/echo';", limit).await;

    // The generated form: fields from the schema, with the defaults filled in.
    let steps = browser.find(Locator::Css("#f-input-steps")).await.expect("a steps field");
    assert_eq!(steps.prop("value").await.expect("a value").as_deref(), Some("3"));
    fill(&browser, "#f-input-text", HOSTILE).await;
    click(&browser, "[data-trigger-form] button[type=submit]").await;
    wait_until(&browser, "the status page", "return location.pathname.startsWith('/executions/');", limit)
        .await;
    let id = execution_id(&browser).await;
    // A mark on the window survives only as long as the page is not reloaded.
    browser.execute("window.notReloaded = true;", Vec::new()).await.expect("the script runs");
    wait_until(
        &browser,
        "succeeded with its log lines",
        "return document.querySelector('[data-execution-id]').dataset.status === 'succeeded' \
         && document.querySelectorAll('[data-log] .log-line').length >= 4;",
        limit,
    )
    .await;
    wait_until(&browser, "no reload", "return window.notReloaded === true;", limit).await;
    let transport = browser.execute("return document.documentElement.dataset.live;", Vec::new()).await;
    assert_eq!(transport.expect("the script runs"), "stream", "the status page did not use the SSE stream");
    assert_eq!(text_of(&browser, "[data-status-badge]").await, "succeeded");
    let log = text_of(&browser, "[data-log]").await;
    assert!(log.contains(&format!("prompt: {HOSTILE}")), "the markup is not shown as text: {log}");
    let images = browser.find_all(Locator::Css("[data-log] img")).await.expect("a query");
    assert!(images.is_empty(), "a log line became an <img>");
    assert!(browser.get_alert_text().await.is_err(), "a script ran from a log line");
    let api = server.get(&format!("/api/executions/{id}")).await;
    assert_eq!(
        api.body["input"],
        json!({"text": HOSTILE, "steps": 3, "delay_ms": 300, "mood": "calm", "hang": false})
    );

    // ANSI colours become classed spans, on lines the server rendered and on lines that arrive live.
    let coloured = server
        .trigger("echo", json!({"text": "\u{1b}[1;32mgreen\u{1b}[0m <b>plain</b>", "delay_ms": 0}))
        .await;
    server.wait_for(&coloured, "succeeded", limit).await;
    browser.goto(&format!("{base}/executions/{coloured}")).await.expect("the status page loads");
    wait_until(
        &browser,
        "a green span",
        "return !!document.querySelector('[data-log] .ansi-green.ansi-bold');",
        limit,
    )
    .await;
    assert_eq!(text_of(&browser, "[data-log] .ansi-green").await, "green");
    assert!(text_of(&browser, "[data-log]").await.contains("green <b>plain</b>"));

    // The tail follows new lines, stops when scrolled up, and resumes with the Follow button.
    let long = server.trigger("hello-agent", json!({"steps": 200, "delay_ms": 25})).await;
    browser.goto(&format!("{base}/executions/{long}")).await.expect("the status page loads");
    let lines = "document.querySelectorAll('[data-log] .log-line').length";
    let log = "document.querySelector('[data-log]')";
    let at_bottom = format!("({log}.scrollHeight - {log}.scrollTop - {log}.clientHeight < 24)");
    wait_until(&browser, "a log taller than its box", &format!("return {lines} > 40 && {at_bottom};"), limit)
        .await;
    let seen = browser.execute(&format!("{log}.scrollTop = 0; return {lines};"), Vec::new()).await;
    let seen = seen.expect("the script runs").as_u64().unwrap_or(0);
    wait_until(&browser, "more lines", &format!("return {lines} > {seen} + 10;"), limit).await;
    let state = text_of(&browser, "[data-field=log-state]").await;
    assert!(state.starts_with("paused"), "{state}");
    let top =
        browser.execute(&format!("return {log}.scrollTop;"), Vec::new()).await.expect("the script runs");
    assert_eq!(top, json!(0), "the tail moved while the user was reading");
    click(&browser, "[data-follow]").await;
    wait_until(&browser, "following again", &format!("return {at_bottom};"), limit).await;
    assert_eq!(text_of(&browser, "[data-field=log-state]").await, "following…");
    server.post(&format!("/api/executions/{long}/cancel"), json!({})).await;

    // A hanging execution, cancelled from its page.
    browser.goto(&format!("{base}/functions/echo")).await.expect("the function page loads");
    fill(&browser, "#f-input-text", "wait forever").await;
    click(&browser, "#f-input-hang").await;
    // Raw JSON mode starts from what the fields say, and is what gets sent.
    click(&browser, "#mode-json").await;
    let raw = browser.find(Locator::Css("#trigger-input")).await.expect("the raw JSON box");
    let raw: Value = serde_json::from_str(&raw.prop("value").await.expect("a value").unwrap_or_default())
        .expect("the raw JSON box holds JSON");
    let expected = json!({"text": "wait forever", "steps": 3, "delay_ms": 300, "mood": "calm", "hang": true});
    assert_eq!(raw, expected);
    // And back: the fields take what the JSON says.
    let edited = r#"{"text": "from json", "steps": 7, "delay_ms": 300, "mood": "busy", "hang": true}"#;
    fill(&browser, "#trigger-input", edited).await;
    click(&browser, "#mode-fields").await;
    let value_of = |css: &'static str| {
        let browser = browser.clone();
        async move {
            let field = browser.find(Locator::Css(css)).await.expect(css);
            field.prop("value").await.expect("a value").unwrap_or_default()
        }
    };
    assert_eq!(value_of("#f-input-text").await, "from json");
    assert_eq!(value_of("#f-input-steps").await, "7");
    assert_eq!(value_of("#f-input-mood").await, "busy");
    fill(&browser, "#f-input-text", "wait forever").await;
    fill(&browser, "#f-input-steps", "3").await;
    fill(&browser, "#f-input-mood", "calm").await;
    click(&browser, "#mode-json").await;
    click(&browser, "[data-trigger-form] button[type=submit]").await;
    wait_until(&browser, "the status page", "return location.pathname.startsWith('/executions/');", limit)
        .await;
    let hanging = execution_id(&browser).await;
    assert_ne!(hanging, id);
    // The same page kept live by polling, the fallback when the stream cannot be used.
    browser.goto(&format!("{base}/executions/{hanging}?live=poll")).await.expect("the status page loads");
    wait_until(
        &browser,
        "running",
        "return document.querySelector('[data-execution-id]').dataset.status === 'running' \
         && document.documentElement.dataset.live === 'polling';",
        limit,
    )
    .await;
    click(&browser, "[data-action=cancel] button").await;
    wait_until(
        &browser,
        "cancelled",
        "return document.querySelector('[data-execution-id]').dataset.status === 'cancelled';",
        limit,
    )
    .await;
    let cancelled = server.get(&format!("/api/executions/{hanging}")).await.body;
    assert_eq!((&cancelled["status"], &cancelled["input"]), (&json!("cancelled"), &expected));

    if std::env::var("DASHBOARD_SCREENSHOTS").as_deref() == Ok("1") {
        // A little more history, so that the pictures show a list and a chart worth looking at.
        for n in 0..9 {
            let input =
                json!({"steps": 2 + n % 3, "delay_ms": 20, "fail": n % 4 == 3, "name": format!("run {n}")});
            server.trigger("hello-agent", input).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (path, name) in [
            ("/".to_owned(), "overview"),
            ("/functions/new".to_owned(), "function-builder"),
            ("/functions/echo".to_owned(), "function"),
            ("/executions".to_owned(), "executions"),
            (format!("/executions/{id}"), "execution"),
        ] {
            screenshot(&browser, &base, &path, name).await;
        }
        browser.set_window_size(390, 844).await.expect("a phone-sized window");
        screenshot(&browser, &base, &format!("/executions/{coloured}"), "execution-phone").await;
    }

    browser.close().await.expect("the session closes");
    server.stop().await;
    drop(driver);
    println!("browser test took {:?}", started.elapsed());
}

/// With a token configured: the browser is shown the login form, signs in, triggers with the session (its form
/// carries the CSRF token), sees who triggered, and signs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_triggering_and_signing_out_in_the_browser() {
    let Some(chromedriver) = chromedriver() else {
        return;
    };
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    const TOKEN: &str = "browser-token-0123456789abcdef";
    let driver = Driver::start(&chromedriver);
    let browser = driver.session().await;
    let server = common::server_with(|config| {
        config.auth_tokens = vec![dashboard_server::TokenSpec::from_secret(
            "alice",
            TOKEN,
            dashboard_backend_api::Scope::Trigger,
        )];
    })
    .await;
    let base = server.url.clone();
    let limit = Duration::from_secs(15);

    browser.goto(&format!("{base}/functions/hello-agent")).await.expect("the page loads");
    assert!(browser.find(Locator::Css("#login-token")).await.is_ok(), "the login form in place of the page");
    fill(&browser, "#login-token", TOKEN).await;
    click(&browser, ".login button[type=submit]").await;
    wait_until(
        &browser,
        "back on the page asked for",
        "return location.pathname === '/functions/hello-agent';",
        limit,
    )
    .await;
    // The new page's path shows before its document is parsed: wait for the header that says who signed in.
    wait_until(
        &browser,
        "the signed-in header",
        "return document.querySelector('.signed-in .hint') !== null;",
        limit,
    )
    .await;
    assert_eq!(text_of(&browser, ".signed-in .hint").await, "alice");
    let cookies = browser.execute("return document.cookie;", Vec::new()).await.expect("the script runs");
    assert_eq!(cookies, json!(""), "the session cookie is HttpOnly: scripts cannot read it");

    fill(&browser, "#trigger-input", r#"{"steps": 1, "delay_ms": 0}"#).await;
    click(&browser, "#mode-json").await;
    click(&browser, "[data-trigger-form] button[type=submit]").await;
    wait_until(&browser, "the status page", "return location.pathname.startsWith('/executions/');", limit)
        .await;
    wait_until(
        &browser,
        "succeeded",
        "return document.querySelector('[data-execution-id]').dataset.status === 'succeeded';",
        limit,
    )
    .await;
    let meta = text_of(&browser, ".meta").await;
    assert!(meta.contains("alice"), "the status page names who triggered: {meta}");

    click(&browser, ".signed-in button[type=submit]").await;
    wait_until(&browser, "signed out", "return location.pathname === '/login';", limit).await;
    browser.goto(&format!("{base}/")).await.expect("the page loads");
    assert!(browser.find(Locator::Css("#login-token")).await.is_ok(), "signed out: the login form again");

    browser.close().await.expect("the session closes");
    server.stop().await;
    drop(driver);
}

/// An agent that reports a transcript as Codex would: the prompt, a command (running, then done), a file change and
/// a message; then it waits until `release` is set, reports its plan, and ends. Input `note` is added to the message
/// and the plan.
struct ScriptedAgent {
    release: Arc<AtomicBool>,
}

type BoxedFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// The trait is declared with `async_trait`, which this crate does not depend on: its methods are written out as the
// macro expands them.
impl Backend for ScriptedAgent {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn check<'life0, 'async_trait>(&'life0 self) -> BoxedFuture<'async_trait, Readiness>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Readiness::ready("scripted") })
    }

    fn trigger<'life0, 'async_trait>(
        &'life0 self,
        run: RunContext,
    ) -> BoxedFuture<'async_trait, Result<RunOutcome, BackendError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let item = |id: &str, status, body| NewItem::new(id, status, body).expect("a valid item");
            let command = |output: &str, exit_code| ItemBody::Command {
                command: "cat greet.py".into(),
                cwd: Some("/work/app".into()),
                output: output.into(),
                exit_code,
            };
            let prompt = "Make the greeting friendlier".to_owned();
            run.item(item(
                "prompt",
                ItemStatus::Completed,
                ItemBody::Message { role: MessageRole::User, text: prompt },
            ))
            .await;
            run.item(item("cmd", ItemStatus::InProgress, command("", None))).await;
            let output = "def greet(name):\n    print(\"hi\", name)\n";
            run.item(item("cmd", ItemStatus::Completed, command(output, Some(0)))).await;
            let diff = "--- a/greet.py\n+++ b/greet.py\n@@ -1,2 +1,2 @@\n def greet(name):\n-    print(\"hi\", name)\n+    print(f\"Hello, {name}! Welcome back.\")\n";
            let changes = vec![
                FileChange { path: "greet.py".into(), kind: FileChangeKind::Update, diff: Some(diff.into()) },
                FileChange {
                    path: "CHANGELOG.md".into(),
                    kind: FileChangeKind::Add,
                    diff: Some("# Changes\n\n- A friendlier greeting.\n".into()),
                },
            ];
            run.item(item("edit", ItemStatus::Completed, ItemBody::FileChange { changes })).await;
            // `note` (markup, in the tests) goes into the reply and the last step of the plan.
            let note: String = run.input_field("note")?.unwrap_or_default();
            let text = format!("I made the greeting friendlier and noted it in CHANGELOG.md. {note}");
            run.item(item(
                "reply",
                ItemStatus::Completed,
                ItemBody::Message { role: MessageRole::Agent, text },
            ))
            .await;
            while !self.release.load(Ordering::SeqCst) {
                run.sleep(Duration::from_millis(20)).await?;
            }
            let entries = vec![
                PlanEntry { text: "Read greet.py".into(), done: true },
                PlanEntry { text: "Rewrite the greeting".into(), done: true },
                PlanEntry { text: format!("Run the tests {note}"), done: false },
            ];
            run.item(item("plan", ItemStatus::Completed, ItemBody::Plan { entries })).await;
            Ok(RunOutcome::Succeeded { output: json!({"summary": "greeting rewritten"}), usage: None })
        })
    }
}

/// The kinds of the transcript's items on the page, in order.
const TRANSCRIPT_KINDS: &str = "return [...document.querySelectorAll('[data-transcript] > .item')]\
     .map((node) => [...node.classList].find((name) => name.startsWith('item-') && name !== 'item-completed' \
     && name !== 'item-in_progress').slice(5)).join(' ');";

#[actix_web::test]
async fn the_transcript_shows_an_agents_work_in_order_and_takes_new_items_live() {
    let Some(chromedriver) = chromedriver() else {
        return;
    };
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let driver = Driver::start(&chromedriver);
    let browser = driver.session().await;
    let release = Arc::new(AtomicBool::new(false));
    let dashboard = Dashboard::builder()
        .store(Arc::new(MemoryStore::default()))
        .backend("scripted", ScriptedAgent { release: release.clone() })
        .build();
    dashboard
        .create_function(&Principal::anonymous(), FunctionSpec::new("greeter", "scripted"))
        .await
        .expect("a function");
    // The server's own policy, so that an inline style or script in the transcript would be refused here too.
    let csp =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'";
    let (base, handle) = common::mount(dashboard, Some(csp));
    let client = common::client();
    let limit = Duration::from_secs(15);

    // Streamed, with a clean text for the screenshot; then polled, with markup in an item rendered by the server (the
    // reply) and in one built by the script (the plan, arriving live).
    for (query, transport, note) in [("", "stream", ""), ("?live=poll", "polling", HOSTILE)] {
        release.store(false, Ordering::SeqCst);
        let trigger = json!({"function": "greeter", "input": {"note": note}});
        let triggered = common::answer(client.post(format!("{base}/api/executions")).json(&trigger)).await;
        assert_eq!(triggered.status, 202, "{}", triggered.body);
        let id = triggered.body["id"].as_str().expect("an id").to_owned();
        let started = Instant::now();
        while common::answer(client.get(format!("{base}/api/executions/{id}/items"))).await.body["items"]
            .as_array()
            .map_or(0, Vec::len)
            < 4
        {
            assert!(started.elapsed() < limit, "the agent's items were not stored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        browser.goto(&format!("{base}/executions/{id}{query}")).await.expect("the status page loads");
        browser.execute("window.notReloaded = true;", Vec::new()).await.expect("the script runs");
        let kinds = browser.execute(TRANSCRIPT_KINDS, Vec::new()).await.expect("the script runs");
        assert_eq!(kinds, json!("message command file_change message"), "in the order the agent worked");
        assert!(text_of(&browser, ".item-command .item-head").await.contains("exit 0"));
        assert_eq!(text_of(&browser, ".diff-add").await, "+    print(f\"Hello, {name}! Welcome back.\")");
        assert!(text_of(&browser, ".item-agent").await.ends_with(note), "agent text shown as text");
        let images = browser.find_all(Locator::Css("[data-transcript] img")).await.expect("a query");
        assert!(images.is_empty(), "an agent's message became an <img>");

        release.store(true, Ordering::SeqCst);
        wait_until(
            &browser,
            "the plan, live",
            "return document.querySelectorAll('[data-transcript] > .item').length === 5 \
             && document.querySelector('[data-transcript] > .item:last-child').matches('.item-plan') \
             && document.querySelector('[data-execution-id]').dataset.status === 'succeeded';",
            limit,
        )
        .await;
        wait_until(&browser, "no reload", "return window.notReloaded === true;", limit).await;
        let live = browser.execute("return document.documentElement.dataset.live;", Vec::new()).await;
        assert_eq!(live.expect("the script runs"), transport);
        assert_eq!(text_of(&browser, ".item-plan .item-summary").await, "2 of 3 done");
        assert_eq!(
            text_of(&browser, ".item-plan .plan-entry:last-child .plan-text").await,
            format!("Run the tests {note}").trim_end()
        );
        let images = browser.find_all(Locator::Css("[data-transcript] img")).await.expect("a query");
        assert!(images.is_empty(), "a live item became an <img>");
        assert!(browser.get_alert_text().await.is_err(), "a script ran from an item");

        // The log is one click away, without a script.
        click(&browser, "[data-view-tabs] a[href='?view=log']").await;
        wait_until(&browser, "the log view", "return !!document.querySelector('[data-log]');", limit).await;

        if transport == "stream" && std::env::var("DASHBOARD_SCREENSHOTS").as_deref() == Ok("1") {
            browser.goto(&format!("{base}/executions/{id}")).await.expect("the status page loads");
            click(&browser, ".item-command summary").await;
            browser
                .execute("document.querySelector('[data-view-tabs]').scrollIntoView();", Vec::new())
                .await
                .expect("the script runs");
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = browser.screenshot().await.expect("a screenshot");
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&dir).expect("the screenshots directory");
            std::fs::write(dir.join("transcript.png"), png).expect("the screenshot is saved");
        }
    }

    browser.close().await.expect("the session closes");
    common::stop_mounted(handle).await;
    drop(driver);
}

/// Approvals in the browser: the inbox shows a pending approval with its buttons and the header counts it; Approve
/// posts the form and comes back with a notice, and the inbox takes the agent's next request without a reload; the
/// status page shows both approvals in the transcript, and one decided meanwhile (over the API) turns approved there
/// live, its buttons gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_decided_in_the_inbox_and_followed_live_on_the_status_page() {
    let Some(chromedriver) = chromedriver() else {
        return;
    };
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let driver = Driver::start(&chromedriver);
    let browser = driver.session().await;
    let server = common::server().await;
    let base = server.url.clone();
    let limit = Duration::from_secs(15);
    server.create_function("careful", json!({"approval_policy": "ask"})).await;
    let id = server.trigger("careful", json!({"steps": 1, "approvals": 2, "items": true})).await;
    server.wait_for(&id, "waiting", limit).await;

    browser.goto(&format!("{base}/approvals")).await.expect("the inbox loads");
    let first = "[data-approval-list] .approval[data-approval-status='pending']";
    wait_until(
        &browser,
        "a pending approval",
        &format!("return !!document.querySelector(\"{first}\");"),
        limit,
    )
    .await;
    assert_eq!(text_of(&browser, &format!("{first} .approval-summary")).await, "demo --approved-step 1");
    assert_eq!(text_of(&browser, ".nav-count").await, "1", "the header counts it");
    screenshot(&browser, &base, "/approvals", "approvals").await;
    fill(&browser, &format!("{first} input[name='note']"), "looks safe").await;
    click(&browser, &format!("{first} button[value='approve']")).await;
    wait_until(&browser, "back on the inbox", "return location.search.startsWith('?decided=');", limit).await;
    assert!(text_of(&browser, ".notice").await.starts_with("Approved: demo --approved-step 1"));
    browser.execute("window.notReloaded = true;", Vec::new()).await.expect("the script runs");
    // The agent asks its second approval: the inbox shows it without a reload.
    wait_until(
        &browser,
        "the second approval, live",
        &format!(
            "return [...document.querySelectorAll(\"{first} .approval-summary\")].some((node) => \
             node.textContent === 'demo --approved-step 2') && window.notReloaded === true;"
        ),
        limit,
    )
    .await;

    // The status page: the first approved, the second pending with its buttons; decided elsewhere, it turns approved.
    browser.goto(&format!("{base}/executions/{id}")).await.expect("the status page loads");
    browser.execute("window.notReloaded = true;", Vec::new()).await.expect("the script runs");
    let cards = "[data-transcript] .approval";
    let statuses = format!(
        "return [...document.querySelectorAll('{cards}')].map((card) => card.dataset.approvalStatus).join(' ');"
    );
    wait_until(
        &browser,
        "both approvals",
        &format!("{} === 'approved pending';", statuses.trim_end_matches(';')),
        limit,
    )
    .await;
    assert!(
        text_of(&browser, &format!("{cards}[data-approval-status='approved']")).await.contains("looks safe")
    );
    assert_eq!(text_of(&browser, "[data-status-badge]").await, "waiting");
    let pending = server.get("/api/approvals").await;
    let second = pending.body["items"][0]["id"].as_str().expect("the second approval").to_owned();
    if std::env::var("DASHBOARD_SCREENSHOTS").as_deref() == Ok("1") {
        // The page as it is (no reload): the pending card in view.
        let card =
            format!("document.getElementById('approval-{second}').scrollIntoView({{block: 'center'}});");
        browser.execute(&card, Vec::new()).await.expect("the script runs");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = browser.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshots directory");
        std::fs::write(dir.join("approval-transcript.png"), png).expect("the screenshot is saved");
    }
    let decided = server.post(&format!("/api/approvals/{second}"), json!({"decision": "decline"})).await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    wait_until(
        &browser,
        "declined live, the run finished",
        &format!(
            "{} === 'approved declined' && !document.querySelector('{cards} form') \
             && document.querySelector('[data-execution-id]').dataset.status === 'succeeded' \
             && window.notReloaded === true;",
            statuses.trim_end_matches(';')
        ),
        limit,
    )
    .await;
    let declined = text_of(&browser, &format!("#approval-{second}")).await;
    assert!(declined.contains("declined by anonymous"), "{declined}");

    browser.close().await.expect("the session closes");
    server.stop().await;
    drop(driver);
}
