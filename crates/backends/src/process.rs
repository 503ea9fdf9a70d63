//! Running a local program for a backend: in its own process group, with a clean environment, its output streamed
//! line by line, and — on cancel, timeout or exit — SIGTERM then SIGKILL to the whole group, so nothing survives it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use dashboard_backend_api::BackendError;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::limits::LOG_LINE_BYTES;

/// How long output may pause after the program has exited before the rest is given up (a background child of the
/// program can hold its pipes open forever).
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// `PATH` for programs when the server itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What to run and how.
#[derive(Clone, Debug)]
pub(crate) struct ProgramSpec {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) workdir: Option<PathBuf>,
    /// The whole environment of the program: nothing else is inherited.
    pub(crate) env: Vec<(String, String)>,
    /// How long the program gets between SIGTERM and SIGKILL.
    pub(crate) kill_grace: Duration,
    /// The longest piece of a stdout line read at once; a longer line arrives in pieces of this size. Stderr always
    /// comes in pieces of at most a log line (16 KiB).
    pub(crate) max_stdout_line_bytes: usize,
}

/// Which output a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pipe {
    Stdout,
    Stderr,
}

/// One line of a program's output, or one piece of a line longer than the pipe's limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) pipe: Pipe,
    /// The text, without its line break. A piece ends on a character boundary: a character is never split.
    pub(crate) text: String,
    /// Whether the line goes on in the next piece (it was longer than the pipe's limit).
    pub(crate) is_cut: bool,
}

/// Receives a program's output, a line at a time, in the order the lines were read.
pub(crate) trait LineHandler: Send {
    fn line(&mut self, line: Line) -> impl Future<Output = ()> + Send;
}

/// How a program run ended.
#[derive(Debug)]
pub(crate) enum ProgramEnd {
    /// It exited by itself (or was killed by someone else).
    Exited(ExitStatus),
    /// The run was cancelled and the program's group stopped.
    Stopped,
}

/// The environment for a program: `PATH`, the named variables of the server's environment that are set, then the
/// fixed ones (which win).
pub(crate) fn environment(passthrough: &[String], fixed: &[(String, String)]) -> Vec<(String, String)> {
    let mut env =
        vec![("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()))];
    for name in passthrough {
        if let Ok(value) = std::env::var(name) {
            env.push((name.clone(), value));
        }
    }
    env.extend(fixed.iter().cloned());
    env
}

/// Where `program` would be found: itself when it holds a `/`, else the first match on `PATH`.
pub(crate) fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// What a running program did next.
pub(crate) enum Output {
    /// It wrote a line.
    Line(Line),
    /// Both of its pipes closed.
    Closed,
    /// It exited.
    Exited(Result<ExitStatus, BackendError>),
}

/// A started program: its process group (killed when this is dropped), its output as lines, and its stdin when it
/// was asked for.
pub(crate) struct Program {
    child: Child,
    group: Option<Pid>,
    _group_guard: GroupGuard,
    lines: mpsc::Receiver<Line>,
    stdin: Option<ChildStdin>,
    kill_grace: Duration,
    name: String,
}

impl Program {
    /// Starts the program in a process group of its own; `has_stdin` gives it a pipe to write to (else `/dev/null`).
    pub(crate) fn spawn(spec: &ProgramSpec, has_stdin: bool) -> Result<Self, BackendError> {
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(name, value)| (name, value)))
            .stdin(if has_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(workdir) = &spec.workdir {
            command.current_dir(workdir);
        }
        let mut child = command.spawn().map_err(|error| spawn_error(spec, error))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        let (sender, lines) = mpsc::channel(256);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, Pipe::Stdout, spec.max_stdout_line_bytes, sender.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(stderr, Pipe::Stderr, LOG_LINE_BYTES, sender));
        }
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            group,
            // Whatever way the program is left — even by the caller dropping it mid-wait — the whole group is
            // killed.
            _group_guard: GroupGuard(group),
            lines,
            stdin,
            kill_grace: spec.kill_grace,
            name: spec.program.clone(),
        })
    }

    /// The program's stdin, once (when it was spawned with one).
    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The next line of output, or the news that both pipes closed or that the program exited (lines first).
    pub(crate) async fn next_output(&mut self) -> Output {
        tokio::select! {
            biased;
            line = self.lines.recv() => line.map_or(Output::Closed, Output::Line),
            status = self.child.wait() => Output::Exited(self.wait_error(status)),
        }
    }

    /// Waits for the program to exit.
    pub(crate) async fn wait(&mut self) -> Result<ExitStatus, BackendError> {
        let status = self.child.wait().await;
        self.wait_error(status)
    }

    fn wait_error(&self, status: std::io::Result<ExitStatus>) -> Result<ExitStatus, BackendError> {
        status.map_err(|error| BackendError::Other {
            message: format!("could not wait for {}: {error}", self.name),
            source: Some(Box::new(error)),
        })
    }

    /// The lines still in the pipes after an exit, until they pause for [`DRAIN_IDLE`].
    pub(crate) async fn next_line_after_exit(&mut self) -> Option<Line> {
        tokio::time::timeout(DRAIN_IDLE, self.lines.recv()).await.ok().flatten()
    }

    /// SIGTERM to the group, up to the kill grace for the program to exit, then SIGKILL to the group.
    pub(crate) async fn stop(&mut self) {
        stop_group(&mut self.child, self.group, self.kill_grace).await;
    }

    /// SIGKILL to whatever the program left running in its group.
    pub(crate) fn kill_leftovers(&self) {
        signal_group(self.group, Signal::SIGKILL);
    }

    /// SIGINT to the program alone, not its group: an agent that handles it (Claude Code) ends its turn, stops what
    /// it started — even in sessions of their own, out of the group's reach — and reports before it exits.
    pub(crate) fn interrupt(&self) {
        // The group's id is the program's own pid (it leads the group it was started in).
        if let Some(pid) = self.group {
            // ESRCH means it has exited already.
            let _ = nix::sys::signal::kill(pid, Signal::SIGINT);
        }
    }
}

