//! Usage, cost and budgets: a backend's usage read into the one shape and priced from the configured prices (a
//! backend's own cost wins; an unknown model has none), the budgets a trigger, retry or continue is checked against
//! (spend derived from the store, so it survives a restart), and the meter that stops a run whose usage crosses one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dashboard_backend_api::UsageMeter;
use dashboard_core::{Function, Timestamp, Usage, now, start_of_utc_day};
use dashboard_store::{Spend, SpendQuery};
use serde_json::Value;

use crate::EngineError;
use crate::inner::Inner;
use crate::run::{RunHandle, StopReason};

/// What one model costs, in US dollars per million tokens (`[[prices]]` in the config file).
#[derive(Clone, Debug, PartialEq)]
pub struct Price {
    /// The model, as the backend reports it (or as the function's `config.model` names it).
    pub model: String,
    /// Per million input tokens that were not read from the cache.
    pub input_per_mtok: f64,
    /// Per million input tokens read from the cache; the input price when unset.
    pub cached_input_per_mtok: Option<f64>,
    /// Per million input tokens written to the cache; the input price when unset.
    pub cache_write_per_mtok: Option<f64>,
    /// Per million output tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// What `usage` costs at this price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.unwrap_or(0);
        let written = usage.cache_write_tokens.unwrap_or(0);
        let fresh = usage.input_tokens.unwrap_or(0).saturating_sub(cached).saturating_sub(written);
        let per_token = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok / 1_000_000.0;
        per_token(fresh, self.input_per_mtok)
            + per_token(cached, self.cached_input_per_mtok.unwrap_or(self.input_per_mtok))
            + per_token(written, self.cache_write_per_mtok.unwrap_or(self.input_per_mtok))
            + per_token(usage.output_tokens.unwrap_or(0), self.output_per_mtok)
    }
}

/// A budget that a spend has used up: which, how much was spent, and the limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Exhausted {
    /// Which budget: `daily_cost_usd of function triage`, `max_cost_usd of function triage`, `daily_cost_usd of
    /// token ci`, `daily_tokens of function triage`.
    pub budget: String,
    /// What was spent (dollars, or tokens for `daily_tokens`).
    pub spent: f64,
    /// The limit.
    pub limit: f64,
}

impl Exhausted {
    /// `daily_cost_usd of function f (12.50 of 10.00)`.
    pub fn describe(&self) -> String {
        describe(&self.budget, self.spent, self.limit)
    }
}

/// `daily_cost_usd of function f (12.50 of 10.00)`, tokens as whole numbers: `daily_tokens of function f (1234 of
/// 1000)`.
pub(crate) fn describe(budget: &str, spent: f64, limit: f64) -> String {
    if budget.starts_with("daily_tokens") {
        format!("{budget} ({} of {})", spent as u64, limit as u64)
    } else {
        format!("{budget} ({spent:.2} of {limit:.2})")
    }
}

/// The start of the current UTC day.
pub(crate) fn start_of_today() -> Timestamp {
    start_of_utc_day(now())
}

