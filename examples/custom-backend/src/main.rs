//! Shows how to write a backend of your own: a tiny "agent" that reverses a string, registered with the engine next
//! to nothing else, and one execution run through it with its logs and output read back from the store.
//!
//! Run with: `cargo run -p example-custom-backend`

// An example speaks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use async_trait::async_trait;
use dashboard_backend_api::{Backend, BackendError, Principal, Readiness, RunContext, RunOutcome};
use dashboard_core::{ExecutionStatus, FunctionSpec, LogStream};
use dashboard_engine::{Dashboard, TriggerRequest};
use dashboard_store::MemoryStore;
use serde_json::json;

/// A backend that reverses `input.text`, one log line per word, and can be cancelled between words.
struct ReverseBackend;

#[async_trait]
impl Backend for ReverseBackend {
    fn kind(&self) -> &'static str {
        "reverse"
    }

    async fn check(&self) -> Readiness {
        Readiness::ready("reverses text, needs nothing")
    }

    async fn trigger(&self, run: RunContext) -> Result<RunOutcome, BackendError> {
        let text: String = run.input_field("text")?.unwrap_or_default();
        for word in text.split_whitespace() {
            // `run.sleep` returns early with `Cancelled` when the run is cancelled or times out.
            run.sleep(Duration::from_millis(5)).await?;
            run.log(LogStream::Agent, format!("reading {word:?}")).await;
        }
        let reversed: String = text.chars().rev().collect();
        Ok(RunOutcome::Succeeded { output: json!({"reversed": reversed}), usage: None })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await
}

/// Registers the backend and a function, runs one execution, and prints its log and output.
async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dashboard = Dashboard::builder()
        .store(std::sync::Arc::new(MemoryStore::default()))
        .backend("reverse", ReverseBackend)
        .build();

    let mut spec = FunctionSpec::new("reverse-text", "reverse");
    spec.input_schema =
        json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}});
    dashboard.create_function(&Principal::anonymous(), spec).await?;

    let request = TriggerRequest {
        function: "reverse-text".into(),
        input: json!({"text": "hello custom backend"}),
        backend: None,
        idempotency_key: None,
    };
    let id = dashboard.trigger(&Principal::anonymous(), request).await?.execution.id;

    // Follow the execution through the bus until it has finished.
    let mut bus = dashboard.subscribe();
    let execution = loop {
        let execution = dashboard.store().get_execution(id).await?.ok_or("the execution vanished")?;
        if execution.status.is_terminal() {
            break execution;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), bus.recv()).await;
    };

    for line in dashboard.store().read_logs(id, 0, 100).await? {
        println!("{:>3} [{}] {}", line.seq, line.stream, line.message);
    }
    println!("{} → {}", execution.status, execution.output.unwrap_or_default());
    if execution.status != ExecutionStatus::Succeeded {
        return Err(format!("the execution ended {}", execution.status).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test --workspace` runs the example end to end.
    #[tokio::test]
    async fn the_example_runs_one_execution_to_success() {
        run().await.expect("the example succeeds");
    }
}
