//! The activity feed in SQLite: recording an event inside the transaction of its change, with the outbox's deliveries
//! of it, and reading by cursor.

use dashboard_core::{Event, EventKind, NewEvent, now};
use dashboard_store::deliveries_for;
use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};

use crate::codec::{Json, OpResult, SqlTime, parsed_option, sql_int};
use crate::deliveries;
use crate::writer::WriteConnection;

/// Records `event` with the next id, and the deliveries the outbox rules call for; called by the operation whose
/// change it describes, in the same transaction. Without rules (the usual case) it is one insert, as it always was.
pub(super) fn record(connection: &WriteConnection<'_>, event: NewEvent) -> OpResult<Event> {
    let ts = now();
    connection
        .prepare_cached(
            "INSERT INTO events (ts, kind, execution_id, function, backend, message, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            SqlTime(ts),
            event.kind.as_str(),
            event.execution_id.map(|id| id.to_string()),
            event.function,
            event.backend,
            event.message,
            Json(&event.data),
        ])?;
    // AUTOINCREMENT ids are positive, so the conversion cannot fail.
    let id = u64::try_from(connection.last_insert_rowid()).unwrap_or_default();
    let event = event.recorded(id, ts);
    let rules = connection.outbox_rules();
    if !rules.is_empty() {
        for delivery in deliveries_for(rules, std::slice::from_ref(&event), ts) {
            deliveries::insert(connection, &delivery)?;
        }
    }
    Ok(event)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get(2)?;
    let kind = EventKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            Type::Text,
            format!("unknown event kind {kind:?}").into(),
        )
    })?;
    Ok(Event {
        id: row.get(0)?,
        ts: row.get::<_, SqlTime>(1)?.0,
        kind,
        execution_id: parsed_option(row, 3)?,
        function: row.get(4)?,
        backend: row.get(5)?,
        message: row.get(6)?,
        data: row.get::<_, Json<_>>(7)?.0,
    })
}

pub(super) fn list_after(connection: &Connection, after: u64, limit: usize) -> OpResult<Vec<Event>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, ts, kind, execution_id, function, backend, message, data FROM events \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let events =
        statement.query_map(params![sql_int(after), sql_int(limit)], from_row)?.collect::<Result<_, _>>()?;
    Ok(events)
}

pub(super) fn last_id(connection: &Connection) -> OpResult<u64> {
    let id: u64 = connection
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events")?
        .query_row([], |row| row.get(0))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use dashboard_core::ExecutionId;
    use dashboard_store::OutboxRule;
    use serde_json::json;

    use super::*;
    use crate::schema::migrated;

    fn failure() -> NewEvent {
        NewEvent {
            kind: EventKind::ExecutionFailed,
            execution_id: Some(ExecutionId::generate()),
            function: Some("alpha".into()),
            backend: Some("demo".into()),
            message: "alpha failed".into(),
            data: json!({"error": "exit status 1"}),
        }
    }

    /// How many rows recording `event` under `rules` writes, and the deliveries it leaves in the outbox.
    fn record_under(rules: &[OutboxRule], event: NewEvent) -> (u64, Vec<(String, u64, Option<String>)>) {
        let connection = migrated();
        let before = connection.total_changes();
        let recorded = record(&WriteConnection::new(&connection, rules), event).expect("record");
        let written = connection.total_changes() - before;
        let deliveries = connection
            .prepare("SELECT notification, event_id, execution_id FROM notification_deliveries ORDER BY id")
            .expect("a query")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("deliveries");
        assert!(recorded.id > 0);
        (written, deliveries)
    }

    #[test]
    fn without_rules_recording_an_event_writes_the_event_alone() {
        assert_eq!(record_under(&[], failure()), (1, Vec::new()));
        let other_kind = OutboxRule {
            notification: "ops".into(),
            kinds: vec![EventKind::ExecutionSucceeded],
            functions: None,
        };
        assert_eq!(
            record_under(&[other_kind], failure()),
            (1, Vec::new()),
            "a rule the event does not match"
        );
    }

    #[test]
    fn each_matching_rule_adds_a_delivery_in_the_same_step() {
        let event = failure();
        let execution_id = event.execution_id.map(|id| id.to_string());
        let rule = |notification: &str| OutboxRule {
            notification: notification.into(),
            kinds: vec![EventKind::ExecutionFailed],
            functions: Some(vec!["alpha".into()]),
        };
        let (written, deliveries) = record_under(&[rule("ops"), rule("audit")], event);
        assert_eq!(written, 3, "the event and two deliveries");
        assert_eq!(
            deliveries,
            [("ops".to_owned(), 1, execution_id.clone()), ("audit".to_owned(), 1, execution_id)],
            "in rule order (ids are UUID v7)"
        );
    }
}
