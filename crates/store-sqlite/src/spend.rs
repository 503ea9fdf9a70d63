//! Spend in SQLite: what executions cost and how many tokens they used, summed in SQL from their stored usage — the
//! figures budgets are checked against and the daily spend shown per function.
//!
//! The SQL counts one execution's usage exactly as [`dashboard_store::usage_spend`] does (the `tests` below hold the
//! two side by side on odd figures and on random ones). It reads each figure as its JSON text, once, and decides on
//! the text what serde_json decides on the value:
//! - `cost_usd` when it is a JSON number, finite and not negative; else 0.
//! - tokens: `total_tokens` when it is an unsigned 64-bit integer, else `input_tokens + output_tokens`, each counted
//!   only when it is one. An integer's text has digits only: a float has a point or an exponent (`12.0`, `1e3`),
//!   as serde_json reads them.
//! - the sum of tokens stops at `u64::MAX`. SQLite's integers are signed 64-bit, so a count's text is summed in two
//!   parts, the digits above its last nine and its last nine, which Rust puts together: exact up to `u64::MAX`,
//!   where it saturates.
//!
//! Costs are added by SQLite's `TOTAL`, which compensates for rounding, so a sum of many costs may differ in its last
//! bits from the same costs added one by one.

use dashboard_core::Timestamp;
use dashboard_store::{DailySpend, Spend, SpendQuery};
use rusqlite::types::ToSql;
use rusqlite::{Connection, Row};
use time::Duration;

use crate::codec::{OpResult, SqlTime};

/// How much earlier than `since` the id range of a spend query starts. An execution's id is minted by whoever
/// triggers it, moments before the store writes it with its `created_at` (after the engine's checks, in the writer's
/// queue), so the id of an execution created just after `since` may be a little older than `since`. The query keeps
/// exactly the executions created at or after `since` (by `created_at`); this margin only makes sure that the id
/// range holds all of them. An hour is far more than any trigger takes; it costs reading an hour more of executions.
const ID_MINT_MARGIN: Duration = Duration::hours(1);

/// The smallest id minted at `at` or later, as text: a UUID v7 begins with its Unix time in milliseconds (48 bits,
/// the first twelve hex digits), and ids are stored as lowercase hyphenated text, whose order is the UUID's.
fn first_id_at(at: Timestamp) -> String {
    const MAX_MILLIS: i128 = (1 << 48) - 1;
    let millis = (at.unix_timestamp_nanos().div_euclid(1_000_000)).clamp(0, MAX_MILLIS);
    format!("{:08x}-{:04x}-0000-0000-000000000000", millis >> 16, millis & 0xffff)
}

/// The bounds of "created at or after `since`": the first id to read, and `since` as the stored times compare. A
/// stored time has whole microseconds, so a `since` with a fraction of one is rounded up to the next (saturating: no
/// execution is created in the year 9999).
fn bounds(since: Timestamp) -> (String, SqlTime) {
    let nanos_into_micro = i64::from(since.nanosecond() % 1_000);
    let since = if nanos_into_micro == 0 {
        since
    } else {
        since.saturating_add(Duration::nanoseconds(1_000 - nanos_into_micro))
    };
    (first_id_at(since.saturating_sub(ID_MINT_MARGIN)), SqlTime(since))
}

/// Whether the JSON text `$count` counts as tokens: an unsigned 64-bit integer, so digits only (no sign, point or
/// exponent; a string would have quotes) and at most `u64::MAX` (texts of equal length compare as their numbers).
macro_rules! is_count {
    ($count:literal) => {
        concat!(
            "(",
            $count,
            " NOT GLOB '*[^0-9]*' AND (length(",
            $count,
            ") < 20 OR (length(",
            $count,
            ") = 20 AND ",
            $count,
            " <= '18446744073709551615')))"
        )
    };
}

/// The digits of the count text `$count` above its last nine, as an integer.
macro_rules! high {
    ($count:literal) => {
        concat!("CAST(substr(", $count, ", 1, length(", $count, ") - 9) AS INTEGER)")
    };
}

