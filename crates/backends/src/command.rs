//! The `command` backend: runs a local program (argv rendered from templates, never through a shell unless the config
//! says so), streams its output as log lines, and turns its exit code into the status.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::{LogStream, error_chain};
use serde::Deserialize;
use serde_json::Value;

use crate::limits::LOG_LINE_BYTES;
use crate::process::{Line, LineHandler, Pipe, ProgramEnd, ProgramSpec, environment, locate, run_program};

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "command";

/// How many of the last stdout and stderr lines are kept for the output and the error.
const TAIL_LINES: usize = 20;

fn default_kill_grace_secs() -> u64 {
    5
}

/// The settings of a `command` backend (its `[[backends]]` entry, less `name` and `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program: a path, or a name looked up on `PATH`. With `shell = true`, a shell script (a template).
    pub command: String,
    /// Arguments, each a tera template rendered with `input`, `prompt`, `execution_id` and `function`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The working directory (default: the server's).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Variables set for the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables copied from the server's environment when set; all others are cleared (`PATH` is always kept).
    #[serde(default)]
    pub env_passthrough: Vec<String>,
    /// Run `command` as a `/bin/sh -c` script, with the rendered `args` as `$1`, `$2`…. Input rendered into the
    /// script itself is shell code: prefer `"$1"` in the script and the value in `args`.
    #[serde(default)]
    pub shell: bool,
    /// Seconds between SIGTERM and SIGKILL when the run is stopped.
    #[serde(default = "default_kill_grace_secs")]
    pub kill_grace_secs: u64,
}

impl CommandConfig {
    /// A config that runs `command` with `args`, nothing else set.
    pub fn new(command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            command: command.into(),
            args,
            workdir: None,
            env: BTreeMap::new(),
            env_passthrough: Vec::new(),
            shell: false,
            kill_grace_secs: default_kill_grace_secs(),
        }
    }
}

/// Runs a local program per execution.
#[derive(Clone, Debug)]
pub struct CommandBackend {
    config: CommandConfig,
}

impl CommandBackend {
    /// A backend with these settings; templates are checked when an execution renders them.
    pub fn new(config: CommandConfig) -> Self {
        Self { config }
    }

    fn spec(&self, run: &RunContext) -> Result<ProgramSpec, BackendError> {
        let args = render_all(&self.config.args, run, "args")?;
        let (program, args) = if self.config.shell {
            let script = render(&self.config.command, run, "command")?;
            let mut shell_args = vec!["-c".to_owned(), script, "sh".to_owned()];
            shell_args.extend(args);
            ("/bin/sh".to_owned(), shell_args)
        } else {
            (self.config.command.clone(), args)
        };
        let mut fixed: Vec<(String, String)> = self.config.env.clone().into_iter().collect();
        fixed.push(("DASHBOARD_EXECUTION_ID".into(), run.execution_id.to_string()));
        fixed.push(("DASHBOARD_FUNCTION".into(), run.function.clone()));
        Ok(ProgramSpec {
            program,
            args,
            workdir: self.config.workdir.clone(),
            env: environment(&self.config.env_passthrough, &fixed),
            kill_grace: Duration::from_secs(self.config.kill_grace_secs),
            max_stdout_line_bytes: LOG_LINE_BYTES,
        })
    }
}

#[async_trait]
impl Backend for CommandBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn runs_local_programs(&self) -> bool {
        true
    }

    async fn check(&self) -> Readiness {
        let program = if self.config.shell { "/bin/sh" } else { self.config.command.as_str() };
        match locate(program) {
            Some(path) => Readiness::ready(format!("runs {}", path.display())),
            None => Readiness::not_ready(format!("program {program:?} not found")),
        }
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let spec = self.spec(&run)?;
        let mut output = Output { run: &run, stdout: VecDeque::new(), stderr: VecDeque::new() };
        match run_program(&spec, &run.cancel, &mut output).await? {
            ProgramEnd::Stopped => Err(BackendError::Cancelled),
            ProgramEnd::Exited(status) if status.success() => {
                Ok(RunOutcome::Succeeded { output: output.result(), usage: None })
            }
            ProgramEnd::Exited(status) => {
                let how = match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => "was killed by a signal".to_owned(),
                };
                let tail = Vec::from(output.stderr).join("\n");
                let error = if tail.is_empty() { how } else { format!("{how}: {tail}") };
                Ok(RunOutcome::Failed { error })
            }
        }
    }
}

/// Logs every line and keeps the last ones of each pipe.
struct Output<'a> {
    run: &'a RunContext,
    stdout: VecDeque<String>,
    stderr: VecDeque<String>,
}

impl Output<'_> {
    /// The last stdout line when it is JSON, else the tail of stdout as text.
    fn result(&self) -> Value {
        if let Some(parsed) = self.stdout.back().and_then(|last| serde_json::from_str::<Value>(last).ok()) {
            return parsed;
        }
        Value::String(Vec::from(self.stdout.clone()).join("\n"))
    }
}

impl LineHandler for Output<'_> {
    async fn line(&mut self, line: Line) {
        let Line { pipe, text: line, .. } = line;
        let (stream, tail) = match pipe {
            Pipe::Stdout => (LogStream::Stdout, &mut self.stdout),
            Pipe::Stderr => (LogStream::Stderr, &mut self.stderr),
        };
        self.run.log(stream, &line).await;
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Renders one template with the run's values; the error names `field`.
pub(crate) fn render(template: &str, run: &RunContext, field: &str) -> Result<String, BackendError> {
    let mut context = tera::Context::new();
    context.insert("input", &run.input);
    context.insert("prompt", &run.prompt.clone().unwrap_or_default());
    context.insert("execution_id", &run.execution_id.to_string());
    context.insert("function", &run.function);
    tera::Tera::one_off(template, &context, false)
        .map_err(|error| BackendError::InvalidInput(format!("{field}: {}", error_chain(&error))))
}

fn render_all(templates: &[String], run: &RunContext, field: &str) -> Result<Vec<String>, BackendError> {
    templates
        .iter()
        .enumerate()
        .map(|(index, template)| render(template, run, &format!("{field}[{index}]")))
        .collect()
}
