//! The `codex` backend: runs the OpenAI Codex CLI — `codex exec --json` (the `exec` mode, the default), whose JSONL
//! events become log lines, transcript items, usage and an output (the last agent message), or `codex app-server`
//! (the `app-server` mode, [`app_server`]), spoken to in JSON-RPC, whose approval requests go through the run's
//! approval gate. `codex exec` never asks anyone (it runs with Codex's approval policy `never`), so a function whose
//! approval policy is `ask` or `deny` runs only in the app-server mode, and only when Codex's own `approval` is not
//! `never`.

mod app_server;
mod events;
mod items;
mod json;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::{ApprovalPolicy, ItemBody, ItemStatus, LogStream, MessageRole, NewItem};
use serde::Deserialize;
use serde_json::{Value, json};

pub use self::app_server::{CodexApproval, CodexSandbox};
use self::events::{Effect, interpret};
use crate::limits::{default_max_event_bytes, over_limit};
use crate::process::{Line, LineHandler, Pipe, ProgramEnd, ProgramSpec, environment, locate, run_program};

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "codex";

/// How many stderr lines are kept to explain a crash.
const STDERR_TAIL_LINES: usize = 10;
/// What Codex (0.169) prints on stderr whenever its stdin is not a terminal, before it finds the input empty: a notice,
/// not an error, so it never explains a failure.
const STDIN_NOTICE: &str = "Reading additional input from stdin...";
/// The id of the transcript item of the prompt; Codex's own ids are `item_N`.
const PROMPT_ITEM_ID: &str = "prompt";
/// How long `codex --version` may take in a readiness check.
const VERSION_CHECK_LIMIT: Duration = Duration::from_secs(3);

fn default_command() -> String {
    "codex".to_owned()
}

fn default_passthrough() -> Vec<String> {
    vec!["HOME".into(), "CODEX_HOME".into()]
}

fn default_kill_grace_secs() -> u64 {
    5
}

/// How the backend talks to Codex.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CodexMode {
    /// `codex exec --json`: one non-interactive run, its events read from stdout.
    #[default]
    Exec,
    /// `codex app-server`: JSON-RPC over stdio, one turn per execution, on a new thread or a resumed one.
    AppServer,
}

/// The settings of a `codex` backend (its `[[backends]]` entry, less `name` and `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodexConfig {
    /// `exec` (default) or `app-server`.
    #[serde(default)]
    pub mode: CodexMode,
    /// The Codex CLI program (default `codex` on `PATH`).
    #[serde(default = "default_command")]
    pub command: String,
    /// Extra arguments after `exec --json --skip-git-repo-check` (e.g. `["--sandbox", "workspace-write"]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// The repository Codex works in (`-C`); also the program's working directory.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// The variable of the server's environment that holds the API key; passed to Codex as `CODEX_API_KEY` and
    /// `OPENAI_API_KEY`, never logged.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Variables copied from the server's environment (default `HOME` and `CODEX_HOME`, where Codex keeps its login).
    #[serde(default = "default_passthrough")]
    pub env_passthrough: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL when the run is stopped.
    #[serde(default = "default_kill_grace_secs")]
    pub kill_grace_secs: u64,
    /// The most one line of Codex's JSONL output may hold (default 1 MiB). A longer event is skipped, with a log
    /// line naming this limit; the agent's last message, the output, is bounded by it too.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// The app-server mode's sandbox for the agent's commands, sent with `thread/start`; unset, Codex's default
    /// (`read-only`) applies.
    #[serde(default)]
    pub sandbox: Option<CodexSandbox>,
    /// The app-server mode's approval policy of Codex itself, sent with `thread/start`; unset, Codex's default
    /// (`on-request`) applies.
    #[serde(default)]
    pub approval: Option<CodexApproval>,
}

impl Default for CodexConfig {
    fn default() -> Self {
        Self {
            mode: CodexMode::default(),
            command: default_command(),
            args: Vec::new(),
            workdir: None,
            api_key_env: None,
            env_passthrough: default_passthrough(),
            kill_grace_secs: default_kill_grace_secs(),
            max_event_bytes: default_max_event_bytes(),
            sandbox: None,
            approval: None,
        }
    }
}

/// Runs one `codex exec` or `codex app-server` per execution.
#[derive(Clone, Debug)]
pub struct CodexBackend {
    config: CodexConfig,
}

impl CodexBackend {
    /// A backend with these settings.
    pub fn new(config: CodexConfig) -> Self {
        Self { config }
    }

    fn not_found(&self) -> String {
        format!(
            "codex CLI not found: install it (npm i -g @openai/codex) or set `command` (looked for {:?})",
            self.config.command
        )
    }