/// The last nine digits of the count text `$count`, as an integer.
macro_rules! low {
    ($count:literal) => {
        concat!("CAST(substr(", $count, ", -9) AS INTEGER)")
    };
}

/// One part (`high` or `low`) of an execution's tokens: the total's, else the input's plus the output's, a figure
/// that is no count adding 0.
macro_rules! tokens {
    ($part:ident) => {
        concat!(
            "CASE WHEN ",
            is_count!("total"),
            " THEN ",
            $part!("total"),
            " ELSE ",
            "(CASE WHEN ",
            is_count!("input"),
            " THEN ",
            $part!("input"),
            " ELSE 0 END) + ",
            "(CASE WHEN ",
            is_count!("output"),
            " THEN ",
            $part!("output"),
            " ELSE 0 END) END"
        )
    };
}

/// An execution's cost: the text of a number that is not negative (it begins with a digit: a string would begin with
/// its quote, a negative number with its sign), as a REAL, when finite; NULL, which `TOTAL` skips, otherwise.
macro_rules! cost {
    () => {
        "CASE WHEN cost GLOB '[0-9]*' AND CAST(cost AS REAL) <= 1.7976931348623157e308 THEN CAST(cost AS REAL) END"
    };
}

/// The executions created at or after `?2` (their ids at least `?1`), narrowed by `$filter`, each with its day, its
/// function and its figures as JSON text (`->`): a number as written, a string with its quotes, NULL when missing
/// or when the usage is no object. SQLite merges this into the query that reads it.
macro_rules! figures {
    ($filter:literal) => {
        concat!(
            "WITH figures AS (SELECT substr(created_at, 1, 10) AS day, function, usage -> '$.cost_usd' AS cost, \
             usage -> '$.total_tokens' AS total, usage -> '$.input_tokens' AS input, \
             usage -> '$.output_tokens' AS output \
             FROM executions WHERE id >= ?1 AND created_at >= ?2",
            $filter,
            ") "
        )
    };
}

/// The sums of [`Spend`], in [`spend_from_row`]'s order.
macro_rules! sums {
    () => {
        concat!("COUNT(*), TOTAL(", cost!(), "), SUM(", tokens!(high), "), SUM(", tokens!(low), ")")
    };
}

/// What the executions created since `?2` spent, of every function and caller (`ALL`), of function `?3`, of caller
/// `?3`, or of function `?3` and caller `?4`. Each names only the filters in use, so the planner picks the index of
/// each: the key's id range, `executions_by_function` or `executions_by_caller`.
const ALL: &str = concat!(figures!(""), "SELECT ", sums!(), " FROM figures");
const OF_FUNCTION: &str = concat!(figures!(" AND function = ?3"), "SELECT ", sums!(), " FROM figures");
const OF_CALLER: &str = concat!(figures!(" AND triggered_by = ?3"), "SELECT ", sums!(), " FROM figures");
const OF_FUNCTION_AND_CALLER: &str =
    concat!(figures!(" AND function = ?3 AND triggered_by = ?4"), "SELECT ", sums!(), " FROM figures");
/// What each function's executions spent per UTC day (the first ten characters of a stored time are its UTC day).
/// Grouping sorts the executions in range by day and function: the one sort of the store that grows with the range
/// asked for.
pub(super) const DAILY: &str = concat!(
    figures!(""),
    "SELECT day, function, ",
    sums!(),
    " FROM figures GROUP BY day, function ORDER BY day, function"
);

/// Every query of this module, for the schema's test that each uses an index.
#[cfg(test)]
pub(super) const QUERIES: &[&str] = &[ALL, OF_FUNCTION, OF_CALLER, OF_FUNCTION_AND_CALLER, DAILY];

