//! Usage: one shape for what every agent reports it spent — tokens by kind, the cost, the model — with the backend's
//! own report kept beside it in `raw`. Budgets and the spend figures read only this shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one execution spent, as every backend reports it (each figure optional: a backend says what it knows).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Input tokens, cached ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Of the input tokens, those read from the provider's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Input tokens written to the provider's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Output tokens, reasoning ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Of the output tokens, those spent reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// All tokens: the backend's own total, or input + output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// What it cost in US dollars: the backend's own figure where it gives one, else computed from the configured
    /// prices; none for a model without a price (never a guess).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The model, when the backend says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What the backend reported, as it reported it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

impl Usage {
    /// The usage as the JSON stored on an execution.
    pub fn into_value(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The usage stored on an execution, read leniently: a figure of the wrong type is left out, an old usage of
    /// another shape gives what it has under the same names.
    pub fn from_value(value: &Value) -> Self {
        let count = |name: &str| value.get(name).and_then(Value::as_u64);
        Self {
            input_tokens: count("input_tokens"),
            cached_input_tokens: count("cached_input_tokens"),
            cache_write_tokens: count("cache_write_tokens"),
            output_tokens: count("output_tokens"),
            reasoning_tokens: count("reasoning_tokens"),
            total_tokens: count("total_tokens"),
            cost_usd: value
                .get("cost_usd")
                .and_then(Value::as_f64)
                .filter(|cost| cost.is_finite() && *cost >= 0.0),
            model: value.get("model").and_then(Value::as_str).map(str::to_owned),
            raw: value.get("raw").cloned(),
        }
    }

    /// The usage a backend reported, in whatever vocabulary it speaks, read into the one shape with the report kept in
    /// `raw`: OpenAI's Chat Completions (`prompt_tokens`, `completion_tokens`, `*_tokens_details`), its Responses API
    /// and Codex (`input_tokens`, `cached_input_tokens`, `cache_write_input_tokens`, `reasoning_output_tokens`,
    /// `input_tokens_details.cached_tokens`, …), Anthropic's Messages API (`cache_read_input_tokens` and
    /// `cache_creation_input_tokens`, which its `input_tokens` leaves out and this shape's counts in), and this shape
    /// itself (a report that has `raw` is taken as already read). `cost_usd` or `total_cost_usd` is the backend's own
    /// cost. `total_tokens` is filled in from input + output when not reported.
    pub fn from_report(report: &Value) -> Self {
        if report.get("raw").is_some() {
            return Self::from_value(report).with_total();
        }
        let count = |path: &[&str]| {
            path.iter().try_fold(report, |value, name| value.get(name)).and_then(Value::as_u64)
        };
        let first = |paths: &[&[&str]]| paths.iter().find_map(|path| count(path));
        let cache_read = count(&["cache_read_input_tokens"]);
        let cache_creation = count(&["cache_creation_input_tokens"]);
        let mut input_tokens = first(&[&["input_tokens"], &["prompt_tokens"]]);
        if cache_read.is_some() || cache_creation.is_some() {
            // Anthropic's input_tokens are the uncached ones only.
            let uncached = input_tokens.unwrap_or(0);
            input_tokens = Some(
                uncached.saturating_add(cache_read.unwrap_or(0)).saturating_add(cache_creation.unwrap_or(0)),
            );
        }
        let cost_usd = ["cost_usd", "total_cost_usd"]
            .iter()
            .find_map(|name| report.get(name).and_then(Value::as_f64))
            .filter(|cost| cost.is_finite() && *cost >= 0.0);
        Self {
            input_tokens,
            cached_input_tokens: cache_read.or_else(|| {
                first(&[
                    &["cached_input_tokens"],
                    &["input_tokens_details", "cached_tokens"],
                    &["prompt_tokens_details", "cached_tokens"],
                ])
            }),
            cache_write_tokens: cache_creation
                .or_else(|| first(&[&["cache_write_tokens"], &["cache_write_input_tokens"]])),
            output_tokens: first(&[&["output_tokens"], &["completion_tokens"]]),
            reasoning_tokens: first(&[
                &["reasoning_tokens"],
                &["reasoning_output_tokens"],
                &["output_tokens_details", "reasoning_tokens"],
                &["completion_tokens_details", "reasoning_tokens"],
            ]),
            total_tokens: count(&["total_tokens"]),
            cost_usd,
            model: report.get("model").and_then(Value::as_str).map(str::to_owned),
            raw: Some(report.clone()),
        }
        .with_total()
    }

    /// All tokens: the total when reported, else input + output (0 when neither is).
    pub fn tokens(&self) -> u64 {
        self.total_tokens
            .unwrap_or_else(|| self.input_tokens.unwrap_or(0).saturating_add(self.output_tokens.unwrap_or(0)))
    }

    /// `total_tokens` filled in from input + output when the backend gave no total.
    pub fn with_total(mut self) -> Self {
        if self.total_tokens.is_none() && (self.input_tokens.is_some() || self.output_tokens.is_some()) {
            self.total_tokens = Some(self.tokens());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn figures(usage: &Usage) -> [Option<u64>; 6] {
        [
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usage.total_tokens,
        ]
    }

    #[test]
    fn each_vocabulary_is_read_into_the_one_shape() {
        let chat = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                          "prompt_tokens_details": {"cached_tokens": 60}, "completion_tokens_details": {"reasoning_tokens": 5}});
        assert_eq!(
            figures(&Usage::from_report(&chat)),
            [Some(100), Some(60), None, Some(20), Some(5), Some(120)]
        );
        let responses = json!({"input_tokens": 100, "output_tokens": 20, "input_tokens_details": {"cached_tokens": 60},
                               "output_tokens_details": {"reasoning_tokens": 5}});
        assert_eq!(
            figures(&Usage::from_report(&responses)),
            [Some(100), Some(60), None, Some(20), Some(5), Some(120)]
        );
        let codex = json!({"input_tokens": 100, "cached_input_tokens": 60, "cache_write_input_tokens": 10,
                           "output_tokens": 20, "reasoning_output_tokens": 5, "total_tokens": 120});
        assert_eq!(
            figures(&Usage::from_report(&codex)),
            [Some(100), Some(60), Some(10), Some(20), Some(5), Some(120)]
        );
        let anthropic = json!({"input_tokens": 30, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 10,
                               "output_tokens": 20, "total_cost_usd": 0.5});
        let read = Usage::from_report(&anthropic);
        assert_eq!(figures(&read), [Some(100), Some(60), Some(10), Some(20), None, Some(120)]);
        assert_eq!((read.cost_usd, read.raw.as_ref()), (Some(0.5), Some(&anthropic)));
        let ours = read.clone().into_value();
        assert_eq!(Usage::from_report(&ours), read, "a report in this shape is taken as read");
    }

    #[test]
    fn the_shape_round_trips_and_reads_leniently() {
        let usage = Usage {
            input_tokens: Some(100),
            cached_input_tokens: Some(40),
            output_tokens: Some(7),
            cost_usd: Some(0.25),
            raw: Some(json!({"prompt_tokens": 100})),
            ..Usage::default()
        }
        .with_total();
        assert_eq!(usage.total_tokens, Some(107));
        assert_eq!(Usage::from_value(&usage.clone().into_value()), usage);
        let odd = Usage::from_value(&json!({"input_tokens": "many", "output_tokens": 3, "cost_usd": -1}));
        assert_eq!(
            (odd.input_tokens, odd.output_tokens, odd.cost_usd, odd.tokens()),
            (None, Some(3), None, 3)
        );
    }
}
