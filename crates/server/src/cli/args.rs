//! The client's command line, read with `lexopt`: global flags (`--url`, `--token`, `--json`) anywhere, one
//! subcommand with its own flags and words, and `DASHBOARD_URL` / `DASHBOARD_TOKEN` under the flags.

use std::ffi::OsString;

use dashboard_client::{DEFAULT_URL, input};
use dashboard_core::{Decision, ExecutionStatus};
use serde_json::Value;

/// The client's usage text.
pub const CLIENT_USAGE: &str = "\
Usage: agent-dashboard [--url URL] [--token TOKEN] [--json] COMMAND …

A client of a running dashboard (docs/cli.md). Flags may stand before or after the command.

  functions                          the functions
  trigger FN [--input JSON] [-i KEY=VALUE]… [--backend B] [--idempotency-key K] [--wait | --follow]
                                     start an execution; -i takes VALUE as JSON when it parses, else as a string
  ls [--status S] [--function F] [--limit N]
                                     the executions, newest first
  show ID                            one execution
  logs ID [-f]                       its log; -f follows it until it ends
  cancel ID | retry ID               cancel a running one, retry a finished one
  continue ID PROMPT                 the next turn of its agent session
  approvals                          the pending approvals
  approve ID [--for-session] [--note TEXT] | decline ID [--note TEXT]

  --url URL        the dashboard (DASHBOARD_URL, default http://127.0.0.1:8000)
  --token TOKEN    a bearer token (DASHBOARD_TOKEN)
  --json           the API's JSON instead of tables

Exit status: 0 done (a waited-for or followed execution succeeded), 1 it did not succeed (failed, timed out,
cancelled), 2 a usage error, a dashboard that cannot be reached, or an error answer of the API.";

/// How `trigger` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// At once, with the new execution.
    No,
    /// When the execution ends, with it.
    ForEnd,
    /// When the execution ends, printing its log meanwhile.
    Follow,
}

/// What the command line asks the client to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `functions`.
    Functions,
    /// `trigger`.
    Trigger {
        function: String,
        input: Value,
        backend: Option<String>,
        idempotency_key: Option<String>,
        wait: Wait,
    },
    /// `ls`.
    List { status: Option<ExecutionStatus>, function: Option<String>, limit: Option<u32> },
    /// `show ID`.
    Show { id: String },
    /// `logs ID [-f]`.
    Logs { id: String, follow: bool },
    /// `cancel ID`.
    Cancel { id: String },
    /// `retry ID`.
    Retry { id: String },
    /// `continue ID PROMPT`.
    Continue { id: String, prompt: String },
    /// `approvals`.
    Approvals,
    /// `approve ID` / `decline ID`.
    Decide { id: String, decision: Decision, note: Option<String> },
    /// `--help`.
    Help,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// The dashboard's URL.
    pub url: String,
    /// The bearer token.
    pub token: Option<String>,
    /// JSON instead of tables.
    pub is_json: bool,
    /// What to do.
    pub command: Command,
}

/// The flags and words of a command line, before they are checked against the subcommand.
#[derive(Default)]
struct Raw {
    url: Option<String>,
    token: Option<String>,
    is_json: bool,
    is_help: bool,
    words: Vec<String>,
    input: Option<String>,
    pairs: Vec<String>,
    backend: Option<String>,
    idempotency_key: Option<String>,
    is_wait: bool,
    is_follow: bool,
    status: Option<String>,
    function: Option<String>,
    limit: Option<String>,
    note: Option<String>,
    is_for_session: bool,
}

/// Reads the client's command line (without the program's name); an error is a usage error's message.
pub fn parse(args: Vec<OsString>, lookup: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
    let raw = read(args)?;
    let var =
        |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
    let url = raw.url.clone().or_else(|| var("DASHBOARD_URL")).unwrap_or_else(|| DEFAULT_URL.to_owned());
    let token = raw.token.clone().or_else(|| var("DASHBOARD_TOKEN"));
    let is_json = raw.is_json;
    let command = if raw.is_help { Command::Help } else { command(raw)? };
    Ok(Args { url, token, is_json, command })
}

/// Every flag and word, wherever it stands.
fn read(args: Vec<OsString>) -> Result<Raw, String> {
    use lexopt::prelude::*;
    let mut raw = Raw::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(argument) = parser.next().map_err(|error| error.to_string())? {
        let slot = match argument {
            Long("url") => &mut raw.url,
            Long("token") => &mut raw.token,
            Long("input") => &mut raw.input,
            Long("backend") => &mut raw.backend,
            Long("idempotency-key") => &mut raw.idempotency_key,
            Long("status") => &mut raw.status,
            Long("function") => &mut raw.function,
            Long("limit") => &mut raw.limit,
            Long("note") => &mut raw.note,
            Short('i') => {
                raw.pairs.push(string(parser.value())?);
                continue;
            }
            Long("json") => {
                raw.is_json = true;
                continue;
            }
            Long("wait") => {
                raw.is_wait = true;
                continue;
            }
            Short('f') | Long("follow") => {
                raw.is_follow = true;
                continue;
            }
            Long("for-session") => {
                raw.is_for_session = true;
                continue;
            }
            Short('h') | Long("help") => {
                raw.is_help = true;
                continue;
            }
            Value(word) => {
                let word = word.into_string().map_err(|word| format!("{word:?} is not UTF-8 text"))?;
                raw.words.push(word);
                continue;
            }
            other => return Err(other.unexpected().to_string()),
        };
        *slot = Some(string(parser.value())?);
    }
    Ok(raw)
}

