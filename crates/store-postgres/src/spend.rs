//! Spend in PostgreSQL: what executions cost and how many tokens they used, summed in SQL from their stored usage —
//! the figures budgets are checked against and the daily spend shown per function.
//!
//! The SQL counts one execution's usage exactly as [`dashboard_store::usage_spend`] does. It reads each figure as its
//! JSON text, as serde_json wrote it (`usage::json -> 'cost_usd'`: the `json` type keeps a number's text, where `jsonb`
//! would normalise `1e3` to `1000`), and decides on the text what serde_json decides on the value:
//! - `cost_usd` when it is a JSON number, not negative (its text begins with a digit: a string would begin with its
//!   quote, a negative number with its sign) and finite; else nothing.
//! - tokens: `total_tokens` when it is an unsigned 64-bit integer (digits only — a float has a point or an exponent —
//!   and at most `u64::MAX`), else `input_tokens + output_tokens`, each counted only when it is one.
//!
//! Both are summed as `numeric`, exactly, and handed over as text: Rust rounds the cost's sum to the nearest `f64`
//! once (infinity past the largest), and the tokens' sum stops at `u64::MAX`.

use dashboard_core::Timestamp;
use dashboard_store::{DailySpend, Spend, SpendQuery};
use deadpool_postgres::GenericClient;
use time::Duration;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::codec::{Columns, OpResult, text, unreadable};
use crate::transaction::{one, rows};

/// How much earlier than `since` the id range of a spend query starts. An execution's id is minted by whoever
/// triggers it, moments before the store writes it with its `created_at`, so the id of an execution created just after
/// `since` may be a little older than `since`. The query keeps exactly the executions created at or after `since` (by
/// `created_at`); this margin only makes sure that the id range holds all of them.
const ID_MINT_MARGIN: Duration = Duration::hours(1);

/// The smallest id minted at `at` or later: a UUID v7 begins with its Unix time in milliseconds (48 bits), and
/// PostgreSQL orders `uuid`s by their bytes.
fn first_id_at(at: Timestamp) -> Uuid {
    const MAX_MILLIS: i128 = (1 << 48) - 1;
    let millis = at.unix_timestamp_nanos().div_euclid(1_000_000).clamp(0, MAX_MILLIS);
    Uuid::from_u128(u128::try_from(millis).unwrap_or(0) << 80)
}

/// The bounds of "created at or after `since`": the first id to read, and `since` as the stored times compare. A
/// stored time has whole microseconds, so a `since` with a fraction of one is rounded up to the next.
fn bounds(since: Timestamp) -> (Uuid, Timestamp) {
    let nanos_into_micro = i64::from(since.nanosecond() % 1_000);
    let since = if nanos_into_micro == 0 {
        since
    } else {
        since.saturating_add(Duration::nanoseconds(1_000 - nanos_into_micro))
    };
    (first_id_at(since.saturating_sub(ID_MINT_MARGIN)), since)
}

/// Whether the JSON text `$count` counts as tokens: an unsigned 64-bit integer, so digits only (no sign, point or
/// exponent; a string would have quotes) and at most `u64::MAX` (texts of equal length compare as their numbers).
macro_rules! is_count {
    ($count:literal) => {
        concat!(
            "(",
            $count,
            " ~ '^[0-9]+$' AND (length(",
            $count,
            ") < 20 OR (length(",
            $count,
            ") = 20 AND ",
            $count,
            " COLLATE \"C\" <= '18446744073709551615')))"
        )
    };
}

/// The count text `$count` as a number, 0 when it is no count.
macro_rules! count {
    ($count:literal) => {
        concat!("CASE WHEN ", is_count!($count), " THEN ", $count, "::numeric ELSE 0 END")
    };
}

/// The executions created at or after `$2` (their ids at least `$1`), narrowed by `$filter`, each with its UTC day,
/// its function, its cost (NULL when it has none) and its tokens. A `CASE` is evaluated in order, so a figure's text
/// is cast to `numeric` only once it is known to be a number's.
macro_rules! figures {
    ($filter:literal) => {
        concat!(
            "WITH reported AS (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, function, \
             (usage::json -> 'cost_usd')::text AS cost, (usage::json -> 'total_tokens')::text AS total, \
             (usage::json -> 'input_tokens')::text AS input, (usage::json -> 'output_tokens')::text AS output \
             FROM executions WHERE id >= $1 AND created_at >= $2",
            $filter,
            "), figures AS (SELECT day, function, \
             CASE WHEN cost ~ '^[0-9]' THEN CASE WHEN cost::numeric <= 1.7976931348623157e308 \
             THEN cost::numeric END END AS cost, \
             CASE WHEN ",
            is_count!("total"),
            " THEN total::numeric ELSE (",
            count!("input"),
            ") + (",
            count!("output"),
            ") END AS tokens FROM reported) "
        )
    };
}

