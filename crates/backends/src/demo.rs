//! The `demo` backend: a simulated agent, so a newcomer can trigger something with nothing installed.

use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Readiness, RunContext, RunOutcome};
use dashboard_core::LogStream;
use serde::Deserialize;
use serde_json::json;

/// The kind this module runs, as `[[backends]]` entries name it and the backends page shows it.
pub(crate) const KIND: &str = "demo";

/// The most steps a demo run may take, so one request cannot fill the store.
const MAX_STEPS: u64 = 10_000;
/// The default pause between two steps.
const DEFAULT_DELAY_MS: u64 = 300;

/// The settings of a `demo` backend: none, so any field in its `[[backends]]` entry (less `name` and `kind`) is a
/// mistake.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {}

/// A simulated agent. Input fields, all optional: `steps` (log lines, default 3; 0 finishes at once), `delay_ms`
/// (between lines, default 300), `fail` (end as failed), `hang` (never end until cancelled or timed out).
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoBackend;

#[async_trait]
impl Backend for DemoBackend {
    fn kind(&self) -> &'static str {
        KIND
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

        if let Some(prompt) = &run.prompt {
            run.log(LogStream::Agent, format!("prompt: {prompt}")).await;
        }
        for step in 1..=steps {
            if step > 1 {
                run.sleep(delay).await?;
            }
            run.log(LogStream::Stdout, format!("step {step} of {steps}: thinking about {}", run.function))
                .await;
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
        Ok(RunOutcome::Succeeded {
            output: json!({"steps": steps, "summary": format!("{} finished {steps} steps", run.function)}),
            usage: Some(json!({"input_tokens": 12 * steps, "output_tokens": 34 * steps})),
        })
    }
}

#[cfg(test)]
mod tests {
    use dashboard_backend_api::log_channel;
    use dashboard_core::ExecutionId;
    use serde_json::Value;

    use super::*;

    async fn run(input: Value) -> (Result<RunOutcome, BackendError>, Vec<String>) {
        let (sink, mut receiver) = log_channel(1024);
        let context = RunContext::new(ExecutionId::generate(), "demo-fn", input, sink);
        let outcome = DemoBackend.trigger(context).await;
        let mut lines = Vec::new();
        while let Ok(line) = receiver.try_recv() {
            lines.push(line.message);
        }
        (outcome, lines)
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
    async fn zero_steps_finishes_at_once_and_fail_fails() {
        let (outcome, lines) = run(json!({"steps": 0})).await;
        assert!(matches!(outcome, Ok(RunOutcome::Succeeded { .. })) && lines.is_empty());
        let (outcome, _) = run(json!({"steps": 0, "fail": true})).await;
        assert!(matches!(outcome, Ok(RunOutcome::Failed { .. })), "{outcome:?}");
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
