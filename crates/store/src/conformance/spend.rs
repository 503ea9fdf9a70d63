//! Conformance cases for spend and budgets: what executions spent since a time (all of them, one function's, one
//! caller's), summed from their stored usage as `usage_spend` reads it, per UTC day and function, and a function's
//! budgets.

use std::collections::BTreeMap;
use std::time::Duration;

use dashboard_core::{Execution, ExecutionStatus, Function, Timestamp, now};
use serde_json::{Value, json};

use super::fixtures::{a_moment_between, advance, function, new_execution, queued, spec};
use crate::{
    DailySpend, DashboardStore, ExecutionUpdate, FunctionKey, NewExecution, Spend, SpendQuery, usage_spend,
};

/// A time before anything a case stores: every case starts on an empty store.
fn before_the_case() -> Timestamp {
    now() - Duration::from_secs(60)
}

/// A trigger of `function` by `caller`.
fn trigger(function: &Function, caller: Option<&str>) -> NewExecution {
    NewExecution { triggered_by: caller.map(str::to_owned), ..new_execution(function, json!({})) }
}

/// Stores `new`, runs it, and finishes it `succeeded` reporting `usage`.
async fn spent(store: &dyn DashboardStore, new: NewExecution, usage: Value) -> Execution {
    let queued = store.create_execution(new).await.expect("creating an execution").value;
    let running = advance(store, &queued, ExecutionStatus::Running).await;
    let update =
        ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded).usage(Some(usage));
    store.update_execution(running.id, update).await.expect("finishing with usage").value
}

/// Usage of `cost_usd` and `total_tokens`.
fn usage(cost_usd: f64, total_tokens: u64) -> Value {
    json!({"cost_usd": cost_usd, "total_tokens": total_tokens})
}

/// What `spend_since` answers for executions created at or after `since`, of `function` and `caller` when given.
async fn spend_of(
    store: &dyn DashboardStore,
    since: Timestamp,
    function: Option<&str>,
    caller: Option<&str>,
) -> Spend {
    let query =
        SpendQuery { since, function: function.map(str::to_owned), triggered_by: caller.map(str::to_owned) };
    store.spend_since(&query).await.unwrap_or_else(|error| panic!("the spend of {query:?}: {error}"))
}

fn spend(cost_usd: f64, tokens: u64, executions: u64) -> Spend {
    Spend { cost_usd, tokens, executions }
}

/// The spend is the sum of the executions' stored usage — cost, and tokens as `total_tokens` or else input plus
/// output — and counts every execution, those without usage too; a later report of usage replaces an earlier one.
pub async fn spend_sums_the_usage_of_executions_with_and_without_usage(store: &dyn DashboardStore) {
    let since = before_the_case();
    assert_eq!(spend_of(store, since, None, None).await, Spend::default(), "an empty store spent nothing");
    let alpha = function(store, "alpha").await;
    let both_counts = json!({"cost_usd": 0.25, "total_tokens": 100, "input_tokens": 60, "output_tokens": 45});
    spent(store, trigger(&alpha, None), both_counts).await;
    let without_total = json!({"cost_usd": 1.5, "input_tokens": 7, "output_tokens": 3});
    spent(store, trigger(&alpha, None), without_total).await;
    let queued_one = queued(store, &alpha, json!({})).await;
    let ran = advance(store, &queued_one, ExecutionStatus::Running).await;
    advance(store, &ran, ExecutionStatus::Failed).await;
    queued(store, &alpha, json!({})).await;
    assert_eq!(spend_of(store, since, None, None).await, spend(1.75, 110, 4));

    let reported = queued(store, &alpha, json!({})).await;
    let first_report =
        ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running).usage(Some(usage(8.0, 800)));
    store.update_execution(reported.id, first_report).await.expect("start with usage");
    assert_eq!(
        spend_of(store, since, None, None).await,
        spend(9.75, 910, 5),
        "a running execution's usage counts"
    );
    let last_report = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded)
        .usage(Some(usage(0.5, 20)));
    store.update_execution(reported.id, last_report).await.expect("finish with usage");
    assert_eq!(
        spend_of(store, since, None, None).await,
        spend(2.25, 130, 5),
        "the last report replaces the first"
    );
}

/// The function and caller filters keep the executions of that function (by name) and of that caller (by token
/// name), exactly, and combine.
pub async fn spend_is_filtered_by_function_and_by_caller(store: &dyn DashboardStore) {
    let since = before_the_case();
    let alpha = function(store, "alpha").await;
    let beta = function(store, "beta").await;
    spent(store, trigger(&alpha, Some("ci")), usage(0.5, 5)).await;
    spent(store, trigger(&alpha, Some("alice")), usage(0.25, 10)).await;
    spent(store, trigger(&beta, Some("ci")), usage(2.0, 20)).await;
    spent(store, trigger(&beta, None), usage(1.0, 40)).await;

    for (function, caller, expected) in [
        (None, None, spend(3.75, 75, 4)),
        (Some("alpha"), None, spend(0.75, 15, 2)),
        (Some("beta"), None, spend(3.0, 60, 2)),
        (None, Some("ci"), spend(2.5, 25, 2)),
        (None, Some("alice"), spend(0.25, 10, 1)),
        (Some("alpha"), Some("ci"), spend(0.5, 5, 1)),
        (Some("beta"), Some("ci"), spend(2.0, 20, 1)),
        (Some("beta"), Some("alice"), Spend::default()),
        (Some("gamma"), None, Spend::default()),
        (Some("alph"), None, Spend::default()),
        (None, Some("c"), Spend::default()),
    ] {
        assert_eq!(
            spend_of(store, since, function, caller).await,
            expected,
            "function {function:?}, caller {caller:?}"
        );
    }
}

