//! One run of `claude -p`: the prompt written to its stdin, its stream-json output read line by line into log
//! lines, items and the result, and its end. A cancel or timeout sends SIGINT to claude alone — it ends the turn,
//! stops the command its Bash tool runs (in a session of its own, out of the group's reach) and prints a `result`
//! with the cost so far — then, if it has not exited within [`INTERRUPT_WAIT`], SIGTERM and SIGKILL to its group.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::Duration;

use dashboard_backend_api::{BackendError, RunContext, RunOutcome};
use dashboard_core::LogStream;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::events::{Effect, Transcript};
use super::outcome::{ended, spent_line, usage};
use crate::limits::{over_limit, size};
use crate::process::{Line, Output, Pipe, Program, ProgramSpec};

/// How long claude gets to end its turn and exit after SIGINT before its group is stopped.
const INTERRUPT_WAIT: Duration = Duration::from_secs(3);
/// How long claude gets to exit by itself after its `result`.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How many lines of text (stderr, and stdout that is not JSON) are kept to explain a crash.
const TAIL_LINES: usize = 10;

/// Runs `spec` with `prompt` on its stdin to its end.
pub(super) async fn run(
    run: &RunContext,
    spec: &ProgramSpec,
    prompt: String,
    max_event_bytes: usize,
) -> Result<RunOutcome, BackendError> {
    let mut program = Program::spawn(spec, true)?;
    if let Some(mut stdin) = program.take_stdin() {
        // In a task of its own: a long prompt fills the pipe before claude reads it. A claude that exits without
        // reading it makes the write fail, which says nothing the exit does not.
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let mut turn = Turn {
        run,
        program,
        transcript: Transcript::default(),
        result: None,
        tail: VecDeque::new(),
        max_event_bytes,
        is_skipping: false,
        n_skipped: 0,
    };
    let end = turn.read_to_end().await;
    turn.outcome(end).await
}

/// How the program ended.
enum End {
    /// It exited by itself.
    Exited(Result<ExitStatus, BackendError>),
    /// It was stopped: after a cancel, or because it did not exit after its result.
    Stopped,
}

/// One run of claude and what it has said so far.
struct Turn<'a> {
    run: &'a RunContext,
    program: Program,
    transcript: Transcript,
    /// The `result` message, once it came.
    result: Option<Value>,
    /// The last lines of text that were no JSON message.
    tail: VecDeque<String>,
    max_event_bytes: usize,
    /// Whether the pieces arriving belong to a line over the limit, which is skipped to its end.
    is_skipping: bool,
    /// How many lines over the limit were skipped.
    n_skipped: usize,
}

impl Turn<'_> {
    /// Reads the program's output until it exits, or until it is stopped: a cancel interrupts it first.
    async fn read_to_end(&mut self) -> End {
        let mut interrupted_at: Option<Instant> = None;
        let mut result_at: Option<Instant> = None;
        let mut is_closed = false;
        loop {
            let limit = match (interrupted_at, result_at) {
                (Some(at), _) => Some(at + INTERRUPT_WAIT),
                (None, Some(at)) => Some(at + EXIT_WAIT),
                (None, None) => None,
            };
            let expiry = async {
                match limit {
                    Some(limit) => tokio::time::sleep_until(limit).await,
                    None => std::future::pending().await,
                }
            };
            let output = async {
                if is_closed {
                    // Both pipes closed: only the exit is left to wait for.
                    Output::Exited(self.program.wait().await)
                } else {
                    self.program.next_output().await
                }
            };
            tokio::select! {
                biased;
                () = self.run.cancel.cancelled(), if interrupted_at.is_none() => {
                    self.program.interrupt();
                    interrupted_at = Some(Instant::now());
                }
                () = expiry => {
                    if interrupted_at.is_some() {
                        let line = "claude did not exit within 3 s of SIGINT; stopping its process group";
                        self.run.log(LogStream::System, line).await;
                    }
                    self.program.stop().await;
                    return End::Stopped;
                }
                output = output => match output {
                    Output::Line(line) => {
                        self.line(line).await;
                        if self.result.is_some() && result_at.is_none() {
                            result_at = Some(Instant::now());
                        }
                    }
                    Output::Closed => is_closed = true,
                    Output::Exited(status) => {
                        // The pipes may still hold what it wrote just before it exited.
                        while let Some(line) = self.program.next_line_after_exit().await {
                            self.line(line).await;
                        }
                        // Whatever it left running in its group goes with it.
                        self.program.kill_leftovers();
                        return End::Exited(status);
                    }
                },
            }
        }
    }

    async fn line(&mut self, line: Line) {
        let Line { pipe, text, is_cut } = line;
        if pipe == Pipe::Stderr {
            self.run.log(LogStream::Stderr, &text).await;
            self.keep(text);
            return;
        }
        if is_cut || self.is_skipping {
            if !self.is_skipping {
                self.n_skipped += 1;
                let limit = over_limit("a message of claude", self.max_event_bytes, "max_event_bytes");
                self.run.log(LogStream::Stderr, format!("{limit}; it is skipped")).await;
            }
            // The last piece of the line is the one that is not cut.
            self.is_skipping = is_cut;
            return;
        }
        for effect in self.transcript.line(&text) {
            match effect {
                Effect::Log(stream, line) => self.run.log(stream, line).await,
                Effect::Text(line) => {
                    self.run.log(LogStream::Stdout, &line).await;
                    self.keep(line);
                }
                Effect::Item(item) => self.run.item(item).await,
                Effect::Session(session_id) => self.run.session(session_id).await,
                // So far, so that a budget can stop the run while it runs.
                Effect::Usage(usage) => self.run.report_usage(&usage),
                Effect::Result(result) => {
                    // The whole run's usage and cost: kept by the engine however the run ends (a failure, a cancel).
                    let model = self.transcript.model.clone();
                    if let Some(usage) = usage(&result, model.as_deref()) {
                        self.run.report_usage(&usage.into_value());
                    }
                    self.result = Some(*result);
                }
            }
        }
    }

    fn keep(&mut self, line: String) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The run's outcome: a cancel is a cancel (its result's cost logged), else the result decides, else the exit.
    async fn outcome(&mut self, end: End) -> Result<RunOutcome, BackendError> {
        let model = self.transcript.model.clone();
        let result = self.result.take().map(|result| ended(&result, model.as_deref()));
        if let Some((_, Some(usage))) = &result {
            self.run.log(LogStream::System, spent_line(usage)).await;
        }
        if self.run.cancel.is_cancelled() {
            return Err(BackendError::Cancelled);
        }
        if let Some((outcome, _)) = result {
            if let RunOutcome::Failed { error } = &outcome {
                self.run.log(LogStream::Stderr, error).await;
            }
            return Ok(outcome);
        }
        let how = match end {
            End::Exited(status) => match status? {
                status if status.success() => "claude exited without a result".to_owned(),
                status => status.code().map_or_else(
                    || "claude was killed by a signal".to_owned(),
                    |code| format!("claude exited with code {code}"),
                ),
            },
            End::Stopped => "claude was stopped without a result".to_owned(),
        };
        let mut error = how;
        if self.n_skipped > 0 {
            let limit = size(self.max_event_bytes);
            error.push_str(&format!(
                " ({} messages over the limit of {limit} (max_event_bytes) were skipped)",
                self.n_skipped
            ));
        }
        let tail = Vec::from(std::mem::take(&mut self.tail)).join("\n");
        if !tail.is_empty() {
            error.push_str(": ");
            error.push_str(&tail);
        }
        Ok(RunOutcome::Failed { error })
    }
}
