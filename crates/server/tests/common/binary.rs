//! The real `agent-dashboard` binary as a child process: started on a free port of 127.0.0.1 with the environment a
//! test gives it, and killed when dropped, so no test leaves one behind, even when it panics.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Answer;

/// How long start-up, or anything a test waits for, may take on a loaded machine.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A folder of its own for one test, removed at the end even when the test fails.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agent-dashboard-{name}-{}", std::process::id()));
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

/// The running binary.
pub struct BinaryServer {
    child: Child,
    pub url: String,
    stderr: PathBuf,
    pub client: reqwest::Client,
}

impl BinaryServer {
    /// Starts the binary in `dir` with `env` on top of a clean `DASHBOARD_*` environment, and waits until it answers
    /// `/healthz`.
    pub async fn start(dir: &TestDir, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let stderr = dir.path().join(format!("server-{port}.stderr.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-dashboard"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DASHBOARD_")) {
            command.env_remove(name);
        }
        command
            .current_dir(dir.path())
            .env("DASHBOARD_HOST", "127.0.0.1")
            .env("DASHBOARD_PORT", port.to_string())
            .env("RUST_LOG", "info,agent_dashboard::http=warn");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("a log file"))
            .spawn()
            .expect("the binary starts");
        let mut server =
            Self { child, url: format!("http://127.0.0.1:{port}"), stderr, client: super::client() };
        server.wait_until_healthy().await;
        server
    }

    pub async fn wait_until_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                panic!("the server exited with {status}:\n{}", self.log());
            }
            let health = self.client.get(format!("{}/healthz", self.url)).send().await;
            if health.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(started.elapsed() < START_LIMIT, "the server never became healthy:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM: the clean stop an operator makes (running executions get their grace period, the store is closed);
    /// waits until the process has exited.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|status| status.success()), "kill -TERM {pid}");
        let _ = self.child.wait();
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server wrote to its standard error (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        super::answer(request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn post_with_token(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.url)).bearer_auth(token).json(&body)).await
    }

    /// A GET that must answer 200; its JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {:?}", answer.body);
        answer.body
    }

    /// Creates a function on the demo backend; panics unless 201.
    pub async fn create_function(&self, name: &str) {
        let answer = self.post("/api/functions", json!({"name": name, "backend": "demo"})).await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }

    /// Polls until `check` holds for the execution; returns it.
    pub async fn wait_until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let execution = self.get_ok(&format!("/api/executions/{id}")).await;
            if check(&execution) {
                return execution;
            }
            assert!(started.elapsed() < START_LIMIT, "execution {id} never became {what}: {execution}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until no execution is `queued` or `running`.
    pub async fn wait_until_all_finished(&self) {
        let started = Instant::now();
        loop {
            let queued = self.get_ok("/api/executions?status=queued&limit=1").await;
            let running = self.get_ok("/api/executions?status=running&limit=1").await;
            if queued["items"] == json!([]) && running["items"] == json!([]) {
                return;
            }
            assert!(started.elapsed() < START_LIMIT, "executions stay unfinished: {queued} {running}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event, oldest first.
    pub async fn all_events(&self) -> Vec<Value> {
        let (mut events, mut after) = (Vec::new(), 0);
        loop {
            let page = self.get_ok(&format!("/api/events?after={after}&limit=1000")).await;
            let items = page["items"].as_array().expect("items").clone();
            if items.is_empty() {
                return events;
            }
            after = page["next_after"].as_u64().expect("next_after");
            events.extend(items);
        }
    }

    /// Triggers a function; panics unless 202. Returns the execution id.
    pub async fn trigger(&self, function: &str, input: Value) -> String {
        let answer = self.post("/api/executions", json!({"function": function, "input": input})).await;
        assert_eq!(answer.status, 202, "trigger {function}: {:?}", answer.body);
        answer.body["id"].as_str().expect("an id").to_owned()
    }

    /// Polls an execution until its status is `status`, for at most `limit`.
    pub async fn wait_for(&self, id: &str, status: &str, limit: Duration) -> Value {
        super::poll_status(|path| self.get_owned(path), id, status, limit).await
    }

    async fn get_owned(&self, path: String) -> Answer {
        self.get(&path).await
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        self.kill();
    }
}
