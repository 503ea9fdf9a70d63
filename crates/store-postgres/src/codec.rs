//! Columns and errors: how values cross between the dashboard's types and PostgreSQL's, and how a driver error
//! becomes a [`StoreError`](dashboard_store::StoreError).
//!
//! Ids are `uuid`, times `timestamptz` (both bound as themselves), JSON values `text` exactly as serde_json wrote them,
//! counts `bigint`. Every read goes through `try_get`, so a column of an unexpected type is an error, never a panic.
//!
//! **NUL bytes.** PostgreSQL's `text` refuses the character U+0000, which SQLite's keeps. JSON columns are safe:
//! serde_json writes it as the escape `\u0000`, so a value round-trips whole. A plain text column (a log line, an
//! error, a summary) is bound through [`text`], which replaces each U+0000 with U+FFFD (the replacement character):
//! one invisible character of an agent's output is changed rather than the whole write refused. The same mapping
//! applies to the text that lookups bind, so a key with a NUL still finds what was stored under it.

use std::borrow::Cow;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use dashboard_core::CoreError;
use dashboard_store::StoreError;
use deadpool_postgres::{PoolError, TimeoutType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::error::{DbError, SqlState};
use uuid::Uuid;

use crate::session::{IDLE_IN_TRANSACTION_TIMEOUT, LOCK_TIMEOUT, STATEMENT_TIMEOUT, shown};

/// What an operation on the database can fail with: a store error it decided on, or an error of PostgreSQL (already
/// turned into a [`StoreError`] by [`database_error`]). The `?` of the per-record modules converts into it.
#[derive(Debug)]
pub(crate) struct OpError(pub(crate) StoreError);

/// The result of an operation run on a store connection.
pub(crate) type OpResult<T> = Result<T, OpError>;

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

impl From<tokio_postgres::Error> for OpError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self(database_error(error, "the database failed"))
    }
}

impl From<OpError> for StoreError {
    fn from(error: OpError) -> Self {
        error.0
    }
}

/// An error of PostgreSQL as the [`StoreError`] its caller can act on, by the class of its SQLSTATE. A refusal that
/// the data caused, and that every retry would meet again, is [`StoreError::Invalid`] naming what was refused (a 422
/// for the client, not a 503 retried for ever): class 22 (data exception: a value out of range, malformed, too long),
/// 23 (integrity constraint violation) and 54 (program limit exceeded: an index row too large, say). Everything else
/// is [`StoreError::Unavailable`] (see [`unavailable`]): a lost connection, a server shutting down, a lock or
/// statement timeout, a serialization failure or deadlock (40), insufficient resources (53) — what may pass.
pub(crate) fn database_error(error: tokio_postgres::Error, what: &str) -> StoreError {
    match error.as_db_error() {
        Some(db_error) if is_refusal_of_data(db_error.code()) => refused(db_error),
        _ => unavailable(error, what),
    }
}

/// Whether `code` is of a class that the data sent causes, deterministically: 22, 23 or 54.
fn is_refusal_of_data(code: &SqlState) -> bool {
    matches!(code.code().get(..2), Some("22" | "23" | "54"))
}

/// A refusal of the data as an invalid field: the column, constraint or table PostgreSQL names, with its message and
/// detail (the relation an index row is of, the key a unique index holds already).
fn refused(db_error: &DbError) -> StoreError {
    let field = db_error.column().or(db_error.constraint()).or(db_error.table()).unwrap_or("value");
    let detail = db_error.detail().map(|detail| format!(" ({detail})")).unwrap_or_default();
    let message = format!("the database refuses this value: {}{detail}", db_error.message());
    StoreError::Invalid(CoreError::invalid_field(field, message))
}

