//! The example function a newcomer finds on first start, so there is something to trigger within a minute.

use dashboard_backend_api::Principal;
use dashboard_core::{ApprovalPolicy, FunctionSpec};
use dashboard_engine::{Dashboard, EngineError};
use serde_json::json;

/// The name of the example function.
pub const EXAMPLE_FUNCTION: &str = "hello-agent";

/// Registers the example function on the demo backend, unless the store already holds functions.
pub async fn example_function(dashboard: &Dashboard) -> Result<(), EngineError> {
    if !dashboard.store().list_functions().await?.is_empty() {
        return Ok(());
    }
    let mut spec = FunctionSpec::new(EXAMPLE_FUNCTION, "demo");
    spec.description =
        "A simulated agent that thinks out loud for a few steps. Try steps, delay_ms, fail or hang — or approvals, \
         and decide what it asks on the Approvals page."
            .into();
    spec.prompt = Some("Say hello to {{ input.name | default(value=\"the world\") }}.".into());
    spec.input_schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who to greet", "default": "the world"},
            "steps": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 5, "description": "How many log lines"},
            "delay_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "default": 500, "description": "Pause between lines"},
            "fail": {"type": "boolean", "default": false, "description": "End as failed"},
            "hang": {"type": "boolean", "default": false, "description": "Never end until cancelled or timed out"},
            "approvals": {"type": "integer", "minimum": 0, "maximum": 5, "default": 0, "description": "Ask a person to approve this many commands"}
        },
        "additionalProperties": false
    });
    spec.timeout_secs = Some(300);
    // Its agent asks a person (the demo asks only when its input's `approvals` says so).
    spec.approval_policy = ApprovalPolicy::Ask;
    spec.approval_timeout_secs = Some(240);
    spec.tags = vec!["example".into()];
    match dashboard.create_function(&Principal::anonymous(), spec).await {
        Ok(_) | Err(EngineError::DuplicateName { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}
