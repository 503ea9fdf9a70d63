//! Claude Code's `result` message as the run's end: the output (`result`, or `structured_output` when a JSON schema
//! was asked), the status (`is_error` and `subtype`), and the usage in the dashboard's one shape.

use dashboard_backend_api::RunOutcome;
use dashboard_core::Usage;
use serde_json::{Map, Value, json};

use super::json::{count, list, text};

/// How a `result` message ends the run, and the usage it reports (also for a failed run, whose cost is logged).
pub(crate) fn ended(result: &Value, model: Option<&str>) -> (RunOutcome, Option<Usage>) {
    let usage = usage(result, model);
    let subtype = text(result, "subtype").unwrap_or("success");
    let is_error = result.get("is_error").and_then(Value::as_bool).unwrap_or(subtype != "success");
    if !is_error && subtype == "success" {
        let output = match result.get("structured_output").filter(|output| !output.is_null()) {
            Some(structured) => structured.clone(),
            None => json!({"message": result.get("result").and_then(Value::as_str)}),
        };
        let outcome = RunOutcome::Succeeded { output, usage: usage.clone().map(Usage::into_value) };
        return (outcome, usage);
    }
    (RunOutcome::Failed { error: failure(subtype, result) }, usage)
}

/// The error of a result that is not a success, naming what Claude Code said.
fn failure(subtype: &str, result: &Value) -> String {
    let errors: Vec<&str> = list(result, "errors").filter_map(Value::as_str).collect();
    let said = |fallback: &str| if errors.is_empty() { fallback.to_owned() } else { errors.join("; ") };
    match subtype {
        "error_max_turns" => {
            format!(
                "claude stopped at its turn limit (max_turns): {}",
                said("it reached the most turns allowed")
            )
        }
        "error_during_execution" => format!("claude failed during execution: {}", said("no reason given")),
        "error_max_budget_usd" => {
            format!(
                "budget exceeded: claude reached its spending cap (--max-budget-usd): {}",
                said("no reason given")
            )
        }
        // A failed request to the model API ends with `success` and `is_error`: its text is the error.
        "success" => {
            let message =
                text(result, "result").filter(|message| !message.is_empty()).unwrap_or("no message");
            match count(result, "api_error_status") {
                Some(status) => format!("claude reported an error (model API status {status}): {message}"),
                None => format!("claude reported an error: {message}"),
            }
        }
        other => format!("claude ended with {other}: {}", said("no reason given")),
    }
}

/// The usage of a `result`: its `usage` (input, cache reads and cache writes together as the input), the cost of
/// this run, and the model.
pub(crate) fn usage(result: &Value, model: Option<&str>) -> Option<Usage> {
    let raw = result.get("usage").filter(|usage| usage.is_object())?;
    let input = count(raw, "input_tokens");
    let cache_read = count(raw, "cache_read_input_tokens");
    let cache_write = count(raw, "cache_creation_input_tokens");
    let input_tokens = match (input, cache_read, cache_write) {
        (None, None, None) => None,
        _ => Some(
            input
                .unwrap_or(0)
                .saturating_add(cache_read.unwrap_or(0))
                .saturating_add(cache_write.unwrap_or(0)),
        ),
    };
    let reasoning_tokens =
        raw.get("output_tokens_details").and_then(|details| count(details, "thinking_tokens"));
    let model = model.map(str::to_owned).or_else(|| only_model(result));
    Some(
        Usage {
            input_tokens,
            cached_input_tokens: cache_read,
            cache_write_tokens: cache_write,
            output_tokens: count(raw, "output_tokens"),
            reasoning_tokens,
            total_tokens: None,
            cost_usd: cost(result),
            model,
            raw: Some(raw.clone()),
        }
        .with_total(),
    )
}

/// What this run cost in US dollars, as Claude Code reckons it — none when it priced a model it does not know
/// (`costBasis` `unknown`: a guess, and the dashboard never takes a guessed cost).
///
/// Claude Code 2.1's `total_cost_usd` is the whole session's, earlier turns included when the session was resumed;
/// `model_usage_since_last_result` holds this run's cost per model, so its sum is this run's cost. Without it, the
/// total is taken.
fn cost(result: &Value) -> Option<f64> {
    let is_known = |per_model: &Map<String, Value>| {
        per_model.values().all(|usage| text(usage, "costBasis") != Some("unknown"))
    };
    let cost = match result.get("model_usage_since_last_result").and_then(Value::as_object) {
        Some(per_model) if is_known(per_model) => {
            per_model.values().map(|usage| usage.get("costUSD").and_then(Value::as_f64)).sum::<Option<f64>>()
        }
        Some(_) => None,
        None => match result.get("modelUsage").and_then(Value::as_object) {
            Some(per_model) if !is_known(per_model) => None,
            _ => result.get("total_cost_usd").and_then(Value::as_f64),
        },
    };
    cost.filter(|cost| cost.is_finite() && *cost >= 0.0)
}

/// The one model of `modelUsage`, when there is exactly one.
fn only_model(result: &Value) -> Option<String> {
    let per_model = result.get("modelUsage").and_then(Value::as_object)?;
    let mut models = per_model.keys();
    match (models.next(), models.next()) {
        (Some(model), None) => Some(model.clone()),
        _ => None,
    }
}

/// The log line of what a run spent: `claude used 750 input tokens (150 cached), 60 output tokens, $0.0037`.
pub(crate) fn spent_line(usage: &Usage) -> String {
    let mut line = format!("claude used {} input tokens", usage.input_tokens.unwrap_or(0));
    if let Some(cached) = usage.cached_input_tokens.filter(|cached| *cached > 0) {
        line.push_str(&format!(" ({cached} cached)"));
    }
    line.push_str(&format!(", {} output tokens", usage.output_tokens.unwrap_or(0)));
    match usage.cost_usd {
        Some(cost) => line.push_str(&format!(", ${cost:.4}")),
        None => line.push_str(", no cost reported"),
    }
    line
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
