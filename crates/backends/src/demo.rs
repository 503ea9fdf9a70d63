//! The `demo` backend: a simulated agent, so a newcomer can trigger something with nothing installed.

use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{
    ApprovalAnswer, ApprovalRequest, Backend, BackendError, Readiness, RunContext, RunOutcome,
};
use dashboard_core::{
    ApprovalKind, FileChange, FileChangeKind, ItemBody, ItemStatus, LogStream, MessageRole, NewItem,
};
use serde::Deserialize;
use serde_json::json;

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "demo";

/// The most steps a demo run may take, so one request cannot fill the store.
const MAX_STEPS: u64 = 10_000;
/// The most approvals a demo run may ask for.
const MAX_APPROVALS: u64 = 100;
/// The default pause between two steps.
const DEFAULT_DELAY_MS: u64 = 300;

/// The settings of a `demo` backend: none, so any field in its `[[backends]]` entry (less `name` and `kind`) is a
/// mistake.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {}

/// A simulated agent. Input fields, all optional: `steps` (log lines, default 3; 0 finishes at once), `delay_ms`
/// (between lines, default 300), `fail` (end as failed), `hang` (never end until cancelled or timed out), `items`
/// (also report a transcript: the prompt as a `user` message, each step as an agent `message`, and a closing
/// `command` reported `in_progress`, then, after one more delay, `completed` with its output and exit code), `diff`
/// (report the run's diff: a line added to `NOTES.md` per step, also as a `file_change` item with `items`),
/// `approvals` (after its steps, ask for that many approvals in turn, at most 100 — with the function's
/// `approval_policy = "ask"` each waits for a person; each answer is logged, a `command` item per approval shows it
/// with `items`, and the output's `decisions` lists them), `approval_kind` (what they are about: `command`, the
/// default, `file_change`, `permission` or `question` — a question about a colour, whose answers are logged),
/// `cost_per_step_usd` (the usage reports this cost per step, and the run reports its usage after each step as it
/// goes, so budgets can stop it).
///
/// Sessions: a first turn invents a session id (`demo-` and its execution id) and reports it, silently; a follow-up
/// turn (`run.resume`) reports the same id and says in its log (and, with `items`, as an agent message) that it
/// continues that session, before its steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoBackend;

#[async_trait]
impl Backend for DemoBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn can_continue(&self) -> bool {
        true
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("simulated agent, always available")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let steps: u64 = run.input_field("steps")?.unwrap_or(3);
        if steps > MAX_STEPS {
            return Err(BackendError::InvalidInput(format!("input.steps: at most {MAX_STEPS}")));
        }
        let delay = Duration::from_millis(run.input_field("delay_ms")?.unwrap_or(DEFAULT_DELAY_MS));
        let fail: bool = run.input_field("fail")?.unwrap_or(false);
        let hang: bool = run.input_field("hang")?.unwrap_or(false);
        let has_items: bool = run.input_field("items")?.unwrap_or(false);
        let has_diff: bool = run.input_field("diff")?.unwrap_or(false);
        let approvals: u64 = run.input_field("approvals")?.unwrap_or(0);
        if approvals > MAX_APPROVALS {
            return Err(BackendError::InvalidInput(format!("input.approvals: at most {MAX_APPROVALS}")));
        }
        let approval_kind = match run.input_field::<String>("approval_kind")? {
            None => ApprovalKind::Command,
            Some(kind) => kind.parse().map_err(|_| {
                BackendError::InvalidInput(format!(
                    "input.approval_kind: {kind:?} is not one of command, file_change, permission, question"
                ))
            })?,
        };
        let transcript = Transcript { run: &run, is_on: has_items };

        match &run.resume {
            Some(session_id) => {
                let line = format!("continuing session {session_id}");
                run.session(session_id.as_str()).await;
                run.log(LogStream::Agent, &line).await;
                transcript.message("session", MessageRole::Agent, &line).await;
            }
            None => run.session(format!("demo-{}", run.execution_id)).await,
        }