/// Runs the program to its end, feeding its output to `handler`; stops its whole group when `cancel` fires.
pub(crate) async fn run_program(
    spec: &ProgramSpec,
    cancel: &CancellationToken,
    handler: &mut impl LineHandler,
) -> Result<ProgramEnd, BackendError> {
    let mut program = Program::spawn(spec, false)?;
    let mut exit = None;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                program.stop().await;
                return Ok(ProgramEnd::Stopped);
            }
            output = program.next_output() => match output {
                Output::Line(line) => handler.line(line).await,
                Output::Closed => break,
                Output::Exited(status) => {
                    exit = Some(status);
                    break;
                }
            },
        }
    }
    // Take what is left of the output: the pipes may still hold lines written just before the exit.
    while let Some(line) = program.next_line_after_exit().await {
        handler.line(line).await;
    }
    let status = match exit {
        Some(status) => status,
        None => tokio::select! {
            () = cancel.cancelled() => {
                program.stop().await;
                return Ok(ProgramEnd::Stopped);
            }
            status = program.wait() => status,
        },
    };
    // The program has ended; whatever it left running in its group goes with it.
    program.kill_leftovers();
    Ok(ProgramEnd::Exited(status?))
}

fn spawn_error(spec: &ProgramSpec, error: std::io::Error) -> BackendError {
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            let missing = match &spec.workdir {
                Some(dir) if !dir.is_dir() => format!("working directory {} not found", dir.display()),
                _ => format!("program {:?} not found", spec.program),
            };
            BackendError::Unavailable(missing)
        }
        std::io::ErrorKind::PermissionDenied => {
            BackendError::Unavailable(format!("program {:?} is not executable", spec.program))
        }
        _ => BackendError::Other {
            message: format!("could not start {}: {error}", spec.program),
            source: Some(Box::new(error)),
        },
    }
}

/// SIGTERM to the group, up to `grace` for the program to exit, then SIGKILL to the group.
async fn stop_group(child: &mut Child, group: Option<Pid>, grace: Duration) {
    signal_group(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        log::debug!("program did not stop within {grace:?} of SIGTERM; sending SIGKILL");
    }
    signal_group(group, Signal::SIGKILL);
    let _ = child.wait().await;
}

/// Sends SIGKILL to a process group when dropped. `kill_on_drop` reaches only the program itself, not the children
/// it started.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH means the group is already gone, which is what we want.
        let _ = killpg(group, signal);
    }
}

