//! The `codex` backend's `app-server` mode: one `codex app-server` per execution, spoken to in JSON-RPC over its
//! stdio — `initialize`, `thread/start` with the backend's sandbox and approval settings (or `thread/resume` of the
//! thread a follow-up continues), `turn/start` with the prompt — until the turn completes. A cancel or timeout sends
//! `turn/interrupt`, waits briefly for the turn to end, then stops the process group.
//!
//! The server's requests for a decision (a command, a file change, permissions, a question for the user;
//! [`approvals`]) go through the run's approval gate, which applies the function's policy and may wait for a person
//! for as long as an hour. Each ask runs as a task of its own ([`asks`]) while the loop reading the server goes on
//! (several may be pending at once); its answer is written when it comes. A request Codex withdraws (`serverRequest/resolved`
//! before it was answered) drops its ask, and so do a cancel and the turn's end. Other server requests are answered
//! as not supported.

mod approvals;
mod asks;
mod notifications;
mod protocol;
#[cfg(test)]
mod schema_check;
mod usage;

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use dashboard_backend_api::{ApprovalAnswer, BackendError, RunContext, RunOutcome};
use dashboard_core::{Decision, LogStream};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

use self::approvals::Asked;
use self::asks::{Asks, DECIDED_BY_DASHBOARD};
use self::notifications::{Effect, Transcript, TurnEnd};
pub use self::protocol::{CodexApproval, CodexSandbox};
use self::protocol::{
    Incoming, InitializeParams, ThreadResumeParams, ThreadStartParams, TurnInterruptParams, TurnStartParams,
    UserInput,
};
use self::usage::TurnUsage;
use super::CodexConfig;
use crate::limits::over_limit;
use crate::process::{Line, Output, Pipe, Program, ProgramSpec};

/// How long a cancelled turn gets to end after `turn/interrupt` before the process group is stopped.
const INTERRUPT_WAIT: Duration = Duration::from_secs(3);
/// How long the server gets to exit by itself once its stdin is closed after the turn.
const EXIT_WAIT: Duration = Duration::from_secs(1);
/// How many stderr lines are kept to explain a crash.
const STDERR_TAIL_LINES: usize = 10;
/// The log line for a continued turn whose usage could not be told apart from the thread's earlier turns.
const NO_BASELINE: &str =
    "codex reported no usage from before this turn: the usage is the thread's total, earlier turns included";

/// Runs one turn of `prompt` on a new thread of the server `spec` starts, or on the thread `run.resume` names; the
/// prompt's own item is already reported.
pub(super) async fn run_turn(
    config: &CodexConfig,
    run: &RunContext,
    spec: &ProgramSpec,
    prompt: String,
) -> Result<RunOutcome, BackendError> {
    let mut program = Program::spawn(spec, true)?;
    let Some(stdin) = program.take_stdin() else {
        return Err(BackendError::Other { message: "codex app-server has no stdin".into(), source: None });
    };
    let mut server = Server {
        run,
        program,
        stdin: Some(stdin),
        next_id: 0,
        transcript: Transcript::default(),
        thread_id: None,
        turn_id: None,
        turn_end: None,
        last_message: None,
        usage: TurnUsage::new(run.resume.is_some()),
        stderr: VecDeque::new(),
        exit: None,
        is_interrupting: false,
        is_skipping: false,
        max_event_bytes: config.max_event_bytes,
        asks: Asks::default(),
    };
    let ended = server.converse(config, prompt).await;
    let outcome = match ended {
        Ok(TurnEnd::Completed) => {
            let output = json!({"message": server.last_message.take()});
            if server.usage.has_no_baseline() {
                server.run.log(LogStream::System, NO_BASELINE).await;
            }
            Ok(RunOutcome::Succeeded { output, usage: server.usage.usage() })
        }
        Ok(TurnEnd::Failed(error)) => Ok(RunOutcome::Failed { error }),
        Ok(TurnEnd::Interrupted) => Ok(RunOutcome::Failed { error: "the turn was interrupted".into() }),
        Err(Stop::Cancelled) => {
            server.interrupt().await;
            Err(BackendError::Cancelled)
        }
        Err(Stop::Failed(error)) => Ok(RunOutcome::Failed { error }),
    };
    server.shut_down().await;
    outcome
}

