//! Tests of `outcome.rs`: Claude Code 2.1's `result` messages, as recorded (less fields nobody reads), as outcomes
//! and usage.

use serde_json::{Value, json};

use super::*;

/// The `usage` of a result of two model requests: 100 input, 30 cache reads, 20 cache writes and 12 output tokens
/// each.
fn raw_usage() -> Value {
    json!({"input_tokens": 200, "cache_creation_input_tokens": 40, "cache_read_input_tokens": 60,
           "output_tokens": 24, "output_tokens_details": {"thinking_tokens": 0},
           "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"})
}

fn per_model(cost: f64, basis: &str) -> Value {
    json!({"claude-opus-5-5": {"inputTokens": 200, "outputTokens": 24, "costUSD": cost, "costBasis": basis}})
}

fn success(fields: Value) -> Value {
    let mut result = json!({"type": "result", "subtype": "success", "is_error": false, "result": "All done.",
                            "session_id": "s-1", "num_turns": 3, "total_cost_usd": 0.001492,
                            "usage": raw_usage(), "modelUsage": per_model(0.001492, "list"),
                            "model_usage_since_last_result": per_model(0.001492, "list")});
    if let (Some(result), Value::Object(fields)) = (result.as_object_mut(), fields) {
        result.extend(fields);
    }
    result
}

fn check_failure(result: Value, expected: &str) {
    let (outcome, _) = ended(&result, None);
    assert_eq!(outcome, RunOutcome::Failed { error: expected.to_owned() }, "{result}");
}

#[test]
fn a_success_answers_with_the_message_and_the_usage_in_the_one_shape() {
    let (outcome, usage) = ended(&success(json!({})), Some("claude-opus-5-5"));
    let expected = json!({"input_tokens": 300, "cached_input_tokens": 60, "cache_write_tokens": 40,
                          "output_tokens": 24, "reasoning_tokens": 0, "total_tokens": 324, "cost_usd": 0.001492,
                          "model": "claude-opus-5-5", "raw": raw_usage()});
    assert_eq!(
        outcome,
        RunOutcome::Succeeded { output: json!({"message": "All done."}), usage: Some(expected.clone()) }
    );
    assert_eq!(usage.map(Usage::into_value), Some(expected));
}

#[test]
fn a_structured_output_is_the_output() {
    let result = success(json!({"result": "{\"answer\":42}", "structured_output": {"answer": 42}}));
    let (outcome, _) = ended(&result, None);
    assert!(
        matches!(outcome, RunOutcome::Succeeded { ref output, .. } if *output == json!({"answer": 42})),
        "{outcome:?}"
    );
}

#[test]
fn failures_say_what_ended_the_run() {
    check_failure(
        json!({"type": "result", "subtype": "error_max_turns", "is_error": true, "result": null,
               "errors": ["Reached maximum number of turns (1)"]}),
        "claude stopped at its turn limit (max_turns): Reached maximum number of turns (1)",
    );
    check_failure(
        json!({"type": "result", "subtype": "error_during_execution", "is_error": true,
               "errors": ["[ede_diagnostic] result_type=user"]}),
        "claude failed during execution: [ede_diagnostic] result_type=user",
    );
    check_failure(
        json!({"type": "result", "subtype": "error_max_budget_usd", "is_error": true, "errors": []}),
        "budget exceeded: claude reached its spending cap (--max-budget-usd): no reason given",
    );
    // A failed request to the model API: `success`, but `is_error`.
    check_failure(
        json!({"type": "result", "subtype": "success", "is_error": true, "api_error_status": 400,
               "result": "Prompt is too long"}),
        "claude reported an error (model API status 400): Prompt is too long",
    );
    check_failure(
        json!({"type": "result", "subtype": "error_something_new", "errors": ["it broke"]}),
        "claude ended with error_something_new: it broke",
    );
}

#[test]
fn the_cost_is_this_runs_own_and_never_a_guess() {
    let cost = |fields: Value| usage(&success(fields), None).and_then(|usage| usage.cost_usd);
    assert_eq!(cost(json!({})), Some(0.001492));
    // A resumed session: the total counts the earlier turns, the cost since the last result is this run's.
    assert_eq!(
        cost(json!({"total_cost_usd": 0.002238, "modelUsage": per_model(0.002238, "list"),
                    "model_usage_since_last_result": per_model(0.000746, "list")})),
        Some(0.000746)
    );
    // Without the figure since the last result, the total.
    let older = {
        let mut result = success(json!({}));
        result.as_object_mut().map(|result| result.remove("model_usage_since_last_result"));
        result
    };
    assert_eq!(usage(&older, None).and_then(|usage| usage.cost_usd), Some(0.001492));
    // A model Claude Code has no price for: its cost is a guess.
    assert_eq!(cost(json!({"model_usage_since_last_result": per_model(0.0007, "unknown")})), None);
    assert_eq!(
        cost(json!({"total_cost_usd": -1.0, "model_usage_since_last_result": null,
                           "modelUsage": null})),
        None
    );
}

#[test]
fn the_model_is_the_sessions_else_the_only_one_used() {
    let model = |result: &Value, init: Option<&str>| usage(result, init).and_then(|usage| usage.model);
    assert_eq!(model(&success(json!({})), Some("opus")), Some("opus".into()));
    assert_eq!(model(&success(json!({})), None), Some("claude-opus-5-5".into()));
    let two = json!({"modelUsage": {"a": {}, "b": {}}});
    assert_eq!(model(&success(two), None), None);
}

#[test]
fn a_result_without_usage_has_none() {
    assert_eq!(usage(&json!({"type": "result", "subtype": "success"}), None), None);
    let (outcome, _) = ended(&json!({"type": "result", "subtype": "success", "is_error": false}), None);
    assert_eq!(outcome, RunOutcome::Succeeded { output: json!({"message": null}), usage: None });
}

#[test]
fn the_spend_reads_as_a_sentence() {
    let usage = usage(&success(json!({})), None).expect("a usage");
    assert_eq!(spent_line(&usage), "claude used 300 input tokens (60 cached), 24 output tokens, $0.0015");
    assert_eq!(
        spent_line(&Usage { cost_usd: None, ..usage }),
        "claude used 300 input tokens (60 cached), 24 output tokens, no cost reported"
    );
}