/// Only executions created at or after `since` count — by their creation time, to the microsecond, whenever their
/// id was minted — in the spend and in the daily spend.
pub async fn spend_counts_the_executions_created_at_or_after_since(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let early = spent(store, trigger(&alpha, None), usage(1.0, 1)).await;
    let minted_early = trigger(&alpha, None);
    let moment = a_moment_between().await;
    let late = spent(store, minted_early, usage(2.0, 10)).await;
    a_moment_between().await;
    let later = spent(store, trigger(&alpha, None), usage(4.0, 100)).await;

    for (since, expected, what) in [
        (early.created_at, spend(7.0, 111, 3), "at the first one's creation"),
        (moment, spend(6.0, 110, 2), "between the first and the second (whose id is older than the moment)"),
        (late.created_at, spend(6.0, 110, 2), "at the second one's creation"),
        (late.created_at + Duration::from_nanos(1), spend(4.0, 100, 1), "a nanosecond after it"),
        (later.created_at + Duration::from_micros(1), Spend::default(), "after the last"),
    ] {
        assert_eq!(spend_of(store, since, None, None).await, expected, "since {what}");
    }

    let days = store.daily_spend(moment).await.expect("the daily spend");
    let expected = if late.created_at.date() == later.created_at.date() {
        vec![daily(&late, spend(6.0, 110, 2))]
    } else {
        vec![daily(&late, spend(2.0, 10, 1)), daily(&later, spend(4.0, 100, 1))]
    };
    assert_eq!(days, expected, "the daily spend since the moment");
}

/// The entry of `execution`'s day and function.
fn daily(execution: &Execution, spend: Spend) -> DailySpend {
    DailySpend { day: execution.created_at.date().to_string(), function: execution.function.clone(), spend }
}

/// Usage figures that are missing, of the wrong type, negative, fractional where a count is whole, or huge count as
/// `usage_spend` reads them: the cost when a non-negative number, the total when an unsigned 64-bit integer and
/// otherwise input plus output, each when one; sums of tokens saturate at `u64::MAX`.
pub async fn odd_usage_figures_count_as_usage_spend_reads_them(store: &dyn DashboardStore) {
    let since = before_the_case();
    let alpha = function(store, "alpha").await;
    let cases: Vec<(Value, f64, u64)> = vec![
        (json!(null), 0.0, 0),
        (json!([1, 2]), 0.0, 0),
        (json!("lots"), 0.0, 0),
        (json!({}), 0.0, 0),
        (json!({"cost_usd": "0.5", "total_tokens": "12", "input_tokens": 2}), 0.0, 2),
        (json!({"cost_usd": -1.5, "total_tokens": -3, "output_tokens": 1}), 0.0, 1),
        (json!({"cost_usd": 2, "total_tokens": 12.0, "output_tokens": 5}), 2.0, 5),
        (json!({"input_tokens": 2.5, "output_tokens": 4}), 0.0, 4),
        (json!({"total_tokens": 4, "input_tokens": 7, "output_tokens": 3}), 0.0, 4),
        (json!({"total_tokens": 0, "input_tokens": 5}), 0.0, 0),
        (json!({"total_tokens": i64::MIN, "input_tokens": 3}), 0.0, 3),
        (json!({"total_tokens": 1e20, "output_tokens": 6}), 0.0, 6),
        (json!({"cost_usd": true, "total_tokens": null, "input_tokens": false}), 0.0, 0),
        (json!({"cost_usd": {"usd": 1}, "total_tokens": [1]}), 0.0, 0),
        (json!({"raw": {"cost_usd": 9, "total_tokens": 99}}), 0.0, 0),
        (json!({"cost_usd": 0.1}), 0.1, 0),
        (json!({"cost_usd": 1e300}), 1e300, 0),
        (json!({"total_tokens": 1_u64 << 63}), 0.0, 1 << 63),
        (json!({"total_tokens": u64::MAX}), 0.0, u64::MAX),
        (json!({"input_tokens": u64::MAX, "output_tokens": 1}), 0.0, u64::MAX),
    ];
    for (n, (usage, cost_usd, tokens)) in cases.iter().enumerate() {
        assert_eq!(usage_spend(Some(usage)), (*cost_usd, *tokens), "usage_spend of {usage}");
        spent(store, trigger(&alpha, Some(&format!("case-{n}"))), usage.clone()).await;
    }
    for (n, (usage, cost_usd, tokens)) in cases.iter().enumerate() {
        let caller = format!("case-{n}");
        assert_eq!(
            spend_of(store, since, None, Some(&caller)).await,
            spend(*cost_usd, *tokens, 1),
            "{usage}"
        );
    }

    // Sums beyond a signed 64-bit integer are exact, then stop at u64::MAX.
    spent(store, trigger(&alpha, Some("big")), json!({"total_tokens": 1_u64 << 63})).await;
    spent(store, trigger(&alpha, Some("big")), json!({"input_tokens": 999_999_999, "output_tokens": 1}))
        .await;
    spent(store, trigger(&alpha, Some("over")), json!({"total_tokens": u64::MAX - 1})).await;
    spent(store, trigger(&alpha, Some("over")), json!({"total_tokens": 2})).await;
    assert_eq!(spend_of(store, since, None, Some("big")).await, spend(0.0, (1 << 63) + 1_000_000_000, 2));
    assert_eq!(spend_of(store, since, None, Some("over")).await, spend(0.0, u64::MAX, 2));
    let all = spend_of(store, since, None, None).await;
    assert_eq!((all.tokens, all.executions), (u64::MAX, cases.len() as u64 + 4));
}