/// Why a conversation stopped before its turn ended.
enum Stop {
    /// The run was cancelled (cancel, timeout or shutdown).
    Cancelled,
    /// The server failed: a request refused, or the program gone.
    Failed(String),
}

/// What the loop reading the server reports to the step waiting on it.
enum Event {
    Response { id: u64, result: Result<Value, String> },
    TurnEnded(TurnEnd),
}

/// One app-server and what it has said so far.
struct Server<'a> {
    run: &'a RunContext,
    program: Program,
    stdin: Option<ChildStdin>,
    next_id: u64,
    transcript: Transcript,
    thread_id: Option<String>,
    turn_id: Option<String>,
    /// How the turn ended, when it ended before `turn/start` was answered.
    turn_end: Option<TurnEnd>,
    last_message: Option<String>,
    usage: TurnUsage,
    stderr: VecDeque<String>,
    exit: Option<Result<ExitStatus, BackendError>>,
    /// Whether `turn/interrupt` was sent: the run is cancelled, but the turn's end is still awaited.
    is_interrupting: bool,
    /// Whether the pieces arriving belong to a message over the limit, which is skipped to its end.
    is_skipping: bool,
    max_event_bytes: usize,
    /// The gate's asks still waiting for an answer; dropped (so stopped) with the server.
    asks: Asks,
}

