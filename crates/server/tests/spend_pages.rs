//! What a person sees of usage, cost and budgets, over HTTP: a run's cost (or why it has none) on its status page and
//! in the list, the overview's spend per day, a function's budgets with what is spent and left today, spend per
//! function and per token on `/metrics`, and the function form's budget fields.

mod common;

use std::time::Duration;

use common::{Browser, TestServer, server_with};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[backends]]
name = "demo"
kind = "demo"

[[functions]]
name = "spender"
backend = "demo"
daily_cost_usd = 5.0
max_cost_usd = 2.0

[[functions]]
name = "unpriced"
backend = "demo"
config = { model = "x" }

[[functions]]
name = "nameless"
backend = "demo"
"#;

/// A server with [`CONFIG`] (no `[[prices]]`: a run is priced only by its backend) and the folder of its file.
async fn set_up() -> (TestServer, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("dashboard.toml");
    std::fs::write(&path, CONFIG).expect("the config file");
    let server = server_with(|config| config.config_file = Some(path)).await;
    (server, dir)
}

/// A folder of the test's own, removed when dropped.
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("spend-pages-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).expect("a folder");
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `function` with `input` to success; the execution's id and its JSON.
async fn run(server: &TestServer, function: &str, input: Value) -> (String, Value) {
    let id = server.trigger(function, input).await;
    let execution = server.wait_for(&id, "succeeded", Duration::from_secs(30)).await;
    (id, execution)
}

/// A page's HTML; it must answer 200 and contain each of `expected`.
async fn page(server: &TestServer, path: &str, expected: &[&str]) -> String {
    let answer = server.get(path).await;
    assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    let html = answer.text().to_owned();
    for text in expected {
        assert!(html.contains(text), "{path} lacks {text:?}:\n{html}");
    }
    html
}

/// The value of the sample `series` (name and labels exactly as printed) on `/metrics`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Three steps of 10 cents: 30 cents, 3 × (12 + 34) = 138 tokens.
fn thirty_cents() -> Value {
    json!({"steps": 3, "delay_ms": 1, "cost_per_step_usd": 0.1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_cost_shows_on_its_page_the_list_the_overview_the_function_and_metrics() {
    let (server, _dir) = set_up().await;
    let (id, execution) = run(&server, "spender", thirty_cents()).await;
    assert!((execution["usage"]["cost_usd"].as_f64().expect("a cost") - 0.3).abs() < 1e-9);

    let status_page =
        page(&server, &format!("/executions/{id}"), &["Input tokens", "Output tokens", "$0.30"]).await;
    assert!(!status_page.contains("no price"), "a priced run has its price");

    page(&server, "/executions", &["data-field=\"cost\">$0.30</td>"]).await;

    page(
        &server,
        "/",
        &["Spend per day", "today $0.30 (138 tokens)", "data-spend-function=\"spender\"", "seg-spend-0"],
    )
    .await;

    let function_page = page(
        &server,
        "/functions/spender",
        &["data-budget=\"daily_cost_usd\"", "data-budget=\"max_cost_usd\""],
    )
    .await;
    let row = budget_row(&function_page, "daily_cost_usd");
    for figure in ["$5.00", "$0.30", "$4.70"] {
        assert!(row.contains(figure), "the daily budget's row lacks {figure}: {row}");
    }
    assert!(budget_row(&function_page, "max_cost_usd").contains("$2.00"), "the run's budget shows its limit");
    page(&server, "/functions/unpriced", &["No budget"]).await;

    let metrics = server.get("/metrics").await;
    let text = metrics.text();
    let spent = sample(text, r#"dashboard_spend_usd_today{function="spender"}"#).expect("spender's spend");
    assert!((spent - 0.3).abs() < 1e-9, "{text}");
    assert_eq!(sample(text, r#"dashboard_spend_tokens_today{function="spender"}"#), Some(138.0), "{text}");
    assert_eq!(
        sample(text, r#"dashboard_spend_usd_today{function="unpriced"}"#),
        Some(0.0),
        "every function has a line"
    );
    assert!(text.contains("# TYPE dashboard_spend_usd_today gauge"), "{text}");
    server.stop().await;
}

/// The `<tr>` of the budget `name` on a function page.
fn budget_row<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html.find(&format!("data-budget=\"{name}\"")).unwrap_or_else(|| panic!("no row of {name}"));
    let end = html[start..].find("</tr>").map_or(html.len(), |end| start + end);
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_a_price_say_why_and_draw_no_chart() {
    let (server, _dir) = set_up().await;
    let (id, execution) = run(&server, "unpriced", json!({"steps": 1, "delay_ms": 1})).await;
    assert_eq!((execution["usage"]["model"].as_str(), execution["usage"].get("cost_usd")), (Some("x"), None));

    page(
        &server,
        &format!("/executions/{id}"),
        &["no price for model x", "backends.md#usage-and-cost\">how cost is found</a>", "Input tokens"],
    )
    .await;
    let (nameless, _) = run(&server, "nameless", json!({"steps": 1, "delay_ms": 1})).await;
    page(&server, &format!("/executions/{nameless}"), &["no price: the model is not known"]).await;

    page(&server, "/executions", &["data-field=\"cost\"></td>"]).await;
    let overview = page(&server, "/", &["No execution of the last 14 days has a cost", "92 tokens"]).await;
    assert!(!overview.contains("data-spend-function"), "no chart without a cost");

    let metrics = server.get("/metrics").await;
    assert_eq!(sample(metrics.text(), r#"dashboard_spend_tokens_today{function="unpriced"}"#), Some(46.0));
    assert_eq!(sample(metrics.text(), r#"dashboard_spend_usd_today{function="unpriced"}"#), Some(0.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_form_round_trips_budgets_and_names_a_bad_one() {
    let (server, _dir) = set_up().await;
    let mut browser = Browser::open(&server.url, None).await;
    let budgets = [("max_cost_usd", "0.25"), ("daily_cost_usd", "$10"), ("daily_tokens", "5000")];
    let mut fields = vec![("name", "budgeted"), ("backend", "demo")];
    fields.extend(budgets);
    let created = browser.post_form("/functions", &fields).await;
    assert_eq!((created.status, created.location()), (303, "/functions/budgeted"), "{:?}", created.body);
    let function = server.get("/api/functions/budgeted").await.body;
    assert_eq!(
        (&function["max_cost_usd"], &function["daily_cost_usd"], &function["daily_tokens"]),
        (&json!(0.25), &json!(10.0), &json!(5000))
    );
    let edit = browser.get("/functions/budgeted/edit").await;
    for (name, value) in [("max_cost_usd", "0.25"), ("daily_cost_usd", "10"), ("daily_tokens", "5000")] {
        assert!(edit.text().contains(&format!("name=\"{name}\" inputmode")), "no field {name}");
        assert!(edit.text().contains(&format!("value=\"{value}\"")), "{name} does not come back as {value}");
    }

    let zero = [("name", "budgeted"), ("backend", "demo"), ("expected_version", "1"), ("max_cost_usd", "0")];
    let refused = browser.post_form("/functions/budgeted/edit", &zero).await;
    assert_eq!(refused.status, 422);
    let html = refused.text();
    assert!(html.contains("<p class=\"field-error\">max_cost_usd: must be more than 0"), "{html}");
    assert!(html.contains("name=\"max_cost_usd\" inputmode=\"decimal\" value=\"0\" placeholder=\"e.g. 0.50\" class=\"invalid\""), "{html}");
    let unreadable = [("name", "other"), ("backend", "demo"), ("daily_tokens", "lots")];
    let refused = browser.post_form("/functions", &unreadable).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text().contains(
            "<p class=\"field-error\">daily_tokens: &quot;lots&quot; is not a whole number of tokens"
        ),
        "{}",
        refused.text()
    );
    assert_eq!(server.get("/api/functions/budgeted").await.body["max_cost_usd"], json!(0.25), "unchanged");

    let cleared = [("name", "budgeted"), ("backend", "demo"), ("expected_version", "1")];
    assert_eq!(browser.post_form("/functions/budgeted/edit", &cleared).await.status, 303);
    let function = server.get("/api/functions/budgeted").await.body;
    assert_eq!(
        (&function["max_cost_usd"], &function["daily_tokens"]),
        (&Value::Null, &Value::Null),
        "emptied fields clear a budget"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_each_tokens_spend_today() {
    const SECRET: &str = "ci-token-0123456789abcdef";
    let sha256: String =
        dashboard_server::TokenSpec::from_secret("x", SECRET, dashboard_backend_api::Scope::Read)
            .sha256
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
    let dir = tempdir::Dir::new();
    let path = dir.0.join("dashboard.toml");
    let tokens =
        format!("\n[[auth.tokens]]\nname = \"ci\"\ntoken_sha256 = \"{sha256}\"\nscopes = [\"admin\"]\n");
    std::fs::write(&path, format!("{CONFIG}{tokens}")).expect("the config file");
    let server = server_with(|config| config.config_file = Some(path)).await;
    let get =
        |path: String| server.send(server.client.get(format!("{}{path}", server.url)).bearer_auth(SECRET));
    let trigger = server
        .client
        .post(format!("{}/api/executions", server.url))
        .bearer_auth(SECRET)
        .json(&json!({"function": "spender", "input": thirty_cents()}));
    let id = server.send(trigger).await.body["id"].as_str().expect("an id").to_owned();
    common::poll_status(&get, &id, "succeeded", Duration::from_secs(30)).await;
    let metrics = get("/metrics".to_owned()).await;
    let spent = sample(metrics.text(), r#"dashboard_token_spend_usd_today{token="ci"}"#).expect("ci's spend");
    assert!((spent - 0.3).abs() < 1e-9, "{}", metrics.text());
    server.stop().await;
}
