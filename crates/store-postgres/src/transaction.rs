//! One store operation as one transaction: statements run prepared (and cached per connection), the events the
//! operation records and the signals it sends, written at commit — event ids taken from `event_counter` as the last
//! step, so that they follow commit order — with the outbox's deliveries of those events, when a rule asks for any.

use std::sync::Arc;

use dashboard_core::{Event, NewEvent, Timestamp, now};
use dashboard_store::{OutboxRule, Signal, StoreError, deliveries_for};
use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::codec::{OpResult, database_error, json_text, sql_int, text, text_option};
use crate::deliveries;
use crate::signals::{CHANNEL, payload};

/// The parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The rows of `sql`, prepared once per connection.
pub(crate) async fn rows(client: &impl GenericClient, sql: &str, params: Params<'_>) -> OpResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// The one row of `sql` or none (an error when there are several).
pub(crate) async fn row(client: &impl GenericClient, sql: &str, params: Params<'_>) -> OpResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

/// The one row of `sql` (an error when there is none or several).
pub(crate) async fn one(client: &impl GenericClient, sql: &str, params: Params<'_>) -> OpResult<Row> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_one(&statement, params).await?)
}

/// Runs `sql`; how many rows it changed.
pub(crate) async fn execute(client: &impl GenericClient, sql: &str, params: Params<'_>) -> OpResult<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// Takes `n` event ids from the counter (the row's lock is held to the commit), inserts the events with them and
/// sends the `Events` signal (`signals::payload`'s `e <last id>`, built here in SQL), in one statement; answers the
/// last id taken. One statement, because every write that records events waits for the counter while another holds
/// it, from this statement to its commit: each round trip in that span is paid by all of them, one after another.
const INSERT_EVENTS: &str = "WITH counter AS (UPDATE event_counter SET last_id = last_id + $1 RETURNING last_id), \
     inserted AS (INSERT INTO events (id, ts, kind, execution_id, function, backend, message, data) \
     SELECT counter.last_id - $1 + event.n, event.ts, event.kind, event.execution_id, event.function, \
     event.backend, event.message, event.data FROM counter, \
     unnest($2::timestamptz[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[]) \
     WITH ORDINALITY AS event (ts, kind, execution_id, function, backend, message, data, n)) \
     SELECT last_id, pg_notify($9, 'e ' || last_id::text) FROM counter";

/// Sends each payload on the channel, in order; delivered at commit.
const NOTIFY: &str = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS sent (payload, n) \
                      ORDER BY n";

/// A transaction of the store: what an operation writes, the events it records and the signals it sends, all at its
/// [`commit`](Self::commit) or none (dropped without it, it rolls back).
pub(crate) struct Tx<'c> {
    /// The transaction, for statements (the functions above take it).
    pub(crate) db: Transaction<'c>,
    /// The events recorded so far, each with the time it was recorded; their ids are taken at commit.
    events: Vec<(NewEvent, Timestamp)>,
    /// The signals other than `Events` to send at commit.
    signals: Vec<Signal>,
    /// The outbox's rules, when there are any (`PostgresStore::outbox_rules`).
    outbox: Option<Arc<[OutboxRule]>>,
}

impl<'c> Tx<'c> {
    /// Begins a transaction on `client`; its events go to the outbox as `outbox` says (`None`: no rules).
    pub(crate) async fn begin(client: &'c mut Object, outbox: Option<Arc<[OutboxRule]>>) -> OpResult<Self> {
        Ok(Self { db: client.transaction().await?, events: Vec::new(), signals: Vec::new(), outbox })
    }

    /// Records `event` with this transaction; it gets its id at commit.
    pub(crate) fn record(&mut self, event: NewEvent) {
        self.events.push((event, now()));
    }

    /// Sends `signal` to every instance when this transaction commits.
    pub(crate) fn signal(&mut self, signal: Signal) {
        self.signals.push(signal);
    }

    /// Commits: the events recorded get their ids (the event counter is the last thing locked, so ids follow commit
    /// order across every instance), the outbox gets the deliveries its rules ask of them, the signals are sent —
    /// `Events` last — and the events come back in the order recorded.
    pub(crate) async fn commit(self) -> OpResult<Vec<Event>> {
        let Self { db, events, signals, outbox } = self;
        // The other signals first, before the counter is taken (delivered at commit all the same, in the order sent);
        // `Events` goes with the events themselves, last.
        let payloads: Vec<String> = signals.iter().filter_map(payload).collect();
        if !payloads.is_empty() {
            execute(&db, NOTIFY, &[&CHANNEL, &payloads]).await?;
        }
        let events = if events.is_empty() { Vec::new() } else { insert_events(&db, events).await? };
        // The deliveries need the events' ids, so they follow the counter: one more statement while it is held, and
        // only when a rule matches one of the events — without rules, or with none matching, nothing is added.
        if let Some(rules) = &outbox {
            let outbox = deliveries_for(rules, &events, now());
            if !outbox.is_empty() {
                deliveries::insert(&db, &outbox).await?;
            }
        }
        db.commit().await?;
        Ok(events)
    }
}

/// Inserts `events` with the next ids of the counter, in the order given.
async fn insert_events(db: &Transaction<'_>, events: Vec<(NewEvent, Timestamp)>) -> OpResult<Vec<Event>> {
    let n = sql_int(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut executions: Vec<Option<Uuid>> = Vec::with_capacity(events.len());
    let mut functions = Vec::with_capacity(events.len());
    let mut backends = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    for (event, ts) in &events {
        times.push(*ts);
        kinds.push(event.kind.as_str());
        executions.push(event.execution_id.map(|id| id.as_uuid()));
        functions.push(text_option(event.function.as_deref()));
        backends.push(text_option(event.backend.as_deref()));
        messages.push(text(&event.message));
        data.push(json_text(&event.data)?);
    }
    let params: Params<'_> =
        &[&n, &times, &kinds, &executions, &functions, &backends, &messages, &data, &CHANNEL];
    // Every write that records an event waits here for the ones before it: a failure says so (a lock timeout names
    // the counter's row).
    let counted = async { db.query_one(&db.prepare_cached(INSERT_EVENTS).await?, params).await };
    let row = counted.await.map_err(|error| {
        database_error(
            error,
            "could not take the next event ids from the event counter (table event_counter)",
        )
    })?;
    let last_id: i64 = row.try_get(0)?;
    // The ids taken are the `n` up to `last_id`, the first to the first event.
    let first_id = u64::try_from(last_id - n + 1).map_err(|_| StoreError::Unavailable {
        message: format!("the event counter holds {last_id}, not an id"),
        source: None,
    })?;
    Ok(events.into_iter().zip(first_id..).map(|((event, ts), id)| event.recorded(id, ts)).collect())
}

/// The one event of an operation that records exactly one.
pub(crate) fn single(events: Vec<Event>) -> OpResult<Event> {
    let n_events = events.len();
    let mut events = events.into_iter();
    match (events.next(), events.next()) {
        (Some(event), None) => Ok(event),
        _ => Err(StoreError::Unavailable {
            message: format!("an operation that records one event recorded {n_events}"),
            source: None,
        }
        .into()),
    }
}
