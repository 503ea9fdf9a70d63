//! The notification outbox in SQLite: the deliveries written with their events (see `events::record`), claimed by a
//! sender under a lease, finished by the owner of the claim — giving up records `notification.failed` — and listed.

use std::time::Duration;

use dashboard_core::{Delivery, DeliveryId, DeliveryStatus, NewEvent, Timestamp, now};
use dashboard_store::{DeliveryOutcome, DeliveryQuery, FinishedDelivery};
use rusqlite::types::{ToSql, Type};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::{Date, PrimitiveDateTime, Time};

use crate::codec::{Json, OpResult, SqlTime, parsed, sql_int, text};
use crate::events::record;
use crate::writer::WriteConnection;

/// A delivery's columns in [`from_row`]'s order (the lease is the store's business, not the delivery's); a macro so
/// that the statements below are constants, which the schema's test reads to check that each uses an index.
macro_rules! columns {
    () => {
        "id, notification, event, status, attempts, next_attempt_at, last_error, response_status, created_at, \
         finished_at"
    };
}

const INSERT: &str = "INSERT INTO notification_deliveries (id, notification, event_id, event, execution_id, status, \
                      attempts, next_attempt_at, last_error, response_status, created_at, finished_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
/// `status = 'pending'` literally, as the partial index of due deliveries says it; the index's entries end with the
/// id, so ties are broken without a sort. A lease that has run out is no claim.
const CLAIMABLE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1 AND notification = ?3 \
     AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) ORDER BY next_attempt_at, id LIMIT ?2"
);
const CLAIM: &str =
    "UPDATE notification_deliveries SET lease_owner = ?2, lease_expires_at = ?3 WHERE id = ?1";
const GET_CLAIMED: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM notification_deliveries WHERE id = ?1 AND status = 'pending' AND lease_owner = ?2"
);
/// The finish, as a compare-and-set on the claim; the lease is released whatever the outcome.
const FINISH: &str = "UPDATE notification_deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, \
                      last_error = ?6, response_status = ?7, finished_at = ?8, lease_owner = NULL, \
                      lease_expires_at = NULL WHERE id = ?1 AND status = 'pending' AND lease_owner = ?2";

/// Every fixed query of this module, for the schema's test that each uses an index (the list and prune's delete are
/// listed there).
#[cfg(test)]
pub(super) const QUERIES: &[&str] = &[CLAIMABLE, CLAIM, GET_CLAIMED, FINISH];

fn from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: parsed(row, 0)?,
        notification: row.get(1)?,
        event: row.get::<_, Json<_>>(2)?.0,
        status: status_from_row(row, 3)?,
        attempts: row.get(4)?,
        next_attempt_at: row.get::<_, Option<SqlTime>>(5)?.map(|time| time.0),
        last_error: row.get(6)?,
        response_status: row.get(7)?,
        created_at: row.get::<_, SqlTime>(8)?.0,
        finished_at: row.get::<_, Option<SqlTime>>(9)?.map(|time| time.0),
    })
}

/// Reads a status stored as its API text (`pending`, `delivered`, `failed`).
fn status_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<DeliveryStatus> {
    let stored: String = row.get(index)?;
    DeliveryStatus::parse(&stored).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown status {stored:?}").into(),
        )
    })
}

/// Stores a new delivery; `events::record` calls it for each one the outbox rules call for.
pub(super) fn insert(connection: &Connection, delivery: &Delivery) -> OpResult<()> {
    connection.prepare_cached(INSERT)?.execute(params![
        text(delivery.id),
        delivery.notification,
        sql_int(delivery.event.id),
        Json(&delivery.event),
        delivery.event.execution_id.map(text),
        delivery.status.as_str(),
        delivery.attempts,
        delivery.next_attempt_at.map(SqlTime),
        delivery.last_error,
        delivery.response_status,
        SqlTime(delivery.created_at),
        delivery.finished_at.map(SqlTime),
    ])?;
    Ok(())
}

/// Claims up to `limit` (0 read as 1) due deliveries that no live lease holds, oldest due first, for `owner` until
/// now + `lease`.
pub(super) fn claim(
    connection: &Connection,
    owner: &str,
    notification: &str,
    lease: Duration,
    limit: usize,
) -> OpResult<Vec<Delivery>> {
    let at = now();
    let claimed: Vec<Delivery> = connection
        .prepare_cached(CLAIMABLE)?
        .query_map(params![SqlTime(at), sql_int(limit.max(1)), notification], from_row)?
        .collect::<Result<_, _>>()?;
    let expires_at = SqlTime(lease_end(at, lease)).text()?;
    let mut claim = connection.prepare_cached(CLAIM)?;
    for delivery in &claimed {
        claim.execute(params![text(delivery.id), owner, expires_at])?;
    }
    Ok(claimed)
}