/// An error of PostgreSQL as [`StoreError::Unavailable`]: `what` failed, and why, in a sentence for the operator's
/// log. A lost server (refused or reset connection, shutdown, a standby that cannot write) says so plainly, and so
/// does a statement cut short by a timeout of `session.rs`, with what it waited for.
pub(crate) fn unavailable(error: tokio_postgres::Error, what: &str) -> StoreError {
    let reason = describe(&error);
    let message = match error.code() {
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => format!(
            "{what}: it waited longer than the lock timeout ({}) for a lock another database session holds ({reason}); \
             a session that froze in the middle of a transaction keeps its locks until the server ends it, within {}",
            shown(LOCK_TIMEOUT),
            shown(IDLE_IN_TRANSACTION_TIMEOUT)
        ),
        Some(code) if *code == SqlState::QUERY_CANCELED => format!(
            "{what}: the statement was cancelled — it ran longer than the statement timeout ({}), or an \
             administrator cancelled it ({reason})",
            shown(STATEMENT_TIMEOUT)
        ),
        Some(code) if *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => format!(
            "{what}: the server ended the session, idle in a transaction for longer than {} ({reason})",
            shown(IDLE_IN_TRANSACTION_TIMEOUT)
        ),
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            format!("{what}: it collided with a concurrent change and was undone; try again ({reason})")
        }
        Some(code) if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN => {
            format!("{what}: the database server is shutting down ({reason})")
        }
        Some(code) if *code == SqlState::CANNOT_CONNECT_NOW => {
            format!("{what}: the database server is starting or stopping ({reason})")
        }
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
            format!("{what}: the database is read-only (a standby, or in recovery) ({reason})")
        }
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => {
            format!("{what}: the database server has no connection left ({reason})")
        }
        Some(code) if *code == SqlState::DISK_FULL => {
            format!("{what}: the database server's disk is full ({reason})")
        }
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            format!("{what}: the database server refused the login ({reason})")
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            format!("{what}: the database does not exist ({reason})")
        }
        _ if error.is_closed() => {
            format!("{what}: the connection to the database server was lost ({reason})")
        }
        _ => format!("{what}: {reason}"),
    };
    StoreError::Unavailable { message, source: Some(Box::new(PostgresError(reason))) }
}

/// A driver error in words: the server's own message when it sent one, else the driver's with its cause (the driver's
/// `Display` leaves the cause out: "error connecting to server" alone says nothing of what happened).
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db_error) = error.as_db_error() {
        // The context says what a lock wait was for ("while updating tuple (0,1) in relation \"event_counter\"").
        let context = db_error.where_().map(|context| format!("; CONTEXT: {context}")).unwrap_or_default();
        return format!("{db_error}{context}").replace('\n', "; ");
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// A pool that could not hand out a connection as [`StoreError::Unavailable`]: no free one within the wait, a server
/// that cannot be reached, or one that refused.
pub(crate) fn pool_unavailable(error: PoolError, timeout: Duration) -> StoreError {
    match error {
        PoolError::Backend(error) => unavailable(error, "could not connect to the database"),
        PoolError::Timeout(TimeoutType::Wait) => StoreError::Unavailable {
            message: format!(
                "no database connection became free within {timeout:?} (every connection of the pool is busy)"
            ),
            source: None,
        },
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => StoreError::Unavailable {
            message: format!("the database server did not answer within {timeout:?}"),
            source: None,
        },
        other => StoreError::Unavailable {
            message: format!("could not get a database connection: {other}"),
            source: None,
        },
    }
}

/// The constraint a unique (or primary key) violation broke, when `error` is one; the caller turns it into the
/// matching domain error (a taken name, a taken id, a repeated idempotency key).
pub(crate) fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db_error = error.as_db_error()?;
    (*db_error.code() == SqlState::UNIQUE_VIOLATION).then(|| db_error.constraint().unwrap_or(""))
}

/// The text of a PostgreSQL error, kept as the source of a [`StoreError`] so that no driver type leaves the crate.
#[derive(Debug)]
pub(crate) struct PostgresError(pub(crate) String);

impl Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PostgresError {}