impl Server<'_> {
    /// The whole conversation: the handshake, the thread (new or resumed), the turn, until the turn ends.
    async fn converse(&mut self, config: &CodexConfig, prompt: String) -> Result<TurnEnd, Stop> {
        self.call(protocol::INITIALIZE, &InitializeParams::default()).await?;
        self.send(protocol::notification(protocol::INITIALIZED)).await?;
        let cwd = config
            .workdir
            .as_ref()
            .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()).display().to_string());
        let settings = ThreadStartParams { cwd, sandbox: config.sandbox, approval_policy: config.approval };
        let (method, opened) = match &self.run.resume {
            Some(thread_id) => {
                let resume = ThreadResumeParams { thread_id: thread_id.clone(), settings };
                (protocol::THREAD_RESUME, self.call(protocol::THREAD_RESUME, &resume).await?)
            }
            None => (protocol::THREAD_START, self.call(protocol::THREAD_START, &settings).await?),
        };
        let thread_id = opened
            .get("thread")
            .and_then(|thread| thread.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| Stop::Failed(format!("{method}: the answer names no thread")))?
            .to_owned();
        self.run.session(&thread_id).await;
        self.thread_id = Some(thread_id.clone());
        let turn = TurnStartParams { thread_id, input: vec![UserInput::Text { text: prompt }] };
        let started = self.call(protocol::TURN_START, &turn).await?;
        if let Some(id) = started.get("turn").and_then(|turn| turn.get("id")).and_then(Value::as_str) {
            self.turn_id = Some(id.to_owned());
        }
        if let Some(end) = self.turn_end.take() {
            return Ok(end);
        }
        loop {
            if let Event::TurnEnded(end) = self.next().await? {
                return Ok(end);
            }
        }
    }

    /// Sends a request and waits for its answer, handling whatever else the server says meanwhile.
    async fn call(&mut self, method: &str, params: &impl serde::Serialize) -> Result<Value, Stop> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(protocol::request(id, method, params)).await?;
        loop {
            match self.next().await? {
                Event::Response { id: answered, result } if answered == id => {
                    return result
                        .map_err(|message| Stop::Failed(format!("codex app-server: {method}: {message}")));
                }
                Event::Response { id: answered, .. } => {
                    log::debug!("codex app-server: an answer to request {answered}, which is not awaited");
                }
                Event::TurnEnded(end) => self.turn_end = Some(end),
            }
        }
    }

    /// Asks the server to end the turn, and waits briefly for it to say it has.
    async fn interrupt(&mut self) {
        // Nobody will be told what the gate decides now: the turn ends unanswered, and the engine expires the asks.
        self.asks.clear();
        self.is_interrupting = true;
        let (Some(thread_id), Some(turn_id)) = (self.thread_id.clone(), self.turn_id.clone()) else { return };
        let id = self.next_id;
        self.next_id += 1;
        let params = TurnInterruptParams { thread_id, turn_id };
        if self.send(protocol::request(id, protocol::TURN_INTERRUPT, &params)).await.is_err() {
            return;
        }
        let ended = tokio::time::timeout(INTERRUPT_WAIT, async {
            while !matches!(self.next().await, Ok(Event::TurnEnded(_)) | Err(_)) {}
        });
        if ended.await.is_err() {
            self.run
                .log(LogStream::System, "codex did not end the turn after turn/interrupt; stopping it")
                .await;
        }
    }

    /// Closes the server's stdin, gives it a moment to exit, then stops its group.
    async fn shut_down(&mut self) {
        self.stdin = None;
        if self.exit.is_none() && tokio::time::timeout(EXIT_WAIT, self.program.wait()).await.is_err() {
            self.program.stop().await;
        }
        self.program.kill_leftovers();
    }

    async fn send(&mut self, line: String) -> Result<(), Stop> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Stop::Failed("codex app-server: stdin closed".into()));
        };
        let written = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        match written.await {
            Ok(()) => Ok(()),
            // The server is gone; why is in how it exited.
            Err(error) => {
                log::debug!("codex app-server: writing to its stdin failed: {error}");
                loop {
                    self.next().await?;
                }
            }
        }
    }

    /// The next answer or turn end, after handling every notification and server request before it.
    async fn next(&mut self) -> Result<Event, Stop> {
        loop {
            let line = match self.exit {
                Some(_) => match self.program.next_line_after_exit().await {
                    Some(line) => line,
                    None => return Err(Stop::Failed(self.exit_error())),
                },
                None => tokio::select! {
                    biased;
                    () = self.run.cancel.cancelled(), if !self.is_interrupting => return Err(Stop::Cancelled),
                    Some((request_id, asked, answer)) = self.asks.next(), if !self.asks.is_empty() => {
                        self.reply(&request_id, &asked, &answer).await;
                        continue;
                    }
                    output = self.program.next_output() => match output {
                        Output::Line(line) => line,
                        Output::Closed => {
                            // The pipes closed: the program is ending (or left a child holding nothing).
                            tokio::select! {
                                () = self.run.cancel.cancelled(), if !self.is_interrupting => return Err(Stop::Cancelled),
                                status = self.program.wait() => self.exit = Some(status),
                            }
                            continue;
                        }
                        Output::Exited(status) => {
                            self.exit = Some(status);
                            continue;
                        }
                    },
                },
            };
            if let Some(event) = self.line(line).await {
                return Ok(event);
            }
        }
    }

    async fn line(&mut self, line: Line) -> Option<Event> {
        let Line { pipe, text, is_cut } = line;
        if pipe == Pipe::Stderr {
            self.run.log(LogStream::Stderr, &text).await;
            if self.stderr.len() == STDERR_TAIL_LINES {
                self.stderr.pop_front();
            }
            self.stderr.push_back(text);
            return None;
        }
        if is_cut || self.is_skipping {
            if !self.is_skipping {
                let limit =
                    over_limit("a message of codex app-server", self.max_event_bytes, "max_event_bytes");
                self.run.log(LogStream::Stderr, format!("{limit}; it is skipped")).await;
            }
            // The last piece of the line is the one that is not cut.
            self.is_skipping = is_cut;
            return None;
        }
        match protocol::incoming(&text) {
            Some(Incoming::Response { id, result }) => Some(Event::Response { id, result }),
            Some(Incoming::Request { id, method, params }) => {
                self.ask(id, &method, &params).await;
                None
            }
            Some(Incoming::Notification { method, params }) => self.notification(&method, &params).await,
            None if text.trim().is_empty() => None,
            None => {
                self.run.log(LogStream::Stdout, &text).await;
                None
            }
        }
    }

    async fn notification(&mut self, method: &str, params: &Value) -> Option<Event> {
        if method == protocol::SERVER_REQUEST_RESOLVED {
            if let Some(request_id) = params.get("requestId") {
                self.withdraw(request_id).await;
            }
            return None;
        }
        let mut ended = None;
        for effect in self.transcript.notification(method, params) {
            match effect {
                Effect::Log(stream, text) => self.run.log(stream, text).await,
                Effect::Item(item) => self.run.item(item).await,
                Effect::AgentMessage(message) => self.last_message = Some(message),
                // Codex reports the thread's totals: a later report replaces an earlier one, never adds to it, and a
                // resumed thread's earlier turns are taken off at the end.
                Effect::Usage(usage) => {
                    self.usage.report(usage, self.turn_id.as_deref());
                    // The turn's usage so far, so that a budget can stop the turn while it runs.
                    if let Some(so_far) = self.usage.usage() {
                        self.run.report_usage(&so_far);
                    }
                }
                Effect::Diff(diff) => self.run.diff(diff).await,
                Effect::TurnStarted(id) => self.turn_id = Some(id),
                Effect::TurnEnded(end) => {
                    if let TurnEnd::Failed(message) = &end {
                        self.run.log(LogStream::Stderr, format!("turn failed: {message}")).await;
                    }
                    ended = Some(Event::TurnEnded(end));
                }
            }
        }
        ended
    }

    /// Takes a server request: one asking for a decision goes to the gate, in a task of its own whose answer is
    /// written when it comes; anything else is answered as not supported.
    async fn ask(&mut self, request_id: Value, method: &str, params: &Value) {
        let Some((asked, request)) = approvals::read(method, params, &self.transcript) else {
            log::debug!("codex app-server: request {method} answered as not supported");
            self.write(protocol::error_response(&request_id, protocol::METHOD_NOT_FOUND, "not supported"))
                .await;
            return;
        };
        self.run.log(LogStream::System, approvals::asked_line(&request)).await;
        if self.is_interrupting {
            let mut answer = ApprovalAnswer::new(Decision::Decline, DECIDED_BY_DASHBOARD);
            answer.note = Some("the run is stopping".to_owned());
            self.reply(&request_id, &asked, &answer).await;
            return;
        }
        self.asks.start(Arc::clone(&self.run.approvals), request_id, asked, request);
    }

    /// Logs a decision and writes it to the server as the answer to request `request_id`.
    async fn reply(&mut self, request_id: &Value, asked: &Asked, answer: &ApprovalAnswer) {
        self.run.log(LogStream::System, approvals::decided_line(asked, answer)).await;
        let result = approvals::response(asked, answer);
        self.write(protocol::response(request_id, &result)).await;
    }

    /// Drops the ask of a request Codex no longer waits for (answered by now, or the turn ended without it).
    async fn withdraw(&mut self, request_id: &Value) {
        if self.asks.withdraw(request_id) {
            self.run.log(LogStream::System, "codex withdrew its request before it was answered").await;
        }
    }

    /// Writes one answer to the server. A failed write means the server is gone; the reading loop finds out how.
    async fn write(&mut self, line: String) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(format!("{line}\n").as_bytes()).await;
            let _ = stdin.flush().await;
        }
    }

    /// Why the server's end ended the run: its exit status and its last stderr lines.
    fn exit_error(&self) -> String {
        let how = match &self.exit {
            Some(Ok(status)) => status.code().map_or_else(
                || "codex app-server was killed by a signal".to_owned(),
                |code| format!("codex app-server exited with code {code} before the turn ended"),
            ),
            Some(Err(error)) => error.to_string(),
            None => "codex app-server closed its output".to_owned(),
        };
        let tail = Vec::from(self.stderr.clone()).join("\n");
        if tail.is_empty() { how } else { format!("{how}: {tail}") }
    }
}
