//! The notification outbox in PostgreSQL: the deliveries written with their events (at commit, `transaction.rs`),
//! claimed by the instances that send them under a lease, finished as the attempt ended, listed, and pruned once
//! finished.
//!
//! Concurrency: a claim locks the due deliveries it takes with `FOR UPDATE SKIP LOCKED`, so instances claiming at once
//! never take the same one and never wait for each other; a lease's end is the server's clock (`now()`), as the
//! executions' leases are (`cluster.rs`), so instances whose clocks disagree still agree on it. A finish locks its
//! delivery and checks that it is still pending and claimed by the caller.

use std::time::Duration;

use dashboard_core::{Delivery, DeliveryId, DeliveryStatus, NewEvent, Timestamp, now};
use dashboard_store::{DeliveryOutcome, DeliveryQuery};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::codec::{Columns, OpResult, json_text, sql_int, text, text_option, unreadable};
use crate::executions::bind;
use crate::transaction::{Tx, execute, row, rows};

/// A delivery's columns in [`from_row`]'s order (the lease is not part of a [`Delivery`]); a macro so that the
/// statements below are constants.
macro_rules! columns {
    () => {
        "id, notification, event_id, event, execution_id, status, attempts, next_attempt_at, last_error, \
         response_status, created_at, finished_at"
    };
}

/// New deliveries, all in one statement (the commit that writes them holds the event counter: one round trip).
const INSERT: &str = concat!(
    "INSERT INTO notification_deliveries (",
    columns!(),
    ") SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::text[], \
     $7::bigint[], $8::timestamptz[], $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[])"
);
/// Claims up to `$3` due deliveries under no live lease, oldest due first, for owner `$1` until `$2` seconds from
/// now; those another transaction holds (claiming or finishing them) are skipped, not waited for. `status` literally,
/// as the partial index of pending deliveries says it.
const CLAIM: &str = concat!(
    "WITH claimed AS (SELECT id FROM notification_deliveries \
     WHERE status = 'pending' AND next_attempt_at <= now() AND notification = $4 \
       AND (lease_expires_at IS NULL OR lease_expires_at <= now()) \
     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE notification_deliveries d SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2) \
     FROM claimed WHERE d.id = claimed.id RETURNING ",
    "d.id, d.notification, d.event_id, d.event, d.execution_id, d.status, d.attempts, d.next_attempt_at, \
     d.last_error, d.response_status, d.created_at, d.finished_at"
);
/// The delivery, locked, when it is still pending and claimed by `$2` (whether or not the lease has ended: until
/// another owner claims it, it is still the caller's).
const LEASED_FOR_UPDATE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM notification_deliveries WHERE id = $1 AND status = 'pending' AND lease_owner = $2 FOR UPDATE"
);
/// How an attempt ended; the claim released.
const FINISH: &str = "UPDATE notification_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, \
     last_error = $5, response_status = $6, finished_at = $7, lease_owner = NULL, lease_expires_at = NULL \
     WHERE id = $1";
/// The finished deliveries before `$1`, as the partial index of finished deliveries says them.
const PRUNE: &str =
    "DELETE FROM notification_deliveries WHERE status IN ('delivered', 'failed') AND finished_at < $1";

/// The longest lease taken, in seconds (a century): a longer [`Duration`] would overflow PostgreSQL's interval.
const MAX_LEASE_SECS: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// A delivery from the columns `columns!()` names, in that order.
fn from_row(row: &Row) -> OpResult<Delivery> {
    let columns = Columns(row);
    let status: &str = columns.get(5)?;
    let status = DeliveryStatus::parse(status)
        .ok_or_else(|| unreadable("notification_deliveries.status", format!("unknown status {status:?}")))?;
    Ok(Delivery {
        id: columns.id(0)?,
        notification: columns.get(1)?,
        event: columns.json(3)?,
        status,
        attempts: columns.unsigned(6)?,
        next_attempt_at: columns.get(7)?,
        last_error: columns.get(8)?,
        response_status: columns.unsigned_option(9)?,
        created_at: columns.get(10)?,
        finished_at: columns.get(11)?,
    })
}

fn from_rows(rows: &[Row]) -> OpResult<Vec<Delivery>> {
    rows.iter().map(from_row).collect()
}