/// A flag's value as text.
fn string(value: Result<OsString, lexopt::Error>) -> Result<String, String> {
    use lexopt::ValueExt;
    value.map_err(|error| error.to_string())?.string().map_err(|error| error.to_string())
}

/// The subcommand the words name, with the flags it takes; a flag it does not take is an error.
fn command(raw: Raw) -> Result<Command, String> {
    let Some((name, words)) = raw.words.split_first() else {
        return Err("a command is missing".to_owned());
    };
    let name = name.as_str();
    let allowed: &[(&str, bool)] = &[
        ("--input", raw.input.is_some()),
        ("-i", !raw.pairs.is_empty()),
        ("--backend", raw.backend.is_some()),
        ("--idempotency-key", raw.idempotency_key.is_some()),
        ("--wait", raw.is_wait),
        ("--follow", raw.is_follow),
        ("--status", raw.status.is_some()),
        ("--function", raw.function.is_some()),
        ("--limit", raw.limit.is_some()),
        ("--note", raw.note.is_some()),
        ("--for-session", raw.is_for_session),
    ];
    let takes: &[&str] = match name {
        "trigger" => &["--input", "-i", "--backend", "--idempotency-key", "--wait", "--follow"],
        "ls" => &["--status", "--function", "--limit"],
        "logs" => &["--follow"],
        "approve" => &["--note", "--for-session"],
        "decline" => &["--note"],
        _ => &[],
    };
    if let Some((flag, _)) = allowed.iter().find(|(flag, is_given)| *is_given && !takes.contains(flag)) {
        let flag = if *flag == "--follow" && name != "trigger" { "-f" } else { flag };
        return Err(format!("{name} does not take {flag}"));
    }
    let words = |names: &[&str]| -> Result<Vec<String>, String> {
        if words.len() == names.len() {
            return Ok(words.to_vec());
        }
        match names.get(words.len()) {
            Some(missing) => Err(format!("{name}: {missing} is missing")),
            None => Err(format!("{name}: unexpected {:?}", words[names.len()])),
        }
    };
    let one = |what: &str| words(&[what]).map(|mut words| words.remove(0));
    Ok(match name {
        "functions" => words(&[]).map(|_| Command::Functions)?,
        "trigger" => {
            let function = one("FN")?;
            let input = input::build(raw.input.as_deref(), &raw.pairs).map_err(|error| error.to_string())?;
            let wait = match (raw.is_wait, raw.is_follow) {
                (true, true) => return Err("trigger: --wait and --follow exclude each other".to_owned()),
                (true, false) => Wait::ForEnd,
                (false, true) => Wait::Follow,
                (false, false) => Wait::No,
            };
            Command::Trigger {
                function,
                input,
                backend: raw.backend,
                idempotency_key: raw.idempotency_key,
                wait,
            }
        }
        "ls" => {
            words(&[])?;
            let status = match &raw.status {
                Some(status) => Some(status.parse().map_err(|_| {
                    let all = ExecutionStatus::ALL.map(ExecutionStatus::as_str).join(", ");
                    format!("ls: --status {status:?} is not one of {all}")
                })?),
                None => None,
            };
            let limit = match &raw.limit {
                Some(limit) => Some(
                    limit
                        .parse()
                        .map_err(|_| format!("ls: --limit {limit:?} is not a number of executions"))?,
                ),
                None => None,
            };
            Command::List { status, function: raw.function, limit }
        }
        "show" => Command::Show { id: one("ID")? },
        "logs" => Command::Logs { id: one("ID")?, follow: raw.is_follow },
        "cancel" => Command::Cancel { id: one("ID")? },
        "retry" => Command::Retry { id: one("ID")? },
        "continue" => {
            let [id, prompt]: [String; 2] =
                words(&["ID", "PROMPT"])?.try_into().map_err(|_| "continue: ID PROMPT".to_owned())?;
            Command::Continue { id, prompt }
        }
        "approvals" => words(&[]).map(|_| Command::Approvals)?,
        "approve" | "decline" => {
            let decision = match (name, raw.is_for_session) {
                ("decline", _) => Decision::Decline,
                (_, true) => Decision::ApproveForSession,
                (_, false) => Decision::Approve,
            };
            Command::Decide { id: one("ID")?, decision, note: raw.note }
        }
        other => return Err(format!("unknown command {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_with(env: &[(&str, &str)], line: &[&str]) -> Result<Args, String> {
        let args = line.iter().map(OsString::from).collect();
        parse(args, |name| env.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned()))
    }

    fn check(line: &[&str], expected: Command) {
        assert_eq!(parse_with(&[], line).map(|args| args.command), Ok(expected), "{line:?}");
    }

    fn refused(line: &[&str], expected: &str) {
        match parse_with(&[], line) {
            Err(message) => assert!(message.contains(expected), "{line:?}: {message}"),
            Ok(args) => panic!("{line:?} was read as {args:?}"),
        }
    }

    #[test]
    fn every_client_command_of_the_dispatch_parses() {
        for name in dashboard_server::config::CLIENT_COMMANDS {
            let line: &[&str] = match name {
                "trigger" | "show" | "logs" | "cancel" | "retry" | "approve" | "decline" => &[name, "x"],
                "continue" => &[name, "x", "go on"],
                _ => &[name],
            };
            assert!(parse_with(&[], line).is_ok(), "{name}");
        }
    }

    #[test]
    fn commands_read_their_words_and_flags() {
        check(&["functions"], Command::Functions);
        check(
            &["trigger", "hello-agent", "-i", "steps=2", "-i", "name=Ada", "--follow"],
            Command::Trigger {
                function: "hello-agent".into(),
                input: json!({"steps": 2, "name": "Ada"}),
                backend: None,
                idempotency_key: None,
                wait: Wait::Follow,
            },
        );
        check(
            &[
                "--wait",
                "trigger",
                "--input",
                r#"{"fail":true}"#,
                "f",
                "--backend",
                "demo",
                "--idempotency-key",
                "k",
            ],
            Command::Trigger {
                function: "f".into(),
                input: json!({"fail": true}),
                backend: Some("demo".into()),
                idempotency_key: Some("k".into()),
                wait: Wait::ForEnd,
            },
        );
        check(
            &["ls", "--status", "timed_out", "--function", "f", "--limit", "5"],
            Command::List {
                status: Some(ExecutionStatus::TimedOut),
                function: Some("f".into()),
                limit: Some(5),
            },
        );
        check(&["logs", "-f", "abc"], Command::Logs { id: "abc".into(), follow: true });
        check(
            &["continue", "abc", "and now?"],
            Command::Continue { id: "abc".into(), prompt: "and now?".into() },
        );
        check(
            &["approve", "a", "--for-session"],
            Command::Decide { id: "a".into(), decision: Decision::ApproveForSession, note: None },
        );
        check(
            &["decline", "a", "--note", "not today"],
            Command::Decide { id: "a".into(), decision: Decision::Decline, note: Some("not today".into()) },
        );
        check(&["ls", "--help"], Command::Help);
    }

    #[test]
    fn global_flags_stand_anywhere_and_win_over_the_environment() {
        let env = [("DASHBOARD_URL", "http://env:1"), ("DASHBOARD_TOKEN", "from-env")];
        let args = parse_with(&env, &["ls"]).expect("valid");
        assert_eq!(
            (args.url.as_str(), args.token.as_deref(), args.is_json),
            ("http://env:1", Some("from-env"), false)
        );
        let args = parse_with(&env, &["ls", "--url", "http://flag:2", "--json", "--token=t"]).expect("valid");
        assert_eq!(
            (args.url.as_str(), args.token.as_deref(), args.is_json),
            ("http://flag:2", Some("t"), true)
        );
        let args = parse_with(&[], &["--json", "functions"]).expect("valid");
        assert_eq!((args.url.as_str(), args.token, args.is_json), (DEFAULT_URL, None, true));
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        refused(&[], "a command is missing");
        refused(&["--json"], "a command is missing");
        refused(&["frobnicate"], "unknown command \"frobnicate\"");
        refused(&["show"], "show: ID is missing");
        refused(&["show", "a", "b"], "show: unexpected \"b\"");
        refused(&["continue", "a"], "PROMPT is missing");
        refused(&["ls", "--status", "done"], "--status \"done\" is not one of queued, running");
        refused(&["ls", "--limit", "many"], "--limit \"many\"");
        refused(&["ls", "-f"], "ls does not take -f");
        refused(&["cancel", "a", "--wait"], "cancel does not take --wait");
        refused(&["trigger", "f", "--wait", "--follow"], "exclude each other");
        refused(&["trigger", "f", "-i", "steps"], "expected key=value");
        refused(&["trigger", "f", "--input", "{"], "--input: not JSON");
        refused(&["ls", "--port", "1"], "--port");
        refused(&["ls", "--url"], "--url");
    }
}
