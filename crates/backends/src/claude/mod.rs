//! The `claude` backend: runs Claude Code, `claude -p --output-format stream-json --verbose`, one process per
//! execution, the prompt on its stdin. Its stream-json messages become log lines, transcript items, the session (a
//! follow-up turn runs `--resume=SESSION`) and, from the final `result`, the output, the status and the usage. With
//! an approval policy other than `auto`, Claude Code asks the dashboard before what it may not do on its own, through
//! an MCP tool the dashboard serves for the execution ([`approvals`]).

mod approvals;
mod events;
mod json;
mod outcome;
mod run;
mod tools;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::{ApprovalPolicy, ItemBody, ItemStatus, LogStream, MessageRole, NewItem};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use crate::limits::default_max_event_bytes;
use crate::process::{ProgramSpec, environment, locate};

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "claude";

/// The id of the transcript item of the prompt.
const PROMPT_ITEM_ID: &str = "prompt";
/// How long `claude --version` may take in a readiness check.
const VERSION_CHECK_LIMIT: Duration = Duration::from_secs(3);
/// The most of `claude --version`'s output read.
const VERSION_BYTES: u64 = 4096;
/// The variables that keep Claude Code from reaching anything but the model API by itself, always set: no update
/// checks or auto-updates, no telemetry, no error reports, no feedback command.
/// `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` is documented as all of the others together (and is the one that keeps
/// 2.1.332 off every other host); each is set too, for versions that read only some.
const OFFLINE: [(&str, &str); 5] = [
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_AUTOUPDATER", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("DISABLE_ERROR_REPORTING", "1"),
    ("DISABLE_BUG_COMMAND", "1"),
];
/// The permission modes in which Claude Code never asks anyone: with them, `ask` and `deny` would never apply.
const NEVER_ASKING_MODES: [&str; 2] = ["bypassPermissions", "dontAsk"];

fn default_command() -> String {
    "claude".to_owned()
}

fn default_api_key_env() -> String {
    "ANTHROPIC_API_KEY".to_owned()
}

fn default_passthrough() -> Vec<String> {
    vec!["HOME".into(), "CLAUDE_CONFIG_DIR".into()]
}

fn default_kill_grace_secs() -> u64 {
    5
}

/// The settings of a `claude` backend (its `[[backends]]` entry, less `name` and `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaudeConfig {
    /// The Claude Code program (default `claude` on `PATH`).
    #[serde(default = "default_command")]
    pub command: String,
    /// Extra arguments, after the backend's own (e.g. `["--add-dir", "/srv/shared"]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// The directory Claude Code works in: the program's working directory. A follow-up turn must run in the same
    /// one (Claude Code keeps sessions per directory).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// `--model`; unset, Claude Code's default (a function may name another in its config).
    #[serde(default)]
    pub model: Option<String>,
    /// `--max-turns`; unset, no limit (a function may set its own).
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// `--permission-mode` (`acceptEdits`, `auto`, `bypassPermissions`, `manual`, `dontAsk`, `plan` in Claude Code
    /// 2.1), passed as written; unset, Claude Code's default.
    #[serde(default)]
    pub permission_mode: Option<String>,
    /// `--allowedTools`: tools Claude Code may use without asking (e.g. `["Bash(git *)", "Edit"]`).
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// The variable of the server's environment that holds the API key, passed to Claude Code as `ANTHROPIC_API_KEY`
    /// and never logged (default `ANTHROPIC_API_KEY`). Empty: no key is passed, and Claude Code uses its own login.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// The variable of the server's environment that holds the model API's base URL, passed as
    /// `ANTHROPIC_BASE_URL`.
    #[serde(default)]
    pub base_url_env: Option<String>,
    /// Variables copied from the server's environment (default `HOME` and `CLAUDE_CONFIG_DIR`, where Claude Code
    /// keeps its settings and sessions).
    #[serde(default = "default_passthrough")]
    pub env_passthrough: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL when the run is stopped (after SIGINT did not end it).
    #[serde(default = "default_kill_grace_secs")]
    pub kill_grace_secs: u64,
    /// The most one line of Claude Code's output may hold (default 1 MiB). A longer message is skipped, with a log
    /// line naming this limit; the `result`, which holds the output, is bounded by it too.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
}

