//! What the pages show of usage, cost and budgets: an execution's tokens by kind with its cost (or why it has none),
//! dollars and token counts as people read them, and a function's budgets with what was spent and what is left today.

use dashboard_core::{Function, Usage};
use dashboard_store::Spend;
use serde::Serialize;
use serde_json::Value;

/// Where the docs say how usage is read and priced: the status page links there when a run has no price.
pub(super) const USAGE_DOCS_URL: &str =
    concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/backends.md#usage-and-cost");

/// US dollars as people read them: cents from a dollar up (`$12.30`), up to four decimals below it (`$0.30`,
/// `$0.0125`), and `< $0.0001` for a cost too small to show. `web/static/execution.js` writes costs the same way.
pub(super) fn money_text(usd: f64) -> String {
    if !usd.is_finite() || usd <= 0.0 {
        return "$0.00".to_owned();
    }
    if usd < 0.000_05 {
        return "< $0.0001".to_owned();
    }
    if usd >= 1.0 {
        return format!("${usd:.2}");
    }
    let mut text = format!("{usd:.4}");
    // Keep two decimals at least: `0.3000` reads `0.30`, `0.0125` stays.
    while text.ends_with('0') && text.len() > "0.00".len() {
        text.pop();
    }
    format!("${text}")
}

/// A count with thousands separated: `12,345`.
pub(super) fn count_text(count: u64) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// An execution's cost for a table cell, when it has one.
pub(super) fn cost_of(usage: Option<&Value>) -> Option<String> {
    usage.and_then(|usage| Usage::from_value(usage).cost_usd).map(money_text)
}

/// One figure of the usage table.
#[derive(Debug, Serialize)]
struct UsageRow {
    label: &'static str,
    value: String,
}

/// An execution's usage as the status page shows it.
#[derive(Debug, Serialize)]
pub(super) struct UsageView {
    rows: Vec<UsageRow>,
    model: Option<String>,
    cost: Option<String>,
    /// Why a run that used tokens has no cost: `no price for model X`, or `no price: the model is not known`.
    no_price: Option<String>,
}

impl UsageView {
    pub(super) fn new(stored: &Value) -> Self {
        let usage = Usage::from_value(stored);
        let figures = [
            ("Input tokens", usage.input_tokens),
            ("Cached input", usage.cached_input_tokens),
            ("Cache writes", usage.cache_write_tokens),
            ("Output tokens", usage.output_tokens),
            ("Reasoning", usage.reasoning_tokens),
            ("Total tokens", usage.total_tokens),
        ];
        let has_tokens = figures.iter().any(|(_, count)| count.is_some());
        let rows = figures
            .into_iter()
            .filter_map(|(label, count)| Some(UsageRow { label, value: count_text(count?) }))
            .collect();
        let no_price = match (&usage.cost_usd, &usage.model) {
            (None, Some(model)) if has_tokens => Some(format!("no price for model {model}")),
            (None, None) if has_tokens => Some("no price: the model is not known".to_owned()),
            _ => None,
        };
        Self { rows, model: usage.model, cost: usage.cost_usd.map(money_text), no_price }
    }
}

/// One budget of a function, with what today's spend leaves of it.
#[derive(Debug, Serialize)]
struct BudgetView {
    /// The field: `max_cost_usd`, `daily_cost_usd` or `daily_tokens`.
    name: &'static str,
    /// `per run` or `per day`.
    per: &'static str,
    limit: String,
    /// Spent today and left of a daily budget; a run's budget has neither (each run starts from nothing).
    spent: Option<String>,
    left: Option<String>,
    /// For the `<meter>` of a daily budget: what was spent and the limit, in the budget's unit.
    meter_value: f64,
    meter_max: f64,
    /// The daily budget is used up: triggers are refused until the next UTC day.
    is_used_up: bool,
}

/// A function's spend today (the UTC day) and each budget it sets.
#[derive(Debug, Serialize)]
pub(super) struct SpendToday {
    cost: String,
    tokens: String,
    executions: u64,
    budgets: Vec<BudgetView>,
}

