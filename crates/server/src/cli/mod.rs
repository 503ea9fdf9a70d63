//! The command-line client: `agent-dashboard functions | trigger | ls | show | logs | cancel | retry | continue |
//! approvals | approve | decline`, run against a dashboard through `dashboard-client` (DESIGN.md §14, docs/cli.md).
//!
//! Exit status: 0 when the command did what it was asked (and a waited-for or followed execution succeeded), 1 when a
//! waited-for or followed execution ended otherwise, 2 for a usage error, a dashboard that cannot be reached, or an
//! error answer of the API (its message on standard error).

mod args;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use dashboard_client::{Client, ClientError, FollowEvent, ListFilter, TriggerRequest};
use dashboard_core::{Execution, ExecutionStatus};

pub use args::CLIENT_USAGE;
use args::{Args, Command, Wait};
use output::Output;

/// The exit status of a waited-for or followed execution that did not succeed.
const NOT_SUCCEEDED: u8 = 1;
/// The exit status of a usage error, an unreachable dashboard or an API error.
const USAGE_OR_CONNECTION: u8 = 2;

/// Runs the client command line `args` (without the program's name), with `DASHBOARD_URL` and `DASHBOARD_TOKEN`
/// from `lookup`.
pub async fn run(args: Vec<OsString>, lookup: impl Fn(&str) -> Option<String>) -> ExitCode {
    let mut output = Output::standard();
    let args = match args::parse(args, lookup) {
        Ok(args) => args,
        Err(message) => {
            output.note(&format!("agent-dashboard: {message}\n\n{CLIENT_USAGE}"));
            return ExitCode::from(USAGE_OR_CONNECTION);
        }
    };
    match execute(&args, &mut output).await {
        Ok(code) => code,
        Err(error) => {
            output.note(&format!("agent-dashboard: {}", describe(&error)));
            ExitCode::from(USAGE_OR_CONNECTION)
        }
    }
}

/// An error for a person: the API's message as it said it, or what failed on the way.
fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Api { status, error, .. } => format!("{} ({status} {})", error.message, error.code),
        ClientError::Transport { url, source, .. } => {
            let mut text = format!("could not reach the dashboard at {url}: {source}");
            let mut cause = std::error::Error::source(source);
            while let Some(inner) = cause {
                text.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            text
        }
        other => other.to_string(),
    }
}

/// Does what `args` asks.
async fn execute(args: &Args, output: &mut Output) -> Result<ExitCode, ClientError> {
    if args.command == Command::Help {
        output.line(CLIENT_USAGE);
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = Client::new(&args.url)?;
    if let Some(token) = &args.token {
        client = client.with_token(token.clone());
    }
    let is_json = args.is_json;
    match &args.command {
        Command::Help => {}
        Command::Functions => {
            let functions = client.functions().await?;
            if is_json {
                output.json(&serde_json::json!({ "items": functions }));
            } else {
                output::functions_table(output, &functions);
            }
        }
        Command::Trigger { function, input, backend, idempotency_key, wait } => {
            let request = TriggerRequest {
                function: function.clone(),
                input: input.clone(),
                backend: backend.clone(),
                idempotency_key: idempotency_key.clone(),
            };
            let execution = client.trigger(&request).await?;
            return match wait {
                Wait::No => {
                    if is_json {
                        output.json(&execution);
                    } else {
                        output.line(&execution.id.to_string());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Wait::ForEnd => {
                    let end = follow(&client, &execution.id.to_string(), None, is_json).await?;
                    if is_json {
                        output.json(&end);
                    } else {
                        output::execution_details(output, &end);
                    }
                    Ok(exit_code(&end))
                }
                Wait::Follow => {
                    output.note(&format!("{} {} {}", execution.function, execution.id, execution.status));
                    let end = follow(&client, &execution.id.to_string(), Some(output), is_json).await?;
                    Ok(exit_code(&end))
                }
            };
        }
        Command::List { status, function, limit } => {
            let filter =
                ListFilter { status: *status, function: function.clone(), limit: *limit, before: None };
            let page = client.list(&filter).await?;
            if is_json {
                output.json(&page);
            } else {
                output::executions_table(output, &page.items);
            }
        }
        Command::Show { id } => {
            let execution = client.get(id).await?;
            if is_json {
                output.json(&execution);
            } else {
                output::execution_details(output, &execution);
            }
        }
        Command::Logs { id, follow: true } => {
            let end = follow(&client, id, Some(output), is_json).await?;
            return Ok(exit_code(&end));
        }
        Command::Logs { id, follow: false } => print_log(&client, id, output, is_json).await?,
        Command::Cancel { id } => changed(output, is_json, client.cancel(id).await?),
        Command::Retry { id } => changed(output, is_json, client.retry(id).await?),
        Command::Continue { id, prompt } => {
            changed(output, is_json, client.continue_session(id, prompt).await?)
        }
        Command::Approvals => {
            let approvals = client.approvals().await?;
            if is_json {
                output.json(&serde_json::json!({ "items": approvals }));
            } else {
                output::approvals_table(output, &approvals);
            }
        }
        Command::Decide { id, decision, note } => {
            let approval = client.decide(id, *decision, note.as_deref()).await?;
            if is_json {
                output.json(&approval);
            } else {
                output.line(&format!("{} {}", approval.id, approval.status.as_str()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer of cancel, retry or continue: the execution as JSON, or its id and status.
fn changed(output: &mut Output, is_json: bool, execution: Execution) {
    if is_json {
        output.json(&execution);
    } else {
        output.line(&format!("{} {}", execution.id, execution.status));
    }
}

/// Prints the whole log, page by page.
async fn print_log(client: &Client, id: &str, output: &mut Output, is_json: bool) -> Result<(), ClientError> {
    let mut after = 0;
    loop {
        let page = client.logs(id, after).await?;
        for line in &page.items {
            if is_json { output.json_line(line) } else { output.log_line(line) }
        }
        if page.items.is_empty() || page.next_after <= after {
            return Ok(());
        }
        after = page.next_after;
    }
}

/// Follows the execution's log until it ends — printing each line once, when there is an `output` — and answers the
/// execution as it ended. With `--json` the lines are JSON lines and the end is the execution's JSON on one line.
async fn follow(
    client: &Client,
    id: &str,
    mut output: Option<&mut Output>,
    is_json: bool,
) -> Result<Execution, ClientError> {
    let mut follow = client.follow(id);
    let mut last = None;
    while let Some(event) = follow.next().await? {
        match event {
            FollowEvent::Line(line) => match output.as_deref_mut() {
                Some(output) if is_json => output.json_line(&line),
                Some(output) => output.log_line(&line),
                None => {}
            },
            FollowEvent::Status(execution) => last = Some(*execution),
        }
    }
    let end = last.expect("a follow ends only after it yielded the terminal status");
    if let Some(output) = output {
        if is_json {
            output.json_line(&end);
        } else {
            output.note(&output::summary(&end));
        }
    }
    Ok(end)
}

/// 0 for an execution that succeeded, 1 for one that ended otherwise.
fn exit_code(execution: &Execution) -> ExitCode {
    if execution.status == ExecutionStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_SUCCEEDED)
    }
}
