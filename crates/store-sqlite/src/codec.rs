//! Conversions between domain values and SQLite columns, and the one place where SQLite errors become `StoreError`s.

use std::fmt::Display;
use std::str::FromStr;

use dashboard_core::{CoreError, Timestamp};
use dashboard_store::StoreError;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, ValueRef};
use rusqlite::{ErrorCode, Row, ToSql};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};

/// Times are stored as UTC text of fixed width, so that text order is time order and `sqlite3` shows them readably.
const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// A timestamp as a column.
#[derive(Clone, Copy, Debug)]
pub(super) struct SqlTime(pub(super) Timestamp);

impl SqlTime {
    /// The column's text; worth keeping when one time is bound many times (every line of a log batch).
    pub(super) fn text(self) -> rusqlite::Result<String> {
        self.0
            .to_offset(UtcOffset::UTC)
            .format(TIME_FORMAT)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
    }
}

impl ToSql for SqlTime {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.text()?))
    }
}

impl FromSql for SqlTime {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        let time = PrimitiveDateTime::parse(text, TIME_FORMAT)
            .map_err(|error| FromSqlError::Other(Box::new(error)))?;
        Ok(Self(time.assume_utc()))
    }
}

/// A value stored as JSON text.
#[derive(Clone, Debug)]
pub(super) struct Json<T>(pub(super) T);

impl<T: Serialize> ToSql for Json<T> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let text = serde_json::to_string(&self.0)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        Ok(ToSqlOutput::from(text))
    }
}

impl<T: DeserializeOwned> FromSql for Json<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        serde_json::from_str(text).map(Self).map_err(|error| FromSqlError::Other(Box::new(error)))
    }
}

/// An id, status or stream as its text.
pub(super) fn text(value: impl Display) -> String {
    value.to_string()
}

/// Reads a text column into anything that parses from text (ids, statuses, streams).
pub(super) fn parsed<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    text.parse()
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error)))
}

/// Reads an optional text column into anything that parses from text.
pub(super) fn parsed_option<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = row.get(index)?;
    text.map(|text| text.parse())
        .transpose()
        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error)))
}

/// A count or seq for SQL, which has no unsigned 64-bit integers: large values are clamped, as no table is that big.
pub(super) fn sql_int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// What an operation on the database can fail with: a store error it decided on, or an error of SQLite itself.
#[derive(Debug)]
pub(super) struct OpError(pub(super) StoreError);

/// The result of an operation run on a store connection.
pub(super) type OpResult<T> = Result<T, OpError>;

impl From<StoreError> for OpError {
    fn from(error: StoreError) -> Self {
        Self(error)
    }
}

impl From<CoreError> for OpError {
    fn from(error: CoreError) -> Self {
        Self(StoreError::Invalid(error))
    }
}

impl From<rusqlite::Error> for OpError {
    fn from(error: rusqlite::Error) -> Self {
        Self(unavailable(&error, error_message(&error)))
    }
}

/// An error of SQLite as [`StoreError::Unavailable`], with a sentence for the operator's log.
pub(super) fn unavailable(error: &rusqlite::Error, message: String) -> StoreError {
    StoreError::Unavailable { message, source: Some(Box::new(SqliteError(error.to_string()))) }
}

fn error_message(error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("the database file is locked by another process: {error}")
        }
        Some(ErrorCode::DiskFull) => format!("the disk is full: {error}"),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            format!("the database file cannot be written: {error}")
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            format!("the database file is damaged: {error}")
        }
        _ => match error {
            rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
                format!("a stored value could not be read: {error}")
            }
            _ => format!("the database failed: {error}"),
        },
    }
}

/// Whether `error` is a violation of a UNIQUE or PRIMARY KEY constraint.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// The text of an SQLite error, kept as the source of a [`StoreError`] so that no SQLite type leaves this module.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct SqliteError(pub(super) String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_sort_as_text() {
        let connection = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        let earlier = dashboard_core::now();
        let later = earlier + time::Duration::microseconds(1);
        let read = |time: Timestamp| -> (String, Timestamp) {
            connection
                .query_row("SELECT ?1, ?1", [SqlTime(time)], |row| {
                    Ok((row.get(0)?, row.get::<_, SqlTime>(1)?.0))
                })
                .expect("a round trip")
        };
        let (earlier_text, earlier_back) = read(earlier);
        let (later_text, later_back) = read(later);
        assert_eq!((earlier_back, later_back), (earlier, later));
        assert_eq!(earlier_text.len(), "2026-11-24T03:41:05.123456Z".len(), "{earlier_text}");
        assert!(earlier_text < later_text);
    }

    #[test]
    fn busy_errors_say_what_is_wrong() {
        let error =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        let OpError(store_error) = error.into();
        assert!(matches!(&store_error, StoreError::Unavailable { .. }));
        assert!(store_error.to_string().contains("locked by another process"), "{store_error}");
    }
}