        if let Some(prompt) = &run.prompt {
            run.log(LogStream::Agent, format!("prompt: {prompt}")).await;
            transcript.message("prompt", MessageRole::User, prompt).await;
        }
        let cost_per_step: Option<f64> = run.input_field("cost_per_step_usd")?;
        let usage = |steps: u64| {
            let mut usage = json!({"input_tokens": 12 * steps, "output_tokens": 34 * steps});
            if let Some(cost) = cost_per_step {
                usage["cost_usd"] = json!(cost * steps as f64);
            }
            usage
        };
        for step in 1..=steps {
            if step > 1 {
                run.sleep(delay).await?;
            }
            let line = format!("step {step} of {steps}: thinking about {}", run.function);
            run.log(LogStream::Stdout, &line).await;
            transcript.message(&format!("step-{step}"), MessageRole::Agent, &line).await;
            if cost_per_step.is_some() {
                run.report_usage(&usage(step));
            }
        }
        let mut decisions = Vec::new();
        for number in 1..=approvals {
            let answer = transcript.ask(approval_kind, number).await;
            decisions.push(answer.decision.as_str());
        }
        if has_diff {
            let diff = notes_diff(&run.function, steps);
            transcript.file_change(&diff).await;
            run.diff(diff).await;
        }
        if has_items {
            transcript.command(ItemStatus::InProgress, "", None).await;
            run.sleep(delay).await?;
            transcript.command(ItemStatus::Completed, &format!("{steps} steps done\n"), Some(0)).await;
        }
        if hang {
            run.log(LogStream::System, "hanging until cancelled or timed out").await;
            run.cancel.cancelled().await;
            return Err(BackendError::Cancelled);
        }
        if fail {
            run.log(LogStream::Stderr, "the demo agent was asked to fail").await;
            return Ok(RunOutcome::Failed {
                error: "the demo agent failed as asked (input.fail = true)".into(),
            });
        }
        let mut output =
            json!({"steps": steps, "summary": format!("{} finished {steps} steps", run.function)});
        if approvals > 0 {
            output["decisions"] = json!(decisions);
        }
        Ok(RunOutcome::Succeeded { output, usage: Some(usage(steps)) })
    }
}

/// The diff of a demo run: `NOTES.md` gains one line per step.
fn notes_diff(function: &str, steps: u64) -> String {
    let mut diff = format!(
        "diff --git a/NOTES.md b/NOTES.md\n--- a/NOTES.md\n+++ b/NOTES.md\n@@ -1 +1,{} @@\n # Notes on {function}\n",
        steps + 1
    );
    for step in 1..=steps {
        diff.push_str(&format!("+step {step} of {steps} done\n"));
    }
    diff
}

/// The transcript a demo run reports when asked to (`items`).
struct Transcript<'a> {
    run: &'a RunContext,
    is_on: bool,
}