impl Default for ClaudeConfig {
    fn default() -> Self {
        Self {
            command: default_command(),
            args: Vec::new(),
            workdir: None,
            model: None,
            max_turns: None,
            permission_mode: None,
            allowed_tools: Vec::new(),
            api_key_env: default_api_key_env(),
            base_url_env: None,
            env_passthrough: default_passthrough(),
            kill_grace_secs: default_kill_grace_secs(),
            max_event_bytes: default_max_event_bytes(),
        }
    }
}

/// What a function's own config (`run.config`) may change for its runs. What Claude Code may do without asking —
/// the permission mode, the allowed tools — is the backend's alone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionConfig {
    /// Replaces the backend's `model`.
    #[serde(default)]
    model: Option<String>,
    /// Replaces the backend's `max_turns`.
    #[serde(default)]
    max_turns: Option<u32>,
    /// A JSON Schema the answer must match (`--json-schema`): the output is then Claude Code's
    /// `structured_output`.
    #[serde(default)]
    json_schema: Option<Value>,
}

impl FunctionConfig {
    fn of(config: &Map<String, Value>) -> Result<Self, BackendError> {
        serde_json::from_value(Value::Object(config.clone())).map_err(|error| {
            BackendError::InvalidInput(format!(
                "function config for the claude backend (keys: model, max_turns, json_schema): {error}"
            ))
        })
    }
}

/// Runs one `claude -p` per execution.
#[derive(Clone, Debug)]
pub struct ClaudeBackend {
    config: ClaudeConfig,
}

impl ClaudeBackend {
    /// A backend with these settings; the key and base URL variables are read at each run, not now.
    pub fn new(config: ClaudeConfig) -> Self {
        Self { config }
    }

    fn not_found(&self) -> String {
        format!(
            "claude CLI not found: install it (npm i -g @anthropic-ai/claude-code) or set `command` (looked for \
             {:?})",
            self.config.command
        )
    }

    /// The variables of the key and the base URL, as Claude Code reads them; a named variable that is not set is a
    /// misconfiguration, said by name.
    fn secrets(&self) -> Result<Vec<(String, String)>, String> {
        let mut fixed = Vec::new();
        if !self.config.api_key_env.is_empty() {
            let name = &self.config.api_key_env;
            let key = std::env::var(name)
                .map_err(|_| format!("api_key_env: the environment variable {name} is not set"))?;
            fixed.push(("ANTHROPIC_API_KEY".to_owned(), key));
        }
        if let Some(name) = &self.config.base_url_env {
            let url = std::env::var(name)
                .map_err(|_| format!("base_url_env: the environment variable {name} is not set"))?;
            fixed.push(("ANTHROPIC_BASE_URL".to_owned(), url));
        }
        Ok(fixed)
    }

    /// Why Claude Code would never ask with these settings, if it would not.
    fn never_asks(&self) -> Option<String> {
        if let Some(mode) =
            self.config.permission_mode.as_deref().filter(|mode| NEVER_ASKING_MODES.contains(mode))
        {
            return Some(format!("permission_mode = \"{mode}\""));
        }
        self.config
            .args
            .iter()
            .find(|arg| {
                *arg == "--dangerously-skip-permissions"
                    || NEVER_ASKING_MODES
                        .iter()
                        .any(|mode| *arg == mode || **arg == format!("--permission-mode={mode}"))
            })
            .map(|arg| format!("args {arg:?}"))
    }