/// A stored value this build cannot read (a column it did not write, an unknown status), as an error.
pub(crate) fn unreadable(column: &str, detail: impl Display) -> OpError {
    OpError(StoreError::Unavailable {
        message: format!("a stored value could not be read: the column {column}: {detail}"),
        source: None,
    })
}

/// Plain text as its column holds it: each U+0000, which PostgreSQL's `text` refuses, becomes U+FFFD (see the module
/// docs). Borrowed as it is when it holds none, which is nearly always.
pub(crate) fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') { Cow::Owned(value.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(value) }
}

/// Optional plain text as its column holds it (see [`text`]).
pub(crate) fn text_option(value: Option<&str>) -> Option<Cow<'_, str>> {
    value.map(text)
}

/// A value as the JSON text its column holds.
pub(crate) fn json_text<T: Serialize + ?Sized>(value: &T) -> OpResult<String> {
    serde_json::to_string(value).map_err(|error| {
        OpError(StoreError::Unavailable {
            message: format!("a value could not be written as JSON: {error}"),
            source: Some(Box::new(error)),
        })
    })
}

/// A count or seq as a `bigint`; `field` names it when it is too large to store (an invalid field, as the API's
/// validation would say, not a database error).
pub(crate) fn bigint(field: &str, value: u64) -> OpResult<i64> {
    i64::try_from(value).map_err(|_| {
        OpError::from(CoreError::invalid_field(
            field,
            format!("must be at most {} (the store's limit)", i64::MAX),
        ))
    })
}

/// A count or seq as a `bigint` in a query (a limit, a cursor): values past `i64::MAX` are clamped, as no table is that
/// big.
pub(crate) fn sql_int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Reads the columns of one row by index, each converted and checked: the per-record modules read rows through it.
pub(crate) struct Columns<'r>(pub(crate) &'r Row);