impl Transcript<'_> {
    async fn message(&self, id: &str, role: MessageRole, text: &str) {
        self.report(id, ItemStatus::Completed, ItemBody::Message { role, text: text.to_owned() }).await;
    }

    /// The closing command, under one id: reported twice, as it starts and as it ends.
    async fn command(&self, status: ItemStatus, output: &str, exit_code: Option<i32>) {
        let body = ItemBody::Command {
            command: "demo --summarize".to_owned(),
            cwd: None,
            output: output.to_owned(),
            exit_code,
        };
        self.report("command", status, body).await;
    }

    /// Asks approval number `number` of `kind`, logs the answer, and — for a command — shows the command as an item
    /// that runs only when approved.
    async fn ask(&self, kind: ApprovalKind, number: u64) -> ApprovalAnswer {
        let run = self.run;
        let command = format!("demo --approved-step {number}");
        let item_id = format!("approval-step-{number}");
        let mut request = match kind {
            ApprovalKind::Command => ApprovalRequest::new(
                kind,
                &command,
                json!({"command": command, "cwd": "/demo", "reason": "the demo agent wants to run a command"}),
            ),
            ApprovalKind::FileChange => ApprovalRequest::new(
                kind,
                "NOTES.md",
                json!({
                    "changes": [{"path": "NOTES.md", "kind": "update", "diff": notes_diff(&run.function, number)}],
                    "reason": "the demo agent wants to write its notes",
                }),
            ),
            ApprovalKind::Permission => ApprovalRequest::new(
                kind,
                "network access",
                json!({"permissions": {"network": {"enabled": true}}, "reason": "the demo agent wants the network"}),
            ),
            ApprovalKind::Question => ApprovalRequest::new(
                kind,
                "Which colour should the demo use?",
                json!({"questions": [{"id": "colour", "question": "Which colour should the demo use?", "options": ["red", "blue"]}]}),
            ),
        };
        if kind == ApprovalKind::Command {
            request.item_id = Some(item_id.clone());
            request.grant_key = Some(command.clone());
            self.command_item(&item_id, &command, ItemStatus::InProgress, "", None).await;
        }
        run.log(LogStream::Agent, format!("asking for approval {number}: {}", request.summary)).await;
        let answer = run.ask_approval(request).await;
        let mut line = format!("approval {number}: {} by {}", answer.decision.as_str(), answer.decided_by);
        if let Some(note) = &answer.note {
            line.push_str(&format!(" ({note})"));
        }
        if let Some(answers) = &answer.answers {
            line.push_str(&format!(", answers {answers}"));
        }
        run.log(LogStream::Agent, line).await;
        if kind == ApprovalKind::Command {
            let (status, output, exit_code) = if answer.is_approved() {
                (ItemStatus::Completed, "done\n", Some(0))
            } else {
                (ItemStatus::Declined, "", None)
            };
            self.command_item(&item_id, &command, status, output, exit_code).await;
        }
        answer
    }

    async fn command_item(
        &self,
        id: &str,
        command: &str,
        status: ItemStatus,
        output: &str,
        exit_code: Option<i32>,
    ) {
        let body = ItemBody::Command {
            command: command.to_owned(),
            cwd: Some("/demo".to_owned()),
            output: output.to_owned(),
            exit_code,
        };
        self.report(id, status, body).await;
    }

    /// The change to `NOTES.md`, with its diff.
    async fn file_change(&self, diff: &str) {
        let change = FileChange {
            path: "NOTES.md".to_owned(),
            kind: FileChangeKind::Update,
            diff: Some(diff.to_owned()),
        };
        self.report("notes", ItemStatus::Completed, ItemBody::FileChange { changes: vec![change] }).await;
    }

    async fn report(&self, id: &str, status: ItemStatus, body: ItemBody) {
        if !self.is_on {
            return;
        }
        let item = NewItem::new(id, status, body).expect("the demo's item ids are not empty");
        self.run.item(item).await;
    }
}

#[cfg(test)]
mod tests {
    use dashboard_backend_api::{RunEntry, log_channel};
    use dashboard_core::ExecutionId;
    use serde_json::Value;

    use super::*;

    async fn run(input: Value) -> (Result<RunOutcome, BackendError>, Vec<String>) {
        let (outcome, entries) = run_entries(input).await;
        let lines = entries.into_iter().filter_map(RunEntry::into_line).map(|line| line.message).collect();
        (outcome, lines)
    }

    async fn run_entries(input: Value) -> (Result<RunOutcome, BackendError>, Vec<RunEntry>) {
        let (sink, mut receiver) = log_channel(1024);
        let context = RunContext::new(ExecutionId::generate(), "demo-fn", input, sink);
        let outcome = DemoBackend.trigger(context).await;
        let mut entries = Vec::new();
        while let Ok(entry) = receiver.try_recv() {
            entries.push(entry);
        }
        (outcome, entries)
    }

    #[tokio::test]
    async fn steps_become_log_lines_and_an_output() {
        let (outcome, lines) = run(json!({"steps": 2, "delay_ms": 1})).await;
        assert!(
            matches!(outcome, Ok(RunOutcome::Succeeded { ref output, .. }) if output["steps"] == 2),
            "{outcome:?}"
        );
        assert_eq!(lines, ["step 1 of 2: thinking about demo-fn", "step 2 of 2: thinking about demo-fn"]);
    }