    /// The API key, when the config names its variable; an unset variable is a misconfiguration, said by name.
    fn api_key(&self) -> Result<Option<String>, String> {
        match &self.config.api_key_env {
            Some(name) => std::env::var(name)
                .map(Some)
                .map_err(|_| format!("api_key_env: the environment variable {name} is not set")),
            None => Ok(None),
        }
    }

    /// `COMMAND app-server [ARGS…]`, in `workdir`, with the same environment as `exec`.
    fn app_server_spec(&self, api_key: Option<String>) -> ProgramSpec {
        let mut spec = self.spec(String::new(), api_key, None);
        spec.args =
            std::iter::once("app-server".to_owned()).chain(self.config.args.iter().cloned()).collect();
        spec
    }

    /// `COMMAND exec --json --skip-git-repo-check [-C DIR] [ARGS…] [resume THREAD] -- PROMPT`: the options are
    /// `exec`'s, so they come before its `resume` subcommand.
    fn spec(&self, prompt: String, api_key: Option<String>, resume: Option<&str>) -> ProgramSpec {
        let mut args = vec!["exec".to_owned(), "--json".to_owned(), "--skip-git-repo-check".to_owned()];
        if let Some(workdir) = &self.config.workdir {
            // Absolute: the program also starts in `workdir`, where a relative `-C` would point elsewhere.
            let workdir = std::path::absolute(workdir).unwrap_or_else(|_| workdir.clone());
            args.extend(["-C".to_owned(), workdir.display().to_string()]);
        }
        args.extend(self.config.args.iter().cloned());
        if let Some(thread_id) = resume {
            args.extend(["resume".to_owned(), thread_id.to_owned()]);
        }
        args.extend(["--".to_owned(), prompt]);
        let mut fixed = Vec::new();
        if let Some(key) = api_key {
            fixed.push(("CODEX_API_KEY".to_owned(), key.clone()));
            fixed.push(("OPENAI_API_KEY".to_owned(), key));
        }
        ProgramSpec {
            program: self.config.command.clone(),
            args,
            workdir: self.config.workdir.clone(),
            env: environment(&self.config.env_passthrough, &fixed),
            kill_grace: Duration::from_secs(self.config.kill_grace_secs),
            max_stdout_line_bytes: self.config.max_event_bytes,
        }
    }
}