    /// `COMMAND -p --output-format stream-json --verbose [--model=M] [--max-turns=N] [--permission-mode=P]
    /// [--allowedTools=T,…] [ARGS…] [--json-schema=S] [--resume=SESSION]
    /// [--mcp-config=… --permission-prompt-tool=…]`,
    /// in `workdir`, with the cleared environment. Each value is joined to its flag, so none can be read as a flag
    /// of its own.
    fn spec(&self, run: &RunContext, function: FunctionConfig, fixed: Vec<(String, String)>) -> ProgramSpec {
        let mut args: Vec<String> =
            ["-p", "--output-format", "stream-json", "--verbose"].map(str::to_owned).into();
        if let Some(model) = function.model.as_ref().or(self.config.model.as_ref()) {
            args.push(format!("--model={model}"));
        }
        if let Some(max_turns) = function.max_turns.or(self.config.max_turns) {
            args.push(format!("--max-turns={max_turns}"));
        }
        if let Some(mode) = &self.config.permission_mode {
            args.push(format!("--permission-mode={mode}"));
        }
        if !self.config.allowed_tools.is_empty() {
            args.push(format!("--allowedTools={}", self.config.allowed_tools.join(",")));
        }
        args.extend(self.config.args.iter().cloned());
        if let Some(schema) = &function.json_schema {
            args.push(format!("--json-schema={schema}"));
        }
        if let Some(session) = &run.resume {
            args.push(format!("--resume={session}"));
        }
        let mut fixed = fixed;
        fixed.extend(OFFLINE.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        if !run.approval_policy.is_auto()
            && let Some(callback) = &run.callback
        {
            let (prompt_tool, token) = approvals::prompt_tool(callback, run.deadline);
            args.extend(prompt_tool);
            fixed.push(token);
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
impl Backend for ClaudeBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn runs_local_programs(&self) -> bool {
        true
    }

    /// A follow-up turn runs `--resume=SESSION` with the new prompt.
    fn can_continue(&self) -> bool {
        true
    }

    /// `ask` and `deny` need a Claude Code that asks: not with `bypassPermissions` or `dontAsk`.
    fn refuses_approval_policy(&self, policy: ApprovalPolicy) -> Option<String> {
        if policy.is_auto() {
            return None;
        }
        self.never_asks().map(|setting| {
            format!(
                "backend {KIND} has {setting}: Claude Code never asks, so approval_policy \"{policy}\" would never \
                 apply"
            )
        })
    }

    async fn check(&self) -> Readiness {
        let Some(path) = locate(&self.config.command) else {
            return Readiness::not_ready(self.not_found());
        };
        if let Err(missing) = self.secrets() {
            return Readiness::not_ready(missing);
        }
        let env = environment(&self.config.env_passthrough, &[]);
        match tokio::time::timeout(VERSION_CHECK_LIMIT, version_of(&path, env)).await {
            Ok(Ok((version, status))) if status.success() => {
                Readiness::ready(format!("{version} at {}", path.display()))
            }
            Ok(Ok((_, status))) => {
                Readiness::not_ready(format!("`{} --version` exited with {status}", path.display()))
            }
            Ok(Err(error)) => Readiness::not_ready(format!("could not run {}: {error}", path.display())),
            Err(_) => Readiness::not_ready(format!("`{} --version` did not answer", path.display())),
        }
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let fixed = match self.secrets() {
            Ok(fixed) => fixed,
            Err(missing) => return Ok(RunOutcome::Failed { error: missing }),
        };
        let function = FunctionConfig::of(&run.config)?;
        let prompt = run.prompt.clone().unwrap_or_else(|| run.input.to_string());
        let body = ItemBody::Message { role: MessageRole::User, text: prompt.clone() };
        if let Ok(item) = NewItem::new(PROMPT_ITEM_ID, ItemStatus::Completed, body) {
            run.item(item).await;
        }
        if !run.approval_policy.is_auto() && run.callback.is_none() {
            let line = format!(
                "approval_policy is \"{}\", but the dashboard has no callback URL for Claude Code to ask through: \
                 what Claude Code would ask about is declined",
                run.approval_policy
            );
            run.log(LogStream::System, line).await;
        }
        let spec = self.spec(&run, function, fixed);
        match run::run(&run, &spec, prompt, self.config.max_event_bytes).await {
            Err(BackendError::Unavailable(reason)) if reason.starts_with("program") => {
                Ok(RunOutcome::Failed { error: self.not_found() })
            }
            other => other,
        }
    }
}

/// What `PROGRAM --version` prints (its first 4 KiB, trimmed) and how it exited.
async fn version_of(
    program: &std::path::Path,
    env: Vec<(String, String)>,
) -> std::io::Result<(String, std::process::ExitStatus)> {
    let mut child = tokio::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .envs(env)
        .envs(OFFLINE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut printed = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout.take(VERSION_BYTES).read_to_end(&mut printed).await?;
    }
    let status = child.wait().await?;
    Ok((String::from_utf8_lossy(&printed).trim().to_owned(), status))
}

#[cfg(test)]
mod tests {
    use dashboard_backend_api::{Callback, log_channel};
    use dashboard_core::ExecutionId;
    use serde_json::json;

    use super::*;

    fn run_context(config: Value) -> RunContext {
        let (sink, _receiver) = log_channel(16);
        let mut run = RunContext::new(ExecutionId::generate(), "f", json!({}), sink);
        if let Value::Object(config) = config {
            run.config = config;
        }
        run
    }

    fn args(config: ClaudeConfig, run: &RunContext) -> Vec<String> {
        let function = FunctionConfig::of(&run.config).expect("a valid function config");
        ClaudeBackend::new(config).spec(run, function, Vec::new()).args
    }

    #[test]
    fn the_settings_become_flags_joined_to_their_values() {
        let config = ClaudeConfig {
            model: Some("claude-opus-5-5".into()),
            max_turns: Some(8),
            permission_mode: Some("acceptEdits".into()),
            allowed_tools: vec!["Bash(git *)".into(), "Edit".into()],
            args: vec!["--add-dir".into(), "/srv/shared".into()],
            ..ClaudeConfig::default()
        };
        let mut run = run_context(json!({"max_turns": 3, "json_schema": {"type": "object"}}));
        run.resume = Some("--dangerously-skip-permissions".into());
        assert_eq!(
            args(config, &run),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--model=claude-opus-5-5",
                "--max-turns=3",
                "--permission-mode=acceptEdits",
                "--allowedTools=Bash(git *),Edit",
                "--add-dir",
                "/srv/shared",
                r#"--json-schema={"type":"object"}"#,
                "--resume=--dangerously-skip-permissions",
            ]
        );
    }

    #[test]
    fn asking_the_dashboard_adds_its_mcp_tool_only_when_the_policy_is_not_auto() {
        let mut run = run_context(json!({}));
        run.callback =
            Some(Callback { url: "http://127.0.0.1:8000/api/executions/1".into(), token: "t".into() });
        assert!(!args(ClaudeConfig::default(), &run).iter().any(|arg| arg.starts_with("--mcp-config")));
        run.approval_policy = ApprovalPolicy::Ask;
        let with_tool = args(ClaudeConfig::default(), &run);
        assert!(with_tool.iter().any(|arg| arg.starts_with("--mcp-config=")), "{with_tool:?}");
        assert_eq!(
            with_tool.last().map(String::as_str),
            Some("--permission-prompt-tool=mcp__dashboard__approve")
        );
    }

    #[test]
    fn a_function_may_not_change_what_claude_may_do() {
        let run = run_context(json!({"permission_mode": "bypassPermissions"}));
        let error = FunctionConfig::of(&run.config).expect_err("refused");
        assert!(error.to_string().contains("unknown field `permission_mode`"), "{error}");
    }

    #[test]
    fn a_claude_that_never_asks_refuses_ask_and_deny() {
        let check = |config: ClaudeConfig, expected: Option<&str>| {
            let backend = ClaudeBackend::new(config);
            assert_eq!(backend.refuses_approval_policy(ApprovalPolicy::Auto), None);
            for policy in [ApprovalPolicy::Ask, ApprovalPolicy::Deny] {
                let refusal = backend.refuses_approval_policy(policy);
                match expected {
                    Some(expected) => assert!(
                        refusal.as_deref().is_some_and(|refusal| refusal.contains(expected)),
                        "{refusal:?} lacks {expected:?}"
                    ),
                    None => assert_eq!(refusal, None),
                }
            }
        };
        check(ClaudeConfig::default(), None);
        check(ClaudeConfig { permission_mode: Some("acceptEdits".into()), ..ClaudeConfig::default() }, None);
        let bypass =
            ClaudeConfig { permission_mode: Some("bypassPermissions".into()), ..ClaudeConfig::default() };
        check(bypass, Some("permission_mode = \"bypassPermissions\": Claude Code never asks"));
        let dont_ask = ClaudeConfig { permission_mode: Some("dontAsk".into()), ..ClaudeConfig::default() };
        check(dont_ask, Some("dontAsk"));
        let skip =
            ClaudeConfig { args: vec!["--dangerously-skip-permissions".into()], ..ClaudeConfig::default() };
        check(skip, Some("--dangerously-skip-permissions"));
    }

    #[test]
    fn the_environment_is_cleared_but_for_the_key_and_what_keeps_claude_offline() {
        let config = ClaudeConfig { env_passthrough: Vec::new(), ..ClaudeConfig::default() };
        let run = run_context(json!({}));
        let fixed = vec![("ANTHROPIC_API_KEY".to_owned(), "k".to_owned())];
        let spec = ClaudeBackend::new(config).spec(&run, FunctionConfig::default(), fixed);
        let names: Vec<&str> = spec.env.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "ANTHROPIC_API_KEY",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                "DISABLE_AUTOUPDATER",
                "DISABLE_TELEMETRY",
                "DISABLE_ERROR_REPORTING",
                "DISABLE_BUG_COMMAND",
            ]
        );
    }
}