/// The daily spend has one entry per UTC day and function with an execution created since the time asked, by day
/// then function, each the spend of that day's executions of that function.
pub async fn daily_spend_is_per_utc_day_and_function_in_order(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let beta = function(store, "beta").await;
    let gamma = function(store, "gamma").await;
    spent(store, trigger(&gamma, None), usage(8.0, 80)).await;
    let moment = a_moment_between().await;
    let created = [
        (spent(store, trigger(&beta, None), usage(0.5, 10)).await, spend(0.5, 10, 1)),
        (spent(store, trigger(&alpha, None), usage(0.25, 5)).await, spend(0.25, 5, 1)),
        (queued(store, &beta, json!({})).await, Spend::default()),
        (
            spent(store, trigger(&alpha, None), json!({"cost_usd": 0.25, "input_tokens": 7})).await,
            spend(0.25, 7, 1),
        ),
    ];
    // The day of each execution: the case may run across midnight (UTC).
    let mut expected: BTreeMap<(String, String), Spend> = BTreeMap::new();
    for (execution, figures) in &created {
        let entry = daily(execution, *figures);
        let sum = expected.entry((entry.day, entry.function)).or_default();
        *sum = spend(sum.cost_usd + figures.cost_usd, sum.tokens + figures.tokens, sum.executions + 1);
    }
    let expected: Vec<DailySpend> =
        expected.into_iter().map(|((day, function), spend)| DailySpend { day, function, spend }).collect();
    let days = store.daily_spend(moment).await.expect("the daily spend");
    assert_eq!(days, expected);
    assert!(days.iter().all(|entry| entry.day.len() == "2026-12-04".len()), "days are YYYY-MM-DD: {days:?}");
}

/// A function keeps its budgets — none by default — through create, update and every read.
pub async fn a_function_keeps_its_budgets(store: &dyn DashboardStore) {
    let budgets =
        |function: &Function| (function.max_cost_usd, function.daily_cost_usd, function.daily_tokens);
    let plain = function(store, "plain").await;
    assert_eq!(budgets(&plain), (None, None, None));
    let mut capped = spec("capped");
    capped.max_cost_usd = Some(0.1);
    capped.daily_cost_usd = Some(12.75);
    capped.daily_tokens = Some(1_000_000);
    let created = Function::create(capped).expect("a valid spec");
    let created = store.create_function(created).await.expect("create").value;
    assert_eq!(budgets(&created), (Some(0.1), Some(12.75), Some(1_000_000)));
    let read = |key: FunctionKey| async move { store.get_function(&key).await.expect("get") };
    assert_eq!(read(FunctionKey::Id(created.id)).await.as_ref(), Some(&created));
    assert_eq!(read(FunctionKey::Name("capped".into())).await.as_ref(), Some(&created));

    let mut changed = spec("capped");
    changed.daily_cost_usd = Some(1_000_000.0);
    changed.daily_tokens = Some(5_000_000_000_000);
    let updated = store.update_function(created.id, changed, Some(1)).await.expect("update").value;
    assert_eq!(budgets(&updated), (None, Some(1_000_000.0), Some(5_000_000_000_000)));
    assert_eq!(read(FunctionKey::Id(created.id)).await.as_ref(), Some(&updated));
    assert_eq!(store.list_functions().await.expect("list"), [updated, plain]);
    let cleared = store.update_function(created.id, spec("capped"), Some(2)).await.expect("update").value;
    assert_eq!(budgets(&cleared), (None, None, None));
    assert_eq!(read(FunctionKey::Name("capped".into())).await.as_ref(), Some(&cleared));
}