/// Reads lines (or pieces of overlong lines, each at most `max_bytes`) from a pipe until it closes. A piece is cut on a
/// character boundary: the bytes of a character it would split begin the next piece.
async fn read_lines(pipe: impl AsyncRead + Unpin, kind: Pipe, max_bytes: usize, sender: mpsc::Sender<Line>) {
    // At least one whole character fits in a piece, so every piece makes progress.
    let max_bytes = max_bytes.max(4);
    let mut reader = BufReader::new(pipe);
    let mut buffer = Vec::new();
    let mut carried = Vec::new();
    loop {
        buffer.clear();
        buffer.append(&mut carried);
        let room = u64::try_from(max_bytes - buffer.len()).unwrap_or(u64::MAX);
        let is_end = match (&mut reader).take(room).read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => true,
            Ok(_) => false,
        };
        if is_end && buffer.is_empty() {
            return;
        }
        let is_cut = !is_end && buffer.len() == max_bytes && buffer.last() != Some(&b'\n');
        if is_cut {
            carried = buffer.split_off(buffer.len() - incomplete_char_len(&buffer));
        }
        while buffer.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
            buffer.pop();
        }
        let line = Line { pipe: kind, text: String::from_utf8_lossy(&buffer).into_owned(), is_cut };
        if sender.send(line).await.is_err() || is_end {
            return;
        }
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 character that is not complete yet (0 to 3).
fn incomplete_char_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(4) {
        let byte = bytes[bytes.len() - back];
        // Continuation bytes (10xxxxxx) belong to a character that starts further back.
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue;
        }
        let length = match byte {
            0b1100_0000..=0b1101_1111 => 2,
            0b1110_0000..=0b1110_1111 => 3,
            0b1111_0000..=0b1111_0111 => 4,
            // ASCII, or a byte that starts no character: nothing to wait for.
            _ => 1,
        };
        return if length > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<(Pipe, String)>);

    impl LineHandler for Collect {
        async fn line(&mut self, line: Line) {
            self.0.push((line.pipe, line.text));
        }
    }

    fn shell(script: &str) -> ProgramSpec {
        ProgramSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            workdir: None,
            env: environment(&[], &[("GREETING".into(), "hi".into())]),
            kill_grace: Duration::from_secs(5),
            max_stdout_line_bytes: LOG_LINE_BYTES,
        }
    }

    #[tokio::test]
    async fn output_arrives_line_by_line_from_both_pipes() {
        let mut lines = Collect::default();
        let end = run_program(
            &shell("echo $GREETING; echo oops >&2; printf 'no newline'"),
            &CancellationToken::new(),
            &mut lines,
        )
        .await
        .expect("the program runs");
        assert!(matches!(end, ProgramEnd::Exited(status) if status.success()));
        let mut got = lines.0;
        got.sort_by_key(|(pipe, _)| *pipe == Pipe::Stderr);
        assert_eq!(
            got,
            [(Pipe::Stdout, "hi".into()), (Pipe::Stdout, "no newline".into()), (Pipe::Stderr, "oops".into())]
        );
    }

    #[tokio::test]
    async fn the_environment_holds_only_what_was_given() {
        let mut lines = Collect::default();
        run_program(&shell("echo \"home=${HOME:-unset}\""), &CancellationToken::new(), &mut lines)
            .await
            .expect("runs");
        assert_eq!(lines.0, [(Pipe::Stdout, "home=unset".into())]);
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable() {
        let mut spec = shell("true");
        spec.program = "/no/such/program".into();
        let error =
            run_program(&spec, &CancellationToken::new(), &mut Collect::default()).await.expect_err("ran");
        assert!(
            matches!(error, BackendError::Unavailable(ref message) if message.contains("not found")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_background_child_holding_the_pipes_does_not_hang_the_run() {
        let started = std::time::Instant::now();
        let end =
            run_program(&shell("sleep 30 & echo done"), &CancellationToken::new(), &mut Collect::default())
                .await;
        assert!(matches!(end, Ok(ProgramEnd::Exited(_))));
        assert!(started.elapsed() < Duration::from_secs(20), "the run waited for the background child");
    }

    #[test]
    fn programs_are_found_on_the_path() {
        assert!(locate("sh").is_some());
        assert!(locate("/bin/sh").is_some());
        assert!(locate("no-such-program-here").is_none());
    }
}
