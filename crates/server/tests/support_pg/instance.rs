//! The real `agent-dashboard` binary as one instance of a cluster: a child process on a free port of 127.0.0.1 with
//! its own instance id and the environment the test gives it, killed (SIGKILL) when dropped so that no test leaves
//! one behind, even when it panics; and the HTTP calls the tests make to it.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long start-up, or anything else that should take moments, may take on a loaded machine before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A folder of its own for one test, removed at the end even when the test fails.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agent-dashboard-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a test folder");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 (free when asked; the binary binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A client for requests that answer at once (30 s at most, so a hung server fails the test rather than hangs it).
pub fn client() -> reqwest::Client {
    client_builder().timeout(Duration::from_secs(30)).build().expect("a client")
}

/// A client for streams, which stay open as long as the test reads them.
pub fn stream_client() -> reqwest::Client {
    client_builder().connect_timeout(Duration::from_secs(30)).build().expect("a client")
}

/// reqwest is built without a TLS provider of its own: the ring provider is installed first (a second install is
/// refused harmlessly).
fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// An answer: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The code of a JSON error body (`{"error": {"code", …}}`), or "".
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One running instance of the binary.
pub struct Instance {
    /// Its `DASHBOARD_INSTANCE_ID`.
    pub id: String,
    pub url: String,
    pub client: reqwest::Client,
    child: Child,
    log_path: PathBuf,
}

impl Instance {
    /// Starts the binary as instance `id` in `dir`, with `env` on top of a clean `DASHBOARD_*` environment, without
    /// waiting for it (instances started together start at once).
    pub fn spawn(dir: &TestDir, id: &str, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log_path = dir.path().join(format!("{id}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHBOARD_")) {
            command.env_remove(name);
        }
        command
            .current_dir(dir.path())
            .env("DASHBOARD_HOST", "127.0.0.1")
            .env("DASHBOARD_PORT", port.to_string())
            .env("DASHBOARD_INSTANCE_ID", id)
            .env("RUST_LOG", "info,agent_dashboard::http=warn");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path).expect("a log file"))
            .spawn()
            .expect("the binary starts");
        Self { id: id.to_owned(), url: format!("http://127.0.0.1:{port}"), client: client(), child, log_path }
    }

    /// Polls `/healthz` until it answers 200; how long that took. Panics if the process exits, or after `limit`.
    pub async fn wait_until_healthy(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                panic!("instance {} exited with {status}:\n{}", self.id, self.log());
            }
            if self.get("/healthz").await.is_ok_and(|answer| answer.status == 200) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "instance {} was not healthy within {limit:?}:\n{}",
                self.id,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id of the binary.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (`kill -9` of its pid): no shutdown code runs. Waits until the process is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, or `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child's status")
    }

    /// What the instance wrote to its standard error (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics if the instance's log tells of a panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "instance {} panicked:\n{log}", self.id);
    }

    /// Sends a request; a transport error (no answer) is returned, not a panic.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        self.send(self.client.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, reqwest::Error> {
        self.send(self.client.post(format!("{}{path}", self.url)).json(body)).await
    }

    /// A GET that must answer 200; its JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let answer =
            self.get(path).await.unwrap_or_else(|error| panic!("GET {path} on {}: {error}", self.id));
        assert_eq!(answer.status, 200, "GET {path} on {}: {:?}", self.id, answer.body);
        answer.body
    }

    /// Triggers `function`; panics unless the answer is 202 (or 201) with an id. Returns the id.
    pub async fn trigger(&self, function: &str, input: Value) -> String {
        let body = json!({"function": function, "input": input});
        let answer = self
            .post("/api/executions", &body)
            .await
            .unwrap_or_else(|error| panic!("trigger {function} on {}: {error}", self.id));
        assert!(matches!(answer.status, 201 | 202), "trigger {function} on {}: {answer:?}", self.id);
        answer.body["id"].as_str().expect("the execution's id").to_owned()
    }

    /// The execution `id`.
    pub async fn execution(&self, id: &str) -> Value {
        self.get_ok(&format!("/api/executions/{id}")).await
    }

    /// Polls the execution until `check` holds; it, and how long that took. Panics after `limit`, naming `what`.
    pub async fn wait_for_execution(
        &self,
        id: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let execution = self.execution(id).await;
            if check(&execution) {
                return (execution, started.elapsed());
            }
            assert!(started.elapsed() < limit, "execution {id} was not {what} within {limit:?}: {execution}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every execution in the store, newest first (all pages of `GET /api/executions`).
    pub async fn executions(&self) -> Vec<Value> {
        let mut executions = Vec::new();
        let mut path = "/api/executions?limit=500".to_owned();
        loop {
            let page = self.get_ok(&path).await;
            executions.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/executions?limit=500&before={cursor}"),
                None => return executions,
            }
        }
    }

    /// Every event after `after`, oldest first (all pages of `GET /api/events`).
    pub async fn events_after(&self, mut after: u64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let page = self.get_ok(&format!("/api/events?after={after}&limit=1000")).await;
            let items = page["items"].as_array().expect("items");
            if items.is_empty() {
                return events;
            }
            events.extend(items.iter().cloned());
            after = page["next_after"].as_u64().expect("next_after");
        }
    }

    /// The id of the newest event now.
    pub async fn event_cursor(&self) -> u64 {
        self.events_after(0).await.last().map_or(0, |event| event["id"].as_u64().expect("an event id"))
    }

    /// Polls until no execution is `queued` or `running`; panics after `limit`.
    pub async fn wait_until_all_finished(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let queued = self.get_ok("/api/executions?status=queued&limit=5").await;
            let running = self.get_ok("/api/executions?status=running&limit=5").await;
            if queued["items"] == json!([]) && running["items"] == json!([]) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "executions stay unfinished after {limit:?}: queued {} running {}",
                queued["items"],
                running["items"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
