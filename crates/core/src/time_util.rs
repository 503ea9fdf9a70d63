//! Timestamps: UTC, microsecond precision, written as RFC 3339.

use time::OffsetDateTime;

/// A point in time, always in UTC. Serialized as RFC 3339 (`2026-11-24T03:41:05.123456Z`).
pub type Timestamp = OffsetDateTime;

/// The current time in UTC, truncated to whole microseconds so that it survives a round trip through any store.
pub fn now() -> Timestamp {
    let now = OffsetDateTime::now_utc();
    let micros = now.microsecond();
    now.replace_microsecond(micros).expect("a microsecond taken from a valid time is valid")
}

/// The start (midnight, UTC) of the UTC day `at` falls on: where daily budgets and daily spend begin.
pub fn start_of_utc_day(at: Timestamp) -> Timestamp {
    at.to_offset(time::UtcOffset::UTC).replace_time(time::Time::MIDNIGHT)
}