/// Writes `deliveries` (new ones, made by `deliveries_for` for events just recorded) in one statement.
pub(crate) async fn insert(client: &impl GenericClient, deliveries: &[Delivery]) -> OpResult<()> {
    let n = deliveries.len();
    let mut ids = Vec::with_capacity(n);
    let mut notifications = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut executions: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut next_attempts = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut responses: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    for delivery in deliveries {
        ids.push(delivery.id.as_uuid());
        notifications.push(text(&delivery.notification));
        event_ids.push(sql_int(delivery.event.id));
        events.push(json_text(&delivery.event)?);
        executions.push(delivery.event.execution_id.map(|id| id.as_uuid()));
        statuses.push(delivery.status.as_str());
        attempts.push(i64::from(delivery.attempts));
        next_attempts.push(delivery.next_attempt_at);
        errors.push(text_option(delivery.last_error.as_deref()));
        responses.push(delivery.response_status.map(i64::from));
        created.push(delivery.created_at);
        finished.push(delivery.finished_at);
    }
    let params: &[&(dyn ToSql + Sync)] = &[
        &ids,
        &notifications,
        &event_ids,
        &events,
        &executions,
        &statuses,
        &attempts,
        &next_attempts,
        &errors,
        &responses,
        &created,
        &finished,
    ];
    execute(client, INSERT, params).await?;
    Ok(())
}

/// Claims due deliveries for `owner`, as `DashboardStore::claim_deliveries` says; oldest due first.
pub(crate) async fn claim(
    client: &impl GenericClient,
    owner: &str,
    notification: &str,
    lease: Duration,
    limit: usize,
) -> OpResult<Vec<Delivery>> {
    let seconds = lease.as_secs_f64().min(MAX_LEASE_SECS);
    let params: &[&(dyn ToSql + Sync)] =
        &[&text(owner), &seconds, &sql_int(limit.max(1)), &text(notification)];
    let claimed = rows(client, CLAIM, params).await?;
    // `RETURNING` keeps no order.
    let mut claimed = from_rows(&claimed)?;
    claimed.sort_by_key(|delivery| (delivery.next_attempt_at, delivery.id));
    Ok(claimed)
}

/// Stores how an attempt ended, as `DashboardStore::finish_delivery` says: the delivery as stored after it, or `None`
/// when it is unknown, finished, or not `owner`'s. Giving up records `notification.failed` with `tx`.
pub(crate) async fn finish(
    tx: &mut Tx<'_>,
    id: DeliveryId,
    owner: &str,
    outcome: DeliveryOutcome,
) -> OpResult<Option<Delivery>> {
    let Some(leased) = row(&tx.db, LEASED_FOR_UPDATE, &[&id.as_uuid(), &text(owner)]).await? else {
        return Ok(None);
    };
    let delivery = finished(from_row(&leased)?, outcome, now());
    execute(
        &tx.db,
        FINISH,
        &[
            &id.as_uuid(),
            &delivery.status.as_str(),
            &i64::from(delivery.attempts),
            &delivery.next_attempt_at,
            &text_option(delivery.last_error.as_deref()),
            &delivery.response_status.map(i64::from),
            &delivery.finished_at,
        ],
    )
    .await?;
    if delivery.status == DeliveryStatus::Failed {
        tx.record(NewEvent::notification_failed(&delivery));
    }
    Ok(Some(delivery))
}

/// One page of the list, newest first. The SQL names only the filters in use.
pub(crate) async fn list(client: &impl GenericClient, query: &DeliveryQuery) -> OpResult<Vec<Delivery>> {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(status) = query.status {
        conditions.push(format!("status = {}", bind(&mut values, status.as_str())));
    }
    if let Some(notification) = &query.notification {
        conditions.push(format!("notification = {}", bind(&mut values, text(notification).into_owned())));
    }
    if let Some(execution) = query.execution {
        conditions.push(format!("execution_id = {}", bind(&mut values, execution.as_uuid())));
    }
    if let Some(before) = query.before {
        conditions.push(format!("id < {}", bind(&mut values, before.as_uuid())));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let limit = bind(&mut values, sql_int(query.limit.max(1)));
    let sql =
        format!("SELECT {} FROM notification_deliveries {filter} ORDER BY id DESC LIMIT {limit}", columns!());
    let parameters: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|value| value.as_ref() as &(dyn ToSql + Sync)).collect();
    from_rows(&rows(client, &sql, &parameters).await?)
}

