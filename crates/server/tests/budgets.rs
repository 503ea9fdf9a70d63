//! Usage, cost and budgets over HTTP, from the config file: `[[prices]]` price a run whose backend gives no cost, a
//! function's spent daily budget answers `429 budget-exhausted` naming it, a run that crosses `max_cost_usd` fails
//! saying so (and the spent budget still refuses after a restart), and a token's `daily_cost_usd` of `[[auth.tokens]]` holds for that token only; a bad `[[prices]]` entry
//! stops start-up naming the field.

mod common;

use std::time::Duration;

use common::{TestServer, server_with};
use dashboard_server::config_file;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[backends]]
name = "demo"
kind = "demo"

[[functions]]
name = "priced"
backend = "demo"
config = { model = "demo-model" }

[[functions]]
name = "capped"
backend = "demo"
daily_cost_usd = 0.5

[[functions]]
name = "one-run-cap"
backend = "demo"
max_cost_usd = 0.25

[[prices]]
model = "demo-model"
input_per_mtok = 2.0
output_per_mtok = 10.0

[[auth.tokens]]
name = "ci"
token_sha256 = "SHA_OF_CI"
scopes = ["trigger"]
daily_cost_usd = 0.25

[[auth.tokens]]
name = "ops"
token_sha256 = "SHA_OF_OPS"
scopes = ["admin"]
"#;

const CI: &str = "ci-token-0123456789abcdef";
const OPS: &str = "ops-token-0123456789abcdef";

fn hex_sha256(secret: &str) -> String {
    dashboard_server::TokenSpec::from_secret("x", secret, dashboard_backend_api::Scope::Read)
        .sha256
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

async fn set_up() -> (TestServer, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let server = start_in(&dir).await;
    (server, dir)
}

/// A server on the SQLite file and config file of `dir` (written when missing).
async fn start_in(dir: &tempdir::Dir) -> TestServer {
    let path = dir.0.join("dashboard.toml");
    let text = CONFIG.replace("SHA_OF_CI", &hex_sha256(CI)).replace("SHA_OF_OPS", &hex_sha256(OPS));
    std::fs::write(&path, text).expect("the config file");
    let database = dir.0.join("dashboard.db");
    server_with(|config| {
        config.config_file = Some(path);
        config.store = dashboard_server::StoreSpec::Sqlite(database);
    })
    .await
}

/// [`start_in`] again after a stop: the stopped server's last tasks may hold the database file's lock a moment
/// longer (a second server on a file in use is refused), so the start is tried again for a few seconds.
async fn restart_in(dir: &tempdir::Dir) -> TestServer {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (database, path) = (dir.0.join("dashboard.db"), dir.0.join("dashboard.toml"));
        let config = dashboard_server::ServerConfig {
            host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port: 0,
            store: dashboard_server::StoreSpec::Sqlite(database),
            config_file: Some(path),
            ..dashboard_server::ServerConfig::default()
        };
        match dashboard_server::start(config).await {
            Ok(running) => return common::around(running),
            Err(error) if std::time::Instant::now() < deadline && error.to_string().contains("in use") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the server does not start again: {error}"),
        }
    }
}

/// A folder of the test's own, removed when dropped.
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("budgets-{}-{n}", std::process::id()));
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

async fn trigger(server: &TestServer, token: &str, function: &str, input: Value) -> common::Answer {
    let request = server
        .client
        .post(format!("{}/api/executions", server.url))
        .bearer_auth(token)
        .json(&json!({"function": function, "input": input}));
    common::answer(request).await
}

async fn finished(server: &TestServer, id: &str) -> Value {
    let get = |path: String| {
        let request = server.client.get(format!("{}{path}", server.url)).bearer_auth(OPS);
        async move { common::answer(request).await.body }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let execution = get(format!("/api/executions/{id}")).await;
        if !matches!(execution["status"].as_str(), Some("queued" | "running" | "waiting")) {
            return execution;
        }
        assert!(std::time::Instant::now() < deadline, "{execution}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(server: &TestServer, token: &str, function: &str, input: Value) -> Value {
    let answer = trigger(server, token, function, input).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    finished(server, answer.body["id"].as_str().expect("an id")).await
}

fn costing(steps: u64, cost: f64) -> Value {
    json!({"steps": steps, "delay_ms": 5, "cost_per_step_usd": cost})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_cost_a_run_and_budgets_refuse_and_stop_spending() {
    let (server, dir) = set_up().await;

    let priced = run(&server, OPS, "priced", json!({"steps": 1, "delay_ms": 1})).await;
    let usage = &priced["usage"];
    assert_eq!((usage["input_tokens"].as_u64(), usage["output_tokens"].as_u64()), (Some(12), Some(34)));
    let cost = usage["cost_usd"].as_f64().expect("priced from [[prices]]");
    assert!((cost - (12.0 * 2.0 + 34.0 * 10.0) / 1e6).abs() < 1e-12, "{usage}");

    let capped = run(&server, OPS, "one-run-cap", costing(10, 0.1)).await;
    assert_eq!(capped["status"], "failed");
    assert_eq!(capped["error"], "budget exceeded: max_cost_usd of function one-run-cap (0.30 of 0.25)");

    assert_eq!(run(&server, OPS, "capped", costing(5, 0.1)).await["status"], "succeeded");
    // The spend is the store's: it holds after a restart on the same file.
    server.stop().await;
    let server = restart_in(&dir).await;
    let refused = trigger(&server, OPS, "capped", costing(1, 0.1)).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let error = &refused.body["error"];
    assert_eq!(
        (error["code"].as_str(), error["details"]["budget"].as_str()),
        (Some("budget-exhausted"), Some("daily_cost_usd of function capped"))
    );
    assert_eq!(error["details"]["limit"], 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_daily_budget_refuses_that_token_only() {
    let (server, _dir) = set_up().await;
    assert_eq!(
        run(&server, CI, "priced", costing(3, 0.1)).await["status"],
        "failed",
        "0.30 crosses ci's 0.25"
    );
    let refused = trigger(&server, CI, "priced", costing(1, 0.1)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["details"]["budget"].as_str()),
        (429, Some("daily_cost_usd of token ci"))
    );
    assert_eq!(trigger(&server, OPS, "priced", costing(1, 0.1)).await.status, 202, "ops has no budget");
}

#[test]
fn a_bad_price_entry_names_its_field() {
    let dir = tempdir::Dir::new();
    for (entry, expected) in [
        (
            "model = \"m\"\ninput_per_mtok = -1.0\noutput_per_mtok = 1.0",
            "prices[0]: input_per_mtok: must be 0 to 1000000",
        ),
        ("model = \"m\"\ninput_per_mtok = 1.0", "prices[0]: missing field `output_per_mtok`"),
        (
            "model = \"m\"\ninput_per_mtok = 1.0\noutput_per_mtok = 1.0\ncolour = 1",
            "prices[0]: colour: unknown field `colour`",
        ),
    ] {
        let path = dir.0.join("bad.toml");
        std::fs::write(&path, format!("[[prices]]\n{entry}\n")).expect("a file");
        let error = config_file::load(&path).expect_err("refused").to_string();
        assert!(error.contains(expected), "{error}");
    }
}