#[async_trait]
impl Backend for CodexBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn runs_local_programs(&self) -> bool {
        true
    }

    /// Both modes continue a thread: `codex exec resume`, or `thread/resume` then `turn/start`.
    fn can_continue(&self) -> bool {
        true
    }

    /// `ask` and `deny` need a Codex that asks: the app-server mode, unless Codex's own policy is `never`.
    fn refuses_approval_policy(&self, policy: ApprovalPolicy) -> Option<String> {
        if policy.is_auto() {
            return None;
        }
        match (self.config.mode, self.config.approval) {
            // `codex exec` runs with Codex's approval policy `never` whatever its config says, and has no channel
            // back to the dashboard.
            (CodexMode::Exec, _) => Some(format!(
                "backend {KIND} runs `codex exec` (mode = \"exec\"), which never asks anyone: Codex's own sandbox \
                 decides, so approval_policy \"{policy}\" would never apply; set mode = \"app-server\" to be asked"
            )),
            (CodexMode::AppServer, Some(CodexApproval::Never)) => Some(format!(
                "backend {KIND} has approval = \"never\": Codex never asks, so approval_policy \"{policy}\" would \
                 never apply"
            )),
            (CodexMode::AppServer, _) => None,
        }
    }

    async fn check(&self) -> Readiness {
        let Some(path) = locate(&self.config.command) else {
            return Readiness::not_ready(self.not_found());
        };
        if let Err(missing) = self.api_key() {
            return Readiness::not_ready(missing);
        }
        let version = tokio::process::Command::new(&path).arg("--version").kill_on_drop(true).output();
        match tokio::time::timeout(VERSION_CHECK_LIMIT, version).await {
            Ok(Ok(output)) if output.status.success() => {
                let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                Readiness::ready(format!("{version} at {}", path.display()))
            }
            Ok(Ok(output)) => {
                Readiness::not_ready(format!("`{} --version` exited with {}", path.display(), output.status))
            }
            Ok(Err(error)) => Readiness::not_ready(format!("could not run {}: {error}", path.display())),
            Err(_) => Readiness::not_ready(format!("`{} --version` did not answer", path.display())),
        }
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let api_key = match self.api_key() {
            Ok(key) => key,
            Err(missing) => return Ok(RunOutcome::Failed { error: missing }),
        };
        let prompt = run.prompt.clone().unwrap_or_else(|| run.input.to_string());
        let body = ItemBody::Message { role: MessageRole::User, text: prompt.clone() };
        if let Ok(item) = NewItem::new(PROMPT_ITEM_ID, ItemStatus::Completed, body) {
            run.item(item).await;
        }
        if self.config.mode == CodexMode::AppServer {
            let spec = self.app_server_spec(api_key);
            return match app_server::run_turn(&self.config, &run, &spec, prompt).await {
                Err(BackendError::Unavailable(reason)) if reason.starts_with("program") => {
                    Ok(RunOutcome::Failed { error: self.not_found() })
                }
                other => other,
            };
        }
        let spec = self.spec(prompt, api_key, run.resume.as_deref());
        let mut session = Session {
            run: &run,
            last_message: None,
            usage: None,
            turn_failure: None,
            last_error: None,
            stderr: VecDeque::new(),
            max_event_bytes: self.config.max_event_bytes,
            is_skipping: false,
        };
        let end = match run_program(&spec, &run.cancel, &mut session).await {
            Err(BackendError::Unavailable(reason)) if reason.starts_with("program") => {
                return Ok(RunOutcome::Failed { error: self.not_found() });
            }
            other => other?,
        };
        let status = match end {
            ProgramEnd::Stopped => return Err(BackendError::Cancelled),
            ProgramEnd::Exited(status) => status,
        };
        if let Some(failure) = session.turn_failure {
            return Ok(RunOutcome::Failed { error: failure });
        }
        // An `error` event fails the run unless a turn completed after it (Codex reports retries as errors too).
        if let Some(error) = session.last_error {
            return Ok(RunOutcome::Failed { error });
        }
        if !status.success() {
            let tail = Vec::from(session.stderr).join("\n");
            let how = status.code().map_or_else(
                || "codex was killed by a signal".to_owned(),
                |code| format!("codex exited with code {code}"),
            );
            return Ok(RunOutcome::Failed {
                error: if tail.is_empty() { how } else { format!("{how}: {tail}") },
            });
        }
        let output = match session.last_message {
            Some(message) => json!({"message": message}),
            None => json!({"message": null}),
        };
        Ok(RunOutcome::Succeeded { output, usage: session.usage })
    }
}

/// What one Codex run has said so far.
struct Session<'a> {
    run: &'a RunContext,
    last_message: Option<String>,
    usage: Option<Value>,
    /// The message of a `turn.failed`.
    turn_failure: Option<String>,
    /// The last `error` event not followed by a completed turn.
    last_error: Option<String>,
    stderr: VecDeque<String>,
    max_event_bytes: usize,
    /// Whether the pieces arriving belong to an event over the limit, which is skipped to its end.
    is_skipping: bool,
}

impl LineHandler for Session<'_> {
    async fn line(&mut self, line: Line) {
        let Line { pipe, text: line, is_cut } = line;
        if pipe == Pipe::Stdout && (is_cut || self.is_skipping) {
            if !self.is_skipping {
                let what = "an event of codex";
                let limit = over_limit(what, self.max_event_bytes, "max_event_bytes");
                self.run.log(LogStream::Stderr, format!("{limit}; it is skipped")).await;
            }
            // The last piece of the line is the one that is not cut.
            self.is_skipping = is_cut;
            return;
        }
        if pipe == Pipe::Stderr {
            self.run.log(LogStream::Stderr, &line).await;
            if line.trim() == STDIN_NOTICE {
                return;
            }
            if self.stderr.len() == STDERR_TAIL_LINES {
                self.stderr.pop_front();
            }
            self.stderr.push_back(line);
            return;
        }
        for effect in interpret(&line) {
            match effect {
                Effect::Log(stream, text) => self.run.log(stream, text).await,
                Effect::Session(thread_id) => self.run.session(thread_id).await,
                Effect::Item(item) => self.run.item(item).await,
                Effect::AgentMessage(message) => self.last_message = Some(message),
                Effect::TurnCompleted(usage) => {
                    self.usage = usage.or(self.usage.take());
                    self.last_error = None;
                }
                Effect::TurnFailed(message) => {
                    self.run.log(LogStream::Stderr, format!("turn failed: {message}")).await;
                    self.turn_failure = Some(message);
                }
                Effect::Error(message) => {
                    self.run.log(LogStream::Stderr, format!("error: {message}")).await;
                    self.last_error = Some(message);
                }
            }
        }
    }
}