/// Deletes the deliveries delivered or given up before `cutoff`; pending ones stay, however old.
pub(crate) async fn prune_finished_before(tx: &Tx<'_>, cutoff: Timestamp) -> OpResult<u64> {
    execute(&tx.db, PRUNE, &[&cutoff]).await
}

/// `delivery` after an attempt that ended as `outcome` at `at` (see `DeliveryOutcome::apply_to`).
fn finished(mut delivery: Delivery, outcome: DeliveryOutcome, at: Timestamp) -> Delivery {
    outcome.apply_to(&mut delivery, at);
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PostgresOptions, PostgresStore, testing};
    use dashboard_core::{EventKind, NewEvent};

    /// 20,000 deliveries: 20 pending (the claim's), 20 delivered a day ago (the prune's), the rest delivered just now.
    const MANY_DELIVERIES: &str = "
        INSERT INTO notification_deliveries (id, notification, event_id, event, status, attempts, next_attempt_at,
                                             created_at, finished_at)
        SELECT gen_random_uuid(), 'ops', n, '{}', CASE WHEN n % 1000 = 0 THEN 'pending' ELSE 'delivered' END, 1,
               now() - interval '1 day', now() - interval '1 day',
               CASE WHEN n % 1000 = 0 THEN NULL WHEN n % 1000 = 1 THEN now() - interval '1 day' ELSE now() END
        FROM generate_series(1, 20000) AS n;
        ANALYZE notification_deliveries;";

    #[tokio::test]
    async fn the_claim_and_the_prune_read_their_partial_indexes() {
        let Some(url) = testing::database("store_delivery_plans").await else { return };
        let store =
            PostgresStore::connect(PostgresOptions::new(&url)).await.expect("a store on the test database");
        let client = store.client().await.expect("a connection");
        client.batch_execute(MANY_DELIVERIES).await.expect("20,000 deliveries");
        let plan_of = |sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>| {
            let client = &client;
            async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|value| value.as_ref() as &(dyn ToSql + Sync)).collect();
                let rows = client.query(&format!("EXPLAIN {sql}"), &params).await.expect("a plan");
                rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
            }
        };
        let claim =
            plan_of(CLAIM, vec![Box::new("a"), Box::new(60.0_f64), Box::new(10_i64), Box::new("ops")]).await;
        assert!(
            claim.contains("notification_deliveries_due"),
            "the claim reads no index of due ones:\n{claim}"
        );
        assert!(!claim.contains("Seq Scan"), "{claim}");
        let prune = plan_of(PRUNE, vec![Box::new(now() - Duration::from_secs(3600))]).await;
        assert!(prune.contains("notification_deliveries_finished"), "the prune reads no index:\n{prune}");
        assert!(!prune.contains("Seq Scan"), "{prune}");
    }

    fn pending() -> Delivery {
        let event = NewEvent {
            kind: EventKind::ExecutionFailed,
            execution_id: None,
            function: Some("nightly".into()),
            backend: None,
            message: "failed".into(),
            data: serde_json::json!({}),
        }
        .recorded(7, now());
        let mut delivery = Delivery::new("ops", event, now());
        delivery.last_error = Some("timed out".into());
        delivery.response_status = Some(503);
        delivery
    }

    #[test]
    fn an_attempt_counts_and_sets_what_its_outcome_says() {
        let at = now();
        let delivered = finished(pending(), DeliveryOutcome::Delivered { response_status: 204 }, at);
        assert_eq!(
            (delivered.status, delivered.attempts, delivered.response_status, delivered.finished_at),
            (DeliveryStatus::Delivered, 1, Some(204), Some(at))
        );
        let next = at + Duration::from_secs(60);
        let outcome = DeliveryOutcome::Retry { at: next, error: "refused".into(), response_status: None };
        let retried = finished(pending(), outcome, at);
        assert_eq!(
            (retried.status, retried.next_attempt_at, retried.last_error.as_deref(), retried.response_status),
            (DeliveryStatus::Pending, Some(next), Some("refused"), None)
        );
        assert_eq!(retried.finished_at, None);
        let outcome = DeliveryOutcome::GiveUp { error: "gone".into(), response_status: Some(410) };
        let given_up = finished(pending(), outcome, at);
        assert_eq!(
            (given_up.status, given_up.last_error.as_deref(), given_up.response_status, given_up.finished_at),
            (DeliveryStatus::Failed, Some("gone"), Some(410), Some(at))
        );
    }
}