/// When a lease of `lease` taken at `at` ends; a lease too long for the calendar lasts until its end.
fn lease_end(at: Timestamp, lease: Duration) -> Timestamp {
    time::Duration::try_from(lease)
        .ok()
        .and_then(|lease| at.checked_add(lease))
        .unwrap_or_else(|| PrimitiveDateTime::new(Date::MAX, Time::MIDNIGHT).assume_utc())
}

/// Stores how an attempt ended, as `DashboardStore::finish_delivery` says: nothing unless `owner` holds the claim of
/// a pending delivery; giving up records `notification.failed`, which goes through the outbox rules like any event.
pub(super) fn finish(
    connection: &WriteConnection<'_>,
    id: DeliveryId,
    owner: &str,
    outcome: DeliveryOutcome,
) -> OpResult<Option<FinishedDelivery>> {
    let Some(stored) =
        connection.prepare_cached(GET_CLAIMED)?.query_row(params![text(id), owner], from_row).optional()?
    else {
        return Ok(None);
    };
    let delivery = finished(stored, outcome, now());
    let n_changed = connection.prepare_cached(FINISH)?.execute(params![
        text(id),
        owner,
        delivery.status.as_str(),
        delivery.attempts,
        delivery.next_attempt_at.map(SqlTime),
        delivery.last_error,
        delivery.response_status,
        delivery.finished_at.map(SqlTime),
    ])?;
    if n_changed == 0 {
        // The writer runs one operation at a time and the claim was read above: this cannot happen, but if it did,
        // the answer would be the compare-and-set's.
        return Ok(None);
    }
    let event = if delivery.status == DeliveryStatus::Failed {
        Some(record(connection, NewEvent::notification_failed(&delivery))?)
    } else {
        None
    };
    Ok(Some(FinishedDelivery { delivery, event }))
}

/// Deliveries matching `query`, newest first. The SQL names only the filters in use; it walks the table in id order
/// (no rowid) and stops at the limit.
pub(super) fn list(connection: &Connection, query: &DeliveryQuery) -> OpResult<Vec<Delivery>> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(status) = query.status {
        conditions.push("status = ?");
        values.push(Box::new(status.as_str()));
    }
    if let Some(notification) = &query.notification {
        conditions.push("notification = ?");
        values.push(Box::new(notification.clone()));
    }
    if let Some(execution) = query.execution {
        conditions.push("execution_id = ?");
        values.push(Box::new(text(execution)));
    }
    if let Some(before) = query.before {
        conditions.push("id < ?");
        values.push(Box::new(text(before)));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    values.push(Box::new(sql_int(query.limit.max(1))));
    let sql = format!("SELECT {} FROM notification_deliveries {filter} ORDER BY id DESC LIMIT ?", columns!());
    let mut statement = connection.prepare_cached(&sql)?;
    let parameters: Vec<&dyn ToSql> = values.iter().map(|value| value.as_ref()).collect();
    let deliveries = statement.query_map(&*parameters, from_row)?.collect::<Result<_, _>>()?;
    Ok(deliveries)
}

/// `delivery` after an attempt that ended as `outcome` at `at` (see `DeliveryOutcome::apply_to`).
fn finished(mut delivery: Delivery, outcome: DeliveryOutcome, at: Timestamp) -> Delivery {
    outcome.apply_to(&mut delivery, at);
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_read_back_as_written() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        for status in DeliveryStatus::ALL {
            let back = connection
                .query_row("SELECT ?1", [status.as_str()], |row| status_from_row(row, 0))
                .expect("a status");
            assert_eq!(back, status);
        }
    }

    #[test]
    fn a_lease_too_long_for_the_calendar_ends_at_its_end() {
        let at = now();
        assert_eq!(lease_end(at, Duration::from_secs(30)), at + Duration::from_secs(30));
        let end = lease_end(at, Duration::MAX);
        assert!(end > at + Duration::from_secs(3_000 * 365 * 86_400), "{end}");
        assert!(SqlTime(end).text().is_ok(), "the end is a time the store can write");
    }
}