impl SpendToday {
    pub(super) fn new(function: &Function, spent: &Spend) -> Self {
        let mut budgets = Vec::new();
        if let Some(limit) = function.max_cost_usd {
            budgets.push(BudgetView {
                name: "max_cost_usd",
                per: "per run",
                limit: money_text(limit),
                spent: None,
                left: None,
                meter_value: 0.0,
                meter_max: limit,
                is_used_up: false,
            });
        }
        if let Some(limit) = function.daily_cost_usd {
            let left = (limit - spent.cost_usd).max(0.0);
            budgets.push(BudgetView {
                name: "daily_cost_usd",
                per: "per day",
                limit: money_text(limit),
                spent: Some(money_text(spent.cost_usd)),
                left: Some(money_text(left)),
                meter_value: spent.cost_usd.min(limit),
                meter_max: limit,
                is_used_up: spent.cost_usd >= limit,
            });
        }
        if let Some(limit) = function.daily_tokens {
            budgets.push(BudgetView {
                name: "daily_tokens",
                per: "per day",
                limit: format!("{} tokens", count_text(limit)),
                spent: Some(format!("{} tokens", count_text(spent.tokens))),
                left: Some(format!("{} tokens", count_text(limit.saturating_sub(spent.tokens)))),
                meter_value: spent.tokens.min(limit) as f64,
                meter_max: limit as f64,
                is_used_up: spent.tokens >= limit,
            });
        }
        Self {
            cost: money_text(spent.cost_usd),
            tokens: count_text(spent.tokens),
            executions: spent.executions,
            budgets,
        }
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::FunctionSpec;
    use serde_json::json;

    use super::*;

    #[test]
    fn money_reads_as_dollars_and_cents() {
        for (usd, expected) in [
            (0.0, "$0.00"),
            (0.3 + 1e-17, "$0.30"),
            (0.1 * 3.0, "$0.30"),
            (0.0125, "$0.0125"),
            (0.000_364, "$0.0004"),
            (0.000_01, "< $0.0001"),
            (0.999_99, "$1.00"),
            (12.3, "$12.30"),
            (f64::NAN, "$0.00"),
        ] {
            assert_eq!(money_text(usd), expected, "{usd}");
        }
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        for (count, expected) in [(0, "0"), (999, "999"), (1000, "1,000"), (1_234_567, "1,234,567")] {
            assert_eq!(count_text(count), expected);
        }
    }

    #[test]
    fn a_run_with_tokens_and_no_cost_says_why() {
        let priced = UsageView::new(&json!({"input_tokens": 12, "output_tokens": 34, "cost_usd": 0.5}));
        assert_eq!((priced.cost.as_deref(), priced.no_price), (Some("$0.50"), None));
        let unknown = UsageView::new(&json!({"input_tokens": 12, "model": "x"}));
        assert_eq!(unknown.no_price.as_deref(), Some("no price for model x"));
        let nameless = UsageView::new(&json!({"output_tokens": 1}));
        assert_eq!(nameless.no_price.as_deref(), Some("no price: the model is not known"));
        assert_eq!(UsageView::new(&json!({"raw": {"tokens": 7}})).no_price, None, "no tokens, no complaint");
    }

    #[test]
    fn daily_budgets_show_what_is_left_and_never_less_than_nothing() {
        let mut spec = FunctionSpec::new("f", "demo");
        spec.max_cost_usd = Some(0.25);
        spec.daily_cost_usd = Some(0.5);
        spec.daily_tokens = Some(100);
        let function = Function::create(spec).expect("a valid spec");
        let today = SpendToday::new(&function, &Spend { cost_usd: 0.3, tokens: 460, executions: 3 });
        let shown: Vec<_> = today
            .budgets
            .iter()
            .map(|budget| (budget.name, budget.spent.as_deref(), budget.left.as_deref(), budget.is_used_up))
            .collect();
        assert_eq!(
            shown,
            [
                ("max_cost_usd", None, None, false),
                ("daily_cost_usd", Some("$0.30"), Some("$0.20"), false),
                ("daily_tokens", Some("460 tokens"), Some("0 tokens"), true),
            ]
        );
    }
}