impl Inner {
    /// `report` (a backend's usage) in the one shape, priced when the backend gave no cost and a price is known for
    /// its model (or the function's `config.model`).
    pub(crate) fn usage_in_shape(&self, report: &Value, function: Option<&Function>) -> Value {
        let mut usage = Usage::from_report(report);
        if usage.model.is_none() {
            usage.model = function
                .and_then(|function| function.config.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if usage.cost_usd.is_none()
            && let Some(model) = &usage.model
            && let Some(price) = self.settings.prices.iter().find(|price| &price.model == model)
        {
            usage.cost_usd = Some(price.cost(&usage));
        }
        usage.into_value()
    }

    /// What was spent today (UTC) by `function`'s executions, or by `triggered_by`'s.
    async fn spent_today(
        &self,
        function: Option<&str>,
        triggered_by: Option<&str>,
    ) -> Result<Spend, EngineError> {
        let query = SpendQuery {
            since: start_of_today(),
            function: function.map(str::to_owned),
            triggered_by: triggered_by.map(str::to_owned),
        };
        Ok(self.store.spend_since(&query).await?)
    }

    /// The daily budgets that apply to a run of `function` triggered by `triggered_by`, with what was spent today
    /// before it; a spend query only for the budgets that are set.
    pub(crate) async fn daily_budgets(
        &self,
        function: &Function,
        triggered_by: Option<&str>,
    ) -> Result<DailyBudgets, EngineError> {
        let mut budgets = DailyBudgets::default();
        if function.daily_cost_usd.is_some() || function.daily_tokens.is_some() {
            let spent = self.spent_today(Some(&function.name), None).await?;
            if let Some(limit) = function.daily_cost_usd {
                let budget = format!("daily_cost_usd of function {}", function.name);
                budgets.cost.push((budget, limit, spent.cost_usd));
            }
            if let Some(limit) = function.daily_tokens {
                budgets.tokens =
                    Some((format!("daily_tokens of function {}", function.name), limit, spent.tokens));
            }
        }
        if let Some(name) = triggered_by
            && let Some(limit) = self.settings.token_budgets.get(name)
        {
            let spent = self.spent_today(None, Some(name)).await?;
            budgets.cost.push((format!("daily_cost_usd of token {name}"), *limit, spent.cost_usd));
        }
        Ok(budgets)
    }
}

/// The daily budgets of one run: each with its limit and what was spent today before the run.
#[derive(Clone, Debug, Default)]
pub(crate) struct DailyBudgets {
    cost: Vec<(String, f64, f64)>,
    tokens: Option<(String, u64, u64)>,
}

impl DailyBudgets {
    /// The first budget already used up, before a run starts: what refuses a trigger.
    pub(crate) fn exhausted(&self) -> Option<Exhausted> {
        self.crossed_by(&Usage::default(), true)
    }

    /// The first budget that `usage` (of one run) takes past its limit; with `at_limit`, one that is merely reached
    /// counts too.
    fn crossed_by(&self, usage: &Usage, at_limit: bool) -> Option<Exhausted> {
        let past = |spent: f64, limit: f64| if at_limit { spent >= limit } else { spent > limit };
        let cost = usage.cost_usd.unwrap_or(0.0);
        for (budget, limit, before) in &self.cost {
            if past(before + cost, *limit) {
                return Some(Exhausted { budget: budget.clone(), spent: before + cost, limit: *limit });
            }
        }
        if let Some((budget, limit, before)) = &self.tokens {
            let spent = before.saturating_add(usage.tokens());
            if past(spent as f64, *limit as f64) {
                return Some(Exhausted { budget: budget.clone(), spent: spent as f64, limit: *limit as f64 });
            }
        }
        None
    }
}

impl From<Exhausted> for EngineError {
    fn from(exhausted: Exhausted) -> Self {
        EngineError::BudgetExhausted {
            budget: exhausted.budget,
            spent: exhausted.spent,
            limit: exhausted.limit,
        }
    }
}

/// The meter of one run: keeps the usage its backend reports as it grows (in the one shape, priced), and stops the
/// run when it crosses the function's `max_cost_usd` or a daily budget.
pub(crate) struct RunMeter {
    pub(crate) inner: Arc<Inner>,
    pub(crate) function: Arc<Function>,
    pub(crate) daily: DailyBudgets,
    pub(crate) handle: Arc<RunHandle>,
}

impl std::fmt::Debug for RunMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMeter").field("function", &self.function.name).finish()
    }
}

impl UsageMeter for RunMeter {
    fn report(&self, usage: &Value) {
        if matches!(self.handle.reason(), Some(StopReason::BudgetExceeded { .. })) {
            // Stopped for its spend: the usage kept is the one that crossed the budget, which the error names, not
            // a report the backend sends as it winds down (Claude Code's result after SIGINT prices the turn by its
            // own table, which may say less).
            return;
        }
        let usage = self.inner.usage_in_shape(usage, Some(&self.function));
        let read = Usage::from_value(&usage);
        *self.handle.usage.lock().expect("usage lock poisoned") = Some(usage);
        let per_run = self.function.max_cost_usd.and_then(|limit| {
            let cost = read.cost_usd.unwrap_or(0.0);
            (cost > limit).then(|| Exhausted {
                budget: format!("max_cost_usd of function {}", self.function.name),
                spent: cost,
                limit,
            })
        });
        if let Some(exhausted) = per_run.or_else(|| self.daily.crossed_by(&read, false)) {
            self.handle.stop(StopReason::BudgetExceeded {
                message: format!("budget exceeded: {}", exhausted.describe()),
            });
        }
    }
}

/// The last usage each running execution reported, for the run's end: kept on its handle.
pub(crate) type LiveUsage = Mutex<Option<Value>>;

/// Token names and their daily budgets in dollars.
pub(crate) type TokenBudgets = HashMap<String, f64>;