impl Columns<'_> {
    /// Any column the driver reads directly (text, bool, float, uuid, timestamptz, and their options).
    pub(crate) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, index: usize) -> OpResult<T> {
        Ok(self.0.try_get(index)?)
    }

    /// An id stored as `uuid`.
    pub(crate) fn id<T: From<Uuid>>(&self, index: usize) -> OpResult<T> {
        Ok(T::from(self.0.try_get::<_, Uuid>(index)?))
    }

    /// An optional id stored as `uuid`.
    pub(crate) fn id_option<T: From<Uuid>>(&self, index: usize) -> OpResult<Option<T>> {
        Ok(self.0.try_get::<_, Option<Uuid>>(index)?.map(T::from))
    }

    /// A value stored as JSON text.
    pub(crate) fn json<T: DeserializeOwned>(&self, index: usize) -> OpResult<T> {
        let text: &str = self.0.try_get(index)?;
        serde_json::from_str(text).map_err(|error| unreadable(self.name(index), error))
    }

    /// An optional value stored as JSON text.
    pub(crate) fn json_option<T: DeserializeOwned>(&self, index: usize) -> OpResult<Option<T>> {
        let text: Option<&str> = self.0.try_get(index)?;
        text.map(|text| serde_json::from_str(text).map_err(|error| unreadable(self.name(index), error)))
            .transpose()
    }

    /// Anything stored as its text that parses back (statuses, kinds, streams).
    pub(crate) fn parsed<T>(&self, index: usize) -> OpResult<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text: &str = self.0.try_get(index)?;
        text.parse().map_err(|error| unreadable(self.name(index), error))
    }

    /// A `bigint` that holds an unsigned number of a narrower or equal type (`u64`, `u32`).
    pub(crate) fn unsigned<T: TryFrom<i64>>(&self, index: usize) -> OpResult<T> {
        let value: i64 = self.0.try_get(index)?;
        T::try_from(value).map_err(|_| unreadable(self.name(index), format!("{value} is out of range")))
    }

    /// An optional `bigint` that holds an unsigned number.
    pub(crate) fn unsigned_option<T: TryFrom<i64>>(&self, index: usize) -> OpResult<Option<T>> {
        let value: Option<i64> = self.0.try_get(index)?;
        value
            .map(|value| {
                T::try_from(value)
                    .map_err(|_| unreadable(self.name(index), format!("{value} is out of range")))
            })
            .transpose()
    }

    fn name(&self, index: usize) -> &str {
        self.0.columns().get(index).map_or("?", |column| column.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_plain_text_becomes_the_replacement_character_and_json_keeps_it() {
        assert!(matches!(text("no nul here"), Cow::Borrowed("no nul here")));
        assert_eq!(text("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        let value = serde_json::json!({ "line": "a\0b" });
        let stored = json_text(&value).expect("JSON text");
        assert!(!stored.contains('\0'), "{stored}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stored).expect("read back"), value);
    }

    #[test]
    fn a_count_beyond_bigint_is_an_invalid_field() {
        assert_eq!(bigint("daily_tokens", 7).map_err(|error| error.0.to_string()).ok(), Some(7));
        let refused = bigint("daily_tokens", u64::MAX).map_err(|error| error.0);
        assert!(
            matches!(&refused, Err(StoreError::Invalid(error)) if error.to_string().contains("daily_tokens")),
            "{refused:?}"
        );
        assert_eq!(sql_int(u64::MAX), i64::MAX);
    }

    /// What `sql` fails with on `client`, as the store maps it.
    async fn failure_of(client: &tokio_postgres::Client, sql: &str) -> StoreError {
        match client.batch_execute(sql).await {
            Ok(()) => panic!("{sql} did not fail"),
            Err(error) => database_error(error, "the test statement failed"),
        }
    }

    #[tokio::test]
    async fn a_refusal_of_the_data_is_invalid_and_what_may_pass_is_unavailable() {
        let Some(url) = crate::testing::database("store_codec").await else { return };
        let connect = || async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("a connection");
            tokio::spawn(connection);
            client
        };
        let client = connect().await;
        client
            .batch_execute(
                "CREATE TABLE keys (key text PRIMARY KEY, note text NOT NULL); \
                 CREATE INDEX keys_by_note ON keys (note); INSERT INTO keys VALUES ('taken', '')",
            )
            .await
            .expect("a table");
        // An index row too large: random text that no compression shrinks under the btree's 2.7 kB.
        let too_long =
            "INSERT INTO keys SELECT 'long', string_agg(md5(n::text), '') FROM generate_series(1, 150) AS n";
        let refusals = [
            ("SELECT 1 / 0", "division by zero"),
            ("SELECT 'x'::uuid", "invalid input syntax"),
            ("INSERT INTO keys VALUES ('taken', '')", "duplicate key"),
            ("INSERT INTO keys VALUES ('new', NULL)", "note"),
            (too_long, "keys_by_note"),
        ];
        for (sql, expected) in refusals {
            match failure_of(&client, sql).await {
                StoreError::Invalid(error) => assert!(error.to_string().contains(expected), "{sql}: {error}"),
                other => panic!("{sql}: a refusal of the data must be Invalid, not {other:?}"),
            }
        }

        let holder = connect().await;
        holder.batch_execute("BEGIN; SELECT * FROM keys FOR UPDATE").await.expect("the rows held");
        let waits = [
            (
                "BEGIN; SET LOCAL lock_timeout = 50; UPDATE keys SET note = 'x'",
                "lock timeout",
                "relation \"keys\"",
            ),
            (
                "BEGIN; SET LOCAL statement_timeout = 50; SELECT pg_sleep(10)",
                "statement timeout",
                "canceling",
            ),
        ];
        for (sql, expected, reason) in waits {
            let client = connect().await;
            match failure_of(&client, sql).await {
                StoreError::Unavailable { message, .. } => {
                    assert!(message.contains(expected) && message.contains(reason), "{sql}: {message}");
                }
                other => panic!("{sql}: a wait cut short must be Unavailable, not {other:?}"),
            }
        }
    }
}