/// The sums of [`Spend`], in [`spend_from_row`]'s order: the count, the exact sums as text.
macro_rules! sums {
    () => {
        "COUNT(*), COALESCE(SUM(cost), 0)::text, LEAST(COALESCE(SUM(tokens), 0), 18446744073709551615)::text"
    };
}

/// What the executions created since `$2` spent, of every function and caller (`ALL`), of function `$3`, of caller
/// `$3`, or of function `$3` and caller `$4`. Each names only the filters in use, so the planner picks the index of
/// each: the id range, `executions_by_function` or `executions_by_caller`.
const ALL: &str = concat!(figures!(""), "SELECT ", sums!(), " FROM figures");
const OF_FUNCTION: &str = concat!(figures!(" AND function = $3"), "SELECT ", sums!(), " FROM figures");
const OF_CALLER: &str = concat!(figures!(" AND triggered_by = $3"), "SELECT ", sums!(), " FROM figures");
const OF_FUNCTION_AND_CALLER: &str =
    concat!(figures!(" AND function = $3 AND triggered_by = $4"), "SELECT ", sums!(), " FROM figures");
/// What each function's executions spent per UTC day, by day then function in byte order (as Rust sorts).
const DAILY: &str = concat!(
    figures!(""),
    "SELECT day, function, ",
    sums!(),
    " FROM figures GROUP BY day, function ORDER BY day, function COLLATE \"C\""
);

/// The spend of the sums at `first` and after (see [`sums!`]).
fn spend_from_row(row: &Row, first: usize) -> OpResult<Spend> {
    let columns = Columns(row);
    let cost: &str = columns.get(first + 1)?;
    let tokens: &str = columns.get(first + 2)?;
    Ok(Spend {
        cost_usd: cost
            .parse()
            .map_err(|error| unreadable("the sum of costs", format!("{cost:?}: {error}")))?,
        tokens: tokens
            .parse()
            .map_err(|error| unreadable("the sum of tokens", format!("{tokens:?}: {error}")))?,
        executions: columns.unsigned(first)?,
    })
}

pub(crate) async fn since(client: &impl GenericClient, query: &SpendQuery) -> OpResult<Spend> {
    let (first_id, since) = bounds(query.since);
    let function = query.function.as_deref().map(text);
    let caller = query.triggered_by.as_deref().map(text);
    let found = match (&function, &caller) {
        (None, None) => one(client, ALL, &[&first_id, &since]).await?,
        (Some(function), None) => one(client, OF_FUNCTION, &[&first_id, &since, function]).await?,
        (None, Some(caller)) => one(client, OF_CALLER, &[&first_id, &since, caller]).await?,
        (Some(function), Some(caller)) => {
            one(client, OF_FUNCTION_AND_CALLER, &[&first_id, &since, function, caller]).await?
        }
    };
    spend_from_row(&found, 0)
}

pub(crate) async fn daily(client: &impl GenericClient, since: Timestamp) -> OpResult<Vec<DailySpend>> {
    let (first_id, since) = bounds(since);
    let found = rows(client, DAILY, &[&first_id, &since]).await?;
    found
        .iter()
        .map(|row| {
            let columns = Columns(row);
            Ok(DailySpend { day: columns.get(0)?, function: columns.get(1)?, spend: spend_from_row(row, 2)? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ExecutionId, now};
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_first_id_of_a_moment_sorts_before_every_id_minted_then_or_later() {
        let before = now();
        let id = ExecutionId::generate().as_uuid();
        let after = now() + Duration::milliseconds(2);
        assert!(first_id_at(before) <= id && id < first_id_at(after), "{id}");
        let moment = Timestamp::from_unix_timestamp_nanos(0x0123_4567_89ab * 1_000_000).expect("a time");
        assert_eq!(first_id_at(moment).to_string(), "01234567-89ab-0000-0000-000000000000");
        assert_eq!(first_id_at(datetime!(1969-07-20 20:17 UTC)), Uuid::nil());
    }

    #[test]
    fn since_is_rounded_up_to_whole_microseconds() {
        let since = datetime!(2026-12-04 00:00 UTC);
        assert_eq!(bounds(since).1, since);
        assert_eq!(bounds(since + Duration::nanoseconds(1)).1, since + Duration::microseconds(1));
        assert_eq!(bounds(since + Duration::nanoseconds(1_001)).1, since + Duration::microseconds(2));
    }
}