    #[tokio::test]
    async fn a_first_turn_invents_a_session_and_a_follow_up_continues_it() {
        let (sink, mut receiver) = log_channel(1024);
        let execution_id = ExecutionId::generate();
        let context = RunContext::new(execution_id, "demo-fn", json!({"steps": 0}), sink);
        DemoBackend.trigger(context).await.expect("a first turn");
        assert_eq!(receiver.try_recv().ok(), Some(RunEntry::Session(format!("demo-{execution_id}"))));

        let (sink, mut receiver) = log_channel(1024);
        let mut context = RunContext::new(ExecutionId::generate(), "demo-fn", json!({"steps": 0}), sink);
        context.resume = Some("demo-1".into());
        DemoBackend.trigger(context).await.expect("a follow-up turn");
        assert_eq!(receiver.try_recv().ok(), Some(RunEntry::Session("demo-1".into())));
        let line = receiver.try_recv().ok().and_then(RunEntry::into_line).map(|line| line.message);
        assert_eq!(line.as_deref(), Some("continuing session demo-1"));
        assert!(DemoBackend.can_continue());
    }

    #[tokio::test]
    async fn with_items_each_step_is_a_message_and_a_command_closes_the_transcript() {
        let (outcome, entries) = run_entries(json!({"steps": 2, "delay_ms": 1, "items": true})).await;
        assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })), "{outcome:?}");
        let reported: Vec<String> = entries
            .into_iter()
            .map(|entry| match entry {
                RunEntry::Line(line) => format!("line {}", line.message),
                RunEntry::Item(item) => format!("{} {} {:?}", item.body.kind(), item.id, item.status),
                other => format!("{other:?}"),
            })
            .filter(|entry| !entry.starts_with("Session"))
            .collect();
        assert_eq!(
            reported,
            [
                "line step 1 of 2: thinking about demo-fn",
                "message step-1 Completed",
                "line step 2 of 2: thinking about demo-fn",
                "message step-2 Completed",
                "command command InProgress",
                "command command Completed",
            ]
        );
    }

    #[tokio::test]
    async fn zero_steps_finishes_at_once_and_fail_fails() {
        let (outcome, lines) = run(json!({"steps": 0})).await;
        assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })) && lines.is_empty());
        let (outcome, _) = run(json!({"steps": 0, "fail": true})).await;
        assert!(matches!(outcome, Ok(RunOutcome::Failed { .. })), "{outcome:?}");
    }

    #[tokio::test]
    async fn approvals_are_asked_in_turn_and_their_answers_logged() {
        let (outcome, lines) = run(json!({"steps": 0, "approvals": 2})).await;
        assert!(
            matches!(outcome, Ok(RunOutcome::Succeeded { ref output, .. })
                if output["decisions"] == json!(["approve", "approve"])),
            "{outcome:?}"
        );
        assert_eq!(
            lines,
            [
                "asking for approval 1: demo --approved-step 1",
                "approval 1: approve by policy",
                "asking for approval 2: demo --approved-step 2",
                "approval 2: approve by policy",
            ]
        );
        let (outcome, _) = run(json!({"approvals": 101})).await;
        assert!(
            matches!(outcome, Err(BackendError::InvalidInput(ref message)) if message.starts_with("input.approvals"))
        );
        let (outcome, _) = run(json!({"approvals": 1, "approval_kind": "bribe"})).await;
        assert!(
            matches!(outcome, Err(BackendError::InvalidInput(ref message)) if message.starts_with("input.approval_kind"))
        );
    }

    #[tokio::test]
    async fn a_wrongly_typed_field_is_named() {
        let (outcome, _) = run(json!({"steps": "many"})).await;
        assert!(
            matches!(outcome, Err(BackendError::InvalidInput(ref message)) if message.starts_with("input.steps"))
        );
    }

    #[tokio::test]
    async fn hang_ends_only_when_cancelled() {
        let (sink, _receiver) = log_channel(16);
        let context = RunContext::new(ExecutionId::generate(), "f", json!({"steps": 0, "hang": true}), sink);
        let cancel = context.cancel.clone();
        let task = tokio::spawn(DemoBackend.trigger(context));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        cancel.cancel();
        let outcome = task.await.expect("the task does not panic");
        assert!(matches!(outcome, Err(BackendError::Cancelled)));
    }
}