/// The spend of the sums at `first` and after (see [`sums!`]): the tokens' two parts put together, saturating.
fn spend_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Spend> {
    let executions: i64 = row.get(first)?;
    let cost_usd: f64 = row.get(first + 1)?;
    let high: Option<i64> = row.get(first + 2)?;
    let low: Option<i64> = row.get(first + 3)?;
    // Both parts are sums of digits, never negative; NULL is the sum of no executions.
    let part = |sum: Option<i64>| u128::try_from(sum.unwrap_or(0)).unwrap_or(0);
    let tokens = part(high).saturating_mul(1_000_000_000).saturating_add(part(low));
    Ok(Spend {
        cost_usd,
        tokens: u64::try_from(tokens).unwrap_or(u64::MAX),
        executions: u64::try_from(executions).unwrap_or(0),
    })
}

pub(super) fn since(connection: &Connection, query: &SpendQuery) -> OpResult<Spend> {
    let (first_id, since) = bounds(query.since);
    let mut values: Vec<&dyn ToSql> = vec![&first_id, &since];
    let sql = match (&query.function, &query.triggered_by) {
        (None, None) => ALL,
        (Some(function), None) => {
            values.push(function);
            OF_FUNCTION
        }
        (None, Some(caller)) => {
            values.push(caller);
            OF_CALLER
        }
        (Some(function), Some(caller)) => {
            values.extend([function as &dyn ToSql, caller]);
            OF_FUNCTION_AND_CALLER
        }
    };
    let spend = connection.prepare_cached(sql)?.query_row(&*values, |row| spend_from_row(row, 0))?;
    Ok(spend)
}

pub(super) fn daily(connection: &Connection, since: Timestamp) -> OpResult<Vec<DailySpend>> {
    let (first_id, since) = bounds(since);
    let mut statement = connection.prepare_cached(DAILY)?;
    let days = statement
        .query_map(rusqlite::params![first_id, since], |row| {
            Ok(DailySpend { day: row.get(0)?, function: row.get(1)?, spend: spend_from_row(row, 2)? })
        })?
        .collect::<Result<_, _>>()?;
    Ok(days)
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ExecutionId, now};
    use dashboard_store::usage_spend;
    use rusqlite::params;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::schema::migrated;

    /// Stores an execution of `function` created at `created_at`, its id minted at `minted_at` (`n` tells apart the
    /// ids of one millisecond), triggered by `caller`, with `usage` as the stored JSON text.
    struct Stored<'a> {
        n: u64,
        minted_at: Timestamp,
        created_at: Timestamp,
        function: &'a str,
        caller: Option<&'a str>,
        usage: Option<&'a str>,
    }

    impl Stored<'_> {
        fn insert(&self, connection: &Connection) {
            let first = first_id_at(self.minted_at);
            let id = format!("{}{:012x}", &first[..first.len() - 12], self.n);
            connection
                .execute(
                    "INSERT INTO executions (id, function, function_id, function_version, backend, input, status, \
                     attempt, triggered_by, created_at, usage) \
                     VALUES (?1, ?2, 'f1', 1, 'demo', '{}', 'succeeded', 1, ?3, ?4, ?5)",
                    params![id, self.function, self.caller, SqlTime(self.created_at), self.usage],
                )
                .expect("an execution");
        }
    }

    /// An execution created (and its id minted) at `at`.
    fn at<'a>(n: u64, at: Timestamp, function: &'a str, usage: Option<&'a str>) -> Stored<'a> {
        Stored { n, minted_at: at, created_at: at, function, caller: None, usage }
    }

    fn spend(connection: &Connection, since: Timestamp, caller: Option<&str>) -> Spend {
        let query = SpendQuery { since, function: None, triggered_by: caller.map(str::to_owned) };
        super::since(connection, &query)
            .unwrap_or_else(|error| panic!("the spend of {caller:?}: {:?}", error.0))
    }

    /// Stored usage texts, some of which serde_json would never write, each with what it adds: cost, tokens.
    const ODD_USAGE: &[(Option<&str>, f64, u64)] = &[
        (None, 0.0, 0),
        (Some("null"), 0.0, 0),
        (Some("[1, 2]"), 0.0, 0),
        (Some(r#""lots""#), 0.0, 0),
        (Some("7"), 0.0, 0),
        (Some("{}"), 0.0, 0),
        (Some(r#"{"cost_usd": 0.25, "total_tokens": 100}"#), 0.25, 100),
        (Some(r#"{"input_tokens": 7, "output_tokens": 3}"#), 0.0, 10),
        (Some(r#"{"total_tokens": 4, "input_tokens": 7, "output_tokens": 3}"#), 0.0, 4),
        (Some(r#"{"total_tokens": 0, "input_tokens": 5}"#), 0.0, 0),
        (Some(r#"{"cost_usd": "0.5", "total_tokens": "12", "input_tokens": 2}"#), 0.0, 2),
        (Some(r#"{"cost_usd": -1.5, "total_tokens": -3, "output_tokens": 1}"#), 0.0, 1),
        (Some(r#"{"cost_usd": 2, "total_tokens": 12.0, "output_tokens": 5}"#), 2.0, 5),
        (Some(r#"{"input_tokens": 2.5, "output_tokens": 4}"#), 0.0, 4),
        (Some(r#"{"total_tokens": 1e3, "input_tokens": 1E+2, "output_tokens": 6}"#), 0.0, 6),
        (Some(r#"{"total_tokens": -0, "input_tokens": 5}"#), 0.0, 5),
        (Some(r#"{"cost_usd": -0.0, "total_tokens": 1}"#), 0.0, 1),
        (Some(r#"{"cost_usd": true, "total_tokens": false, "input_tokens": null}"#), 0.0, 0),
        (Some(r#"{"cost_usd": {"usd": 1}, "total_tokens": [1], "output_tokens": {"n": 2}}"#), 0.0, 0),
        (Some(r#"{"raw": {"total_tokens": 99, "cost_usd": 9}}"#), 0.0, 0),
        (Some(r#"{"cost_usd": 0.1}"#), 0.1, 0),
        (Some(r#"{"cost_usd": 1e300}"#), 1e300, 0),
        (Some(r#"{"cost_usd": 12345678901234567890}"#), 12_345_678_901_234_567_000.0, 0),
        (Some(r#"{"total_tokens": 999999999}"#), 0.0, 999_999_999),
        (Some(r#"{"total_tokens": 1000000000}"#), 0.0, 1_000_000_000),
        (Some(r#"{"total_tokens": 9223372036854775807}"#), 0.0, i64::MAX as u64),
        (Some(r#"{"total_tokens": 9223372036854775808}"#), 0.0, 1 << 63),
        (Some(r#"{"total_tokens": 18446744073709551615}"#), 0.0, u64::MAX),
        (Some(r#"{"total_tokens": 18446744073709551616, "input_tokens": 1}"#), 0.0, 1),
        (Some(r#"{"total_tokens": 123456789012345678901234, "output_tokens": 2}"#), 0.0, 2),
        (Some(r#"{"input_tokens": 18446744073709551615, "output_tokens": 1}"#), 0.0, u64::MAX),
        (
            Some(r#"{"input_tokens": 9223372036854775808, "output_tokens": 9223372036854775808}"#),
            0.0,
            u64::MAX,
        ),
    ];

    #[test]
    fn odd_usage_counts_as_usage_spend_counts_it() {
        let connection = migrated();
        let created_at = now();
        let callers: Vec<String> = (0..ODD_USAGE.len()).map(|n| format!("case-{n}")).collect();
        for (n, (usage, _, _)) in ODD_USAGE.iter().enumerate() {
            let caller = Some(callers[n].as_str());
            Stored { caller, ..at(n as u64, created_at, "alpha", *usage) }.insert(&connection);
        }
        for (n, &(usage, cost_usd, tokens)) in ODD_USAGE.iter().enumerate() {
            let value = usage.map(|text| serde_json::from_str(text).expect("valid JSON"));
            assert_eq!(usage_spend(value.as_ref()), (cost_usd, tokens), "usage_spend of {usage:?}");
            let expected = Spend { cost_usd, tokens, executions: 1 };
            assert_eq!(spend(&connection, created_at, Some(&callers[n])), expected, "the SQL of {usage:?}");
        }
        let all = spend(&connection, created_at, None);
        assert_eq!((all.tokens, all.executions), (u64::MAX, ODD_USAGE.len() as u64), "saturated");
    }

    #[test]
    fn tokens_beyond_signed_64_bits_are_summed_exactly_then_saturate() {
        let connection = migrated();
        let created_at = now();
        let usages = [
            ("big", r#"{"total_tokens": 9223372036854775808}"#),
            ("big", r#"{"input_tokens": 999999999, "output_tokens": 1}"#),
            ("full", r#"{"total_tokens": 18446744073709551614}"#),
            ("full", r#"{"total_tokens": 1}"#),
            ("over", r#"{"total_tokens": 18446744073709551615}"#),
            ("over", r#"{"total_tokens": 1}"#),
        ];
        for (n, (caller, usage)) in usages.into_iter().enumerate() {
            Stored { caller: Some(caller), ..at(n as u64, created_at, "alpha", Some(usage)) }
                .insert(&connection);
        }
        let tokens = |caller: &str| spend(&connection, created_at, Some(caller)).tokens;
        assert_eq!(tokens("big"), (1 << 63) + 1_000_000_000);
        assert_eq!(tokens("full"), u64::MAX);
        assert_eq!(tokens("over"), u64::MAX);
    }

    /// Random figures as serde_json writes them are read alike: floats of every magnitude, counts of every width.
    #[test]
    fn random_figures_read_alike() {
        let connection = migrated();
        let created_at = now();
        // splitmix64: a fixed, dependency-free sequence.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut usages = Vec::new();
        while usages.len() < 2_000 {
            // Any bits: NaN and infinities become `null`, as serde_json writes them.
            let cost = f64::from_bits(next());
            let count = next() >> (next() % 64);
            let cents = (next() % 1_000_000) as f64 / 1e4;
            let usage = match usages.len() % 6 {
                0 => json!({"cost_usd": cost, "total_tokens": count}),
                1 => json!({"cost_usd": cost / 1e300, "input_tokens": count, "output_tokens": count / 3}),
                2 => json!({"cost_usd": cents, "total_tokens": -((count >> 1) as i64)}),
                3 => json!({"cost_usd": -cost, "total_tokens": count as f64, "output_tokens": count}),
                // Whole costs, as integers of every width.
                4 => json!({"cost_usd": count, "input_tokens": cents, "output_tokens": count.to_string()}),
                _ => json!({"cost_usd": -((count >> 1) as i64), "total_tokens": null, "input_tokens": count}),
            };
            usages.push(serde_json::to_string(&usage).expect("JSON text"));
        }
        for (n, usage) in usages.iter().enumerate() {
            let caller = format!("random-{n}");
            Stored { caller: Some(&caller), ..at(n as u64, created_at, "alpha", Some(usage)) }
                .insert(&connection);
        }
        for (n, usage) in usages.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(usage).expect("valid JSON");
            let (cost_usd, tokens) = usage_spend(Some(&value));
            let read = spend(&connection, created_at, Some(&format!("random-{n}")));
            assert_eq!((read.cost_usd, read.tokens), (cost_usd, tokens), "the SQL of {usage}");
        }
    }

    #[test]
    fn daily_spend_is_per_utc_day_and_function_in_order() {
        let connection = migrated();
        let rows = [
            at(1, datetime!(2026-12-02 12:00 UTC), "alpha", Some(r#"{"cost_usd": 4, "total_tokens": 40}"#)),
            at(
                2,
                datetime!(2026-12-03 23:59:59.999999 UTC),
                "beta",
                Some(r#"{"cost_usd": 0.5, "total_tokens": 10}"#),
            ),
            at(3, datetime!(2026-12-04 00:00 UTC), "gamma", Some(r#"{"cost_usd": 1}"#)),
            at(4, datetime!(2026-12-04 00:00 UTC), "alpha", Some(r#"{"cost_usd": 0.25, "total_tokens": 5}"#)),
            at(5, datetime!(2026-12-04 13:00 UTC), "alpha", Some(r#"{"cost_usd": 0.25, "input_tokens": 7}"#)),
            at(6, datetime!(2026-12-04 13:00:01 UTC), "beta", None),
        ];
        for row in &rows {
            row.insert(&connection);
        }
        let day = |day: &str, function: &str, cost_usd: f64, tokens: u64, executions: u64| DailySpend {
            day: day.to_owned(),
            function: function.to_owned(),
            spend: Spend { cost_usd, tokens, executions },
        };
        let daily = |since: Timestamp| super::daily(&connection, since).expect("the daily spend");
        assert_eq!(
            daily(datetime!(2026-12-03 00:00 UTC)),
            [
                day("2026-12-03", "beta", 0.5, 10, 1),
                day("2026-12-04", "alpha", 0.5, 12, 2),
                day("2026-12-04", "beta", 0.0, 0, 1),
                day("2026-12-04", "gamma", 1.0, 0, 1),
            ]
        );
        assert_eq!(
            daily(datetime!(2026-12-04 01:00 +01:00)),
            [
                day("2026-12-04", "alpha", 0.5, 12, 2),
                day("2026-12-04", "beta", 0.0, 0, 1),
                day("2026-12-04", "gamma", 1.0, 0, 1)
            ],
            "a since in another offset is the same moment in UTC"
        );
        assert_eq!(daily(datetime!(2026-12-05 00:00 UTC)), []);
    }

    #[test]
    fn since_is_compared_with_the_creation_time_not_the_id() {
        let connection = migrated();
        let since = datetime!(2026-12-04 00:00 UTC);
        let rows = [
            // Minted half an hour before `since`, stored after it: counts.
            Stored {
                minted_at: since - Duration::minutes(30),
                ..at(1, since + Duration::seconds(1), "alpha", Some(r#"{"total_tokens": 1}"#))
            },
            // Created a microsecond before `since`, its id minted after it (a clock set back): does not count.
            Stored {
                minted_at: since + Duration::milliseconds(1),
                ..at(2, since - Duration::microseconds(1), "alpha", Some(r#"{"total_tokens": 10}"#))
            },
            at(3, since, "alpha", Some(r#"{"total_tokens": 100}"#)),
            at(4, since + Duration::microseconds(2), "alpha", Some(r#"{"total_tokens": 1000}"#)),
        ];
        for row in &rows {
            row.insert(&connection);
        }
        let tokens = |since: Timestamp| spend(&connection, since, None).tokens;
        assert_eq!(tokens(since), 1101, "created at `since` or later");
        assert_eq!(tokens(since + Duration::nanoseconds(1)), 1001, "a nanosecond later excludes `since`");
        assert_eq!(tokens(since + Duration::nanoseconds(1_001)), 1001, "rounded up to whole microseconds");
        assert_eq!(tokens(since + Duration::nanoseconds(2_001)), 1, "and no further");
    }

    #[test]
    fn the_first_id_of_a_moment_sorts_before_every_id_minted_then_or_later() {
        let before = now();
        let id = ExecutionId::generate().to_string();
        let after = now() + Duration::milliseconds(2);
        assert!(first_id_at(before) <= id && id < first_id_at(after), "{id}");
        assert_eq!(
            first_id_at(Timestamp::from_unix_timestamp_nanos(0x0123_4567_89ab * 1_000_000).expect("a time")),
            "01234567-89ab-0000-0000-000000000000"
        );
        assert_eq!(first_id_at(datetime!(1969-07-20 20:17 UTC)), "00000000-0000-0000-0000-000000000000");
    }
}
