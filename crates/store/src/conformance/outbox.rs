//! Conformance cases for the notification outbox: deliveries written with the events that match a rule, in the same
//! atomic step; claimed under leases; finished as delivered, retried or given up; listed and pruned.

use std::time::Duration;

use dashboard_core::{
    Delivery, DeliveryId, DeliveryStatus, Event, EventKind, ExecutionStatus, Function, LogStream, NewEvent,
    NewLogLine, Timestamp, now,
};
use serde_json::json;

use super::fixtures::{
    a_moment_between, advance, create_approval, function, in_status, last_event_id, pending_approval,
};
use super::schedules::{
    create_schedule, fire_and_win, run_fire, schedule_spec, seconds_after, whole_second_now,
};
use crate::{DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionUpdate, FinishedDelivery, OutboxRule};

/// A lease long enough never to end during a case.
const LONG_LEASE: Duration = Duration::from_secs(600);

/// A rule that delivers events of `kinds` about any function to `notification`.
fn rule(notification: &str, kinds: &[EventKind]) -> OutboxRule {
    OutboxRule { notification: notification.to_owned(), kinds: kinds.to_vec(), functions: None }
}

/// Runs an execution of `function` to `failed` (queued → running → failed); the `execution.failed` event.
async fn fail(store: &dyn DashboardStore, function: &Function) -> Event {
    let running = in_status(store, function, ExecutionStatus::Running).await;
    let update =
        ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Failed).error("exit status 1");
    store.update_execution(running.id, update).await.expect("failing a running execution").event
}

/// Every delivery, newest first.
async fn all_deliveries(store: &dyn DashboardStore) -> Vec<Delivery> {
    list(store, DeliveryQuery::default()).await
}

/// The deliveries `query` selects, with a limit of 1000 unless it sets one.
async fn list(store: &dyn DashboardStore, query: DeliveryQuery) -> Vec<Delivery> {
    let query = DeliveryQuery { limit: if query.limit == 0 { 1000 } else { query.limit }, ..query };
    store.list_deliveries(&query).await.expect("listing deliveries")
}

/// Claims the due deliveries of the notification `ops`, which most cases use, for `owner`.
async fn claim(store: &dyn DashboardStore, owner: &str, lease: Duration) -> Vec<Delivery> {
    claim_of(store, owner, "ops", lease).await
}

/// Claims the due deliveries of `notification` for `owner`.
async fn claim_of(
    store: &dyn DashboardStore,
    owner: &str,
    notification: &str,
    lease: Duration,
) -> Vec<Delivery> {
    store.claim_deliveries(owner, notification, lease, 100).await.expect("claiming deliveries")
}

async fn finish(
    store: &dyn DashboardStore,
    id: DeliveryId,
    owner: &str,
    outcome: DeliveryOutcome,
) -> Option<FinishedDelivery> {
    store.finish_delivery(id, owner, outcome).await.expect("finishing a delivery")
}

fn delivery_ids(deliveries: &[Delivery]) -> Vec<DeliveryId> {
    deliveries.iter().map(|delivery| delivery.id).collect()
}

/// Panics unless `delivery` is a fresh pending delivery of `event` for `notification`, written by now.
fn assert_fresh(delivery: &Delivery, notification: &str, event: &Event) {
    assert_eq!(delivery.notification, notification);
    assert_eq!(&delivery.event, event, "the delivery carries its event as recorded");
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!((delivery.attempts, &delivery.last_error, delivery.response_status), (0, &None, None));
    assert_eq!(delivery.finished_at, None);
    let written = now();
    assert!(delivery.next_attempt_at.is_some_and(|at| at <= written), "due at once: {delivery:?}");
    assert!(delivery.created_at <= written, "written by now: {delivery:?}");
}

/// The one delivery a fresh store has after one matching event: claimed by `owner`.
async fn claim_the_only_one(store: &dyn DashboardStore, owner: &str, lease: Duration) -> Delivery {
    let claimed = claim(store, owner, lease).await;
    let [delivery] = &claimed[..] else { panic!("{owner} claims the one due delivery: {claimed:?}") };
    delivery.clone()
}

/// A failed execution, with a rule on `execution.failed`, writes one pending delivery of its event, whether the
/// status changes alone or with log lines; its other events write none.
pub async fn a_failed_execution_writes_one_pending_delivery_of_its_event(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    let failed = fail(store, &alpha).await;
    let deliveries = all_deliveries(store).await;
    let [delivery] = &deliveries[..] else { panic!("one delivery of the failure: {deliveries:?}") };
    assert_fresh(delivery, "ops", &failed);
    let recorded = store.list_events(failed.id - 1, 1).await.expect("list events");
    assert_eq!(recorded, std::slice::from_ref(&failed), "the delivery's event is the one recorded");

    let running = in_status(store, &alpha, ExecutionStatus::Running).await;
    let update = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Failed).error("killed");
    let lines = vec![NewLogLine::new(LogStream::Stderr, "killed")];
    let logged = store.update_execution_with_logs(running.id, update, lines, Vec::new()).await;
    let failed_with_logs = logged.expect("failing with logs").recorded.event;
    let deliveries = all_deliveries(store).await;
    assert_eq!(deliveries.len(), 2, "one more delivery: {deliveries:?}");
    assert_fresh(&deliveries[0], "ops", &failed_with_logs);
    assert_eq!(deliveries[1], *delivery, "the first delivery is unchanged");
}

/// Events of kinds no rule names write no delivery.
pub async fn an_event_of_another_kind_writes_no_delivery(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    in_status(store, &alpha, ExecutionStatus::Succeeded).await;
    in_status(store, &alpha, ExecutionStatus::Cancelled).await;
    create_schedule(store, schedule_spec("alpha", "* * * * *"), None).await;
    store.delete_function(alpha.id).await.expect("delete");
    let deliveries = all_deliveries(store).await;
    assert!(deliveries.is_empty(), "no event matched a rule: {deliveries:?}");
}

/// A rule limited to some functions skips the events of the others.
pub async fn a_rule_for_other_functions_skips_the_event(store: &dyn DashboardStore) {
    let only_other =
        OutboxRule { functions: Some(vec!["other".into()]), ..rule("ops", &[EventKind::ExecutionFailed]) };
    store.set_outbox_rules(vec![only_other]);
    let alpha = function(store, "alpha").await;
    let other = function(store, "other").await;
    fail(store, &alpha).await;
    assert!(all_deliveries(store).await.is_empty(), "an event of alpha was delivered to a rule of other");
    let failed = fail(store, &other).await;
    let deliveries = all_deliveries(store).await;
    let [delivery] = &deliveries[..] else { panic!("one delivery of other's failure: {deliveries:?}") };
    assert_fresh(delivery, "ops", &failed);
}

/// Each rule an event matches writes its own delivery of it.
pub async fn each_matching_rule_writes_its_own_delivery(store: &dyn DashboardStore) {
    let kinds = [EventKind::ExecutionFailed, EventKind::ExecutionTimedOut];
    store.set_outbox_rules(vec![rule("ops", &kinds), rule("audit", &kinds), rule("quiet", &[])]);
    let alpha = function(store, "alpha").await;
    let failed = fail(store, &alpha).await;
    let deliveries = all_deliveries(store).await;
    let [audit, ops] = &deliveries[..] else { panic!("two deliveries, one per rule: {deliveries:?}") };
    assert_fresh(ops, "ops", &failed);
    assert_fresh(audit, "audit", &failed);
    assert!(ops.id < audit.id, "written in the order of the rules");
}

/// Without rules — never set, or replaced by none — nothing is written to the outbox.
pub async fn without_rules_no_delivery_is_written(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    assert!(all_deliveries(store).await.is_empty(), "a store without rules wrote a delivery");
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    store.set_outbox_rules(Vec::new());
    fail(store, &alpha).await;
    assert!(all_deliveries(store).await.is_empty(), "rules replaced by none still wrote a delivery");
}

/// A schedule's fire and an approval write the deliveries of their events, as every other change does.
pub async fn fires_and_approvals_write_the_deliveries_of_their_events(store: &dyn DashboardStore) {
    use EventKind::*;
    let kinds = [ExecutionQueued, ScheduleFired, ScheduleSkipped, ApprovalRequested, ExecutionWaiting];
    store.set_outbox_rules(vec![rule("ops", &kinds)]);
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let fired = fire_and_win(store, run_fire(&schedule, &alpha, Some(seconds_after(due, 60)))).await;
    let deliveries = all_deliveries(store).await;
    let events: Vec<Event> = deliveries.iter().rev().map(|delivery| delivery.event.clone()).collect();
    assert_eq!(events, fired.events, "the fire's execution.queued and schedule.fired");

    let execution = fired.execution.expect("a run fire queues an execution");
    let running = advance(store, &execution, ExecutionStatus::Running).await;
    let before = all_deliveries(store).await.len();
    let change = create_approval(store, pending_approval(&running, "cargo test"), None).await;
    let deliveries = all_deliveries(store).await;
    let events: Vec<Event> =
        deliveries[..deliveries.len() - before].iter().rev().map(|d| d.event.clone()).collect();
    assert_eq!(events, change.events, "approval.requested and execution.waiting");
}

/// A claimed delivery belongs to its owner until the lease ends: another owner claims nothing meanwhile. Claims take
/// the oldest due first, at most `limit`.
pub async fn a_claimed_delivery_is_not_claimed_by_another_owner(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    fail(store, &alpha).await;
    let written = all_deliveries(store).await;
    let (newer, older) = (&written[0], &written[1]);

    let claimed = store.claim_deliveries("a", "ops", LONG_LEASE, 1).await.expect("claim");
    assert_eq!(claimed, std::slice::from_ref(older), "the oldest due first, at most `limit`, as stored");
    let claimed = store.claim_deliveries("a", "ops", LONG_LEASE, 10).await.expect("claim");
    assert_eq!(delivery_ids(&claimed), [newer.id], "the one not claimed yet");
    assert!(claim(store, "b", LONG_LEASE).await.is_empty(), "another owner claimed a leased delivery");
    assert!(claim(store, "a", LONG_LEASE).await.is_empty(), "a live lease is not claimed twice");
    assert_eq!(all_deliveries(store).await, written, "a claim changes nothing the list shows");
}

/// Once a lease ends, another owner claims the delivery, and the first owner can no longer finish it.
pub async fn an_expired_lease_lets_another_owner_claim(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    let first = claim_the_only_one(store, "a", Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = claim_the_only_one(store, "b", LONG_LEASE).await;
    assert_eq!(second.id, first.id);
    let delivered = DeliveryOutcome::Delivered { response_status: 200 };
    assert_eq!(finish(store, first.id, "a", delivered.clone()).await, None, "a lost its claim to b");
    assert_eq!(all_deliveries(store).await, std::slice::from_ref(&second), "the lost finish wrote nothing");
    let finished = finish(store, second.id, "b", delivered).await.expect("b holds the claim");
    assert_eq!(finished.delivery.status, DeliveryStatus::Delivered);
}

/// Only the owner of the claim finishes a delivery: another owner, an unclaimed delivery or an unknown one get
/// `None` and change nothing. An owner whose lease ended finishes it while nobody else claimed it.
pub async fn only_the_holder_finishes_a_delivery(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    let delivered = DeliveryOutcome::Delivered { response_status: 204 };
    let unclaimed = all_deliveries(store).await;
    assert_eq!(finish(store, unclaimed[0].id, "a", delivered.clone()).await, None, "finished unclaimed");
    assert_eq!(finish(store, DeliveryId::generate(), "a", delivered.clone()).await, None, "finished unknown");

    let claimed = claim_the_only_one(store, "a", Duration::from_millis(1)).await;
    assert_eq!(finish(store, claimed.id, "b", delivered.clone()).await, None, "finished by a non-holder");
    assert_eq!(all_deliveries(store).await, unclaimed, "refused finishes wrote nothing");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let finished = finish(store, claimed.id, "a", delivered).await.expect("a's ended lease is still its own");
    assert_eq!((finished.delivery.status, finished.delivery.attempts), (DeliveryStatus::Delivered, 1));
}

/// A retry keeps the delivery pending with one more attempt and the error, and it is claimed again only once its
/// next attempt is due.
pub async fn a_retry_keeps_the_delivery_pending_until_its_time(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    let claimed = claim_the_only_one(store, "a", LONG_LEASE).await;

    // Far enough ahead that the two claims below come before it even on a loaded machine.
    let at = now() + Duration::from_secs(3);
    let error = "503 Service Unavailable";
    let retry = DeliveryOutcome::Retry { at, error: error.into(), response_status: Some(503) };
    let finished = finish(store, claimed.id, "a", retry).await.expect("a holds the claim");
    let expected = Delivery {
        attempts: 1,
        next_attempt_at: Some(at),
        last_error: Some(error.into()),
        response_status: Some(503),
        ..claimed.clone()
    };
    assert_eq!(finished, FinishedDelivery { delivery: expected.clone(), event: None });
    assert_eq!(all_deliveries(store).await, std::slice::from_ref(&expected));
    assert!(claim(store, "b", LONG_LEASE).await.is_empty(), "claimed before its next attempt is due");
    assert!(claim(store, "a", LONG_LEASE).await.is_empty(), "claimed before its next attempt is due");

    let left = u64::try_from((at - now()).whole_milliseconds()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    let again = claim_the_only_one(store, "b", LONG_LEASE).await;
    assert_eq!(again, expected, "due again, with the claim of `a` released");
}

/// A delivered delivery is finished with its response status, and is never claimed nor finished again.
pub async fn a_delivered_delivery_is_finished_and_never_claimed_again(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    let claimed = claim_the_only_one(store, "a", LONG_LEASE).await;
    let before = last_event_id(store).await;

    let earliest = now();
    let outcome = DeliveryOutcome::Delivered { response_status: 202 };
    let finished = finish(store, claimed.id, "a", outcome.clone()).await.expect("a holds the claim");
    let latest = now();
    let delivery = finished.delivery;
    assert_eq!(finished.event, None, "a delivery records no event");
    assert_eq!(
        (delivery.status, delivery.attempts, delivery.response_status, &delivery.last_error),
        (DeliveryStatus::Delivered, 1, Some(202), &None)
    );
    assert!(
        delivery.finished_at.is_some_and(|at| (earliest..=latest).contains(&at)),
        "finished now: {delivery:?}"
    );
    assert_eq!((&delivery.notification, &delivery.event), (&claimed.notification, &claimed.event));
    assert_eq!(all_deliveries(store).await, std::slice::from_ref(&delivery), "stored as returned");
    assert_eq!(store.list_events(before, 10).await.expect("list events"), []);

    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(claim(store, "b", Duration::from_millis(1)).await.is_empty(), "a delivered delivery was claimed");
    assert_eq!(finish(store, delivery.id, "a", outcome).await, None, "finished twice");
    assert_eq!(all_deliveries(store).await, [delivery], "a second finish wrote nothing");
}

/// Giving up fails the delivery and records `notification.failed`, returned and in the feed, which goes through the
/// rules like any other event.
pub async fn a_given_up_delivery_fails_and_records_notification_failed(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![
        rule("ops", &[EventKind::ExecutionFailed]),
        rule("oncall", &[EventKind::NotificationFailed]),
    ]);
    let alpha = function(store, "alpha").await;
    fail(store, &alpha).await;
    let claimed = claim_the_only_one(store, "a", LONG_LEASE).await;
    let retry = DeliveryOutcome::Retry { at: now(), error: "timed out".into(), response_status: None };
    finish(store, claimed.id, "a", retry).await.expect("a holds the claim");
    let claimed = claim_the_only_one(store, "a", LONG_LEASE).await;
    let before = last_event_id(store).await;

    let earliest = now();
    let give_up =
        DeliveryOutcome::GiveUp { error: "500 Internal Server Error".into(), response_status: Some(500) };
    let finished = finish(store, claimed.id, "a", give_up).await.expect("a holds the claim");
    let latest = now();
    let delivery = finished.delivery;
    assert_eq!(
        (delivery.status, delivery.attempts, delivery.response_status),
        (DeliveryStatus::Failed, 2, Some(500))
    );
    assert_eq!(delivery.last_error.as_deref(), Some("500 Internal Server Error"));
    assert!(
        delivery.finished_at.is_some_and(|at| (earliest..=latest).contains(&at)),
        "finished now: {delivery:?}"
    );
    let event = finished.event.expect("giving up records notification.failed");
    assert_eq!(event, NewEvent::notification_failed(&delivery).recorded(event.id, event.ts));
    assert_eq!(event.data["delivery_id"], json!(delivery.id));
    assert_eq!(store.list_events(before, 10).await.expect("list events"), std::slice::from_ref(&event));

    let deliveries = all_deliveries(store).await;
    let [of_the_failure, given_up] = &deliveries[..] else {
        panic!("the given up one and its news: {deliveries:?}")
    };
    assert_eq!(given_up, &delivery, "stored as returned");
    assert_fresh(of_the_failure, "oncall", &event);
    assert!(claim(store, "b", LONG_LEASE).await.is_empty(), "a failed delivery is not claimed again");
    let claimed = claim_of(store, "b", "oncall", LONG_LEASE).await;
    assert_eq!(delivery_ids(&claimed), [of_the_failure.id], "the news of it is due");
}

/// Deliveries are listed newest first, filtered by status, notification and execution, paged with `before`.
pub async fn deliveries_are_listed_newest_first_with_filters_and_a_cursor(store: &dyn DashboardStore) {
    use EventKind::*;
    store.set_outbox_rules(vec![
        rule("ops", &[ExecutionFailed]),
        rule("audit", &[ExecutionFailed, ExecutionSucceeded]),
    ]);
    let alpha = function(store, "alpha").await;
    let first = fail(store, &alpha).await.execution_id.expect("about an execution");
    let second = in_status(store, &alpha, ExecutionStatus::Succeeded).await.id;
    let third = fail(store, &alpha).await.execution_id.expect("about an execution");

    let all = all_deliveries(store).await;
    let said: Vec<(&str, _)> =
        all.iter().map(|delivery| (delivery.notification.as_str(), delivery.event.execution_id)).collect();
    let expected = [
        ("audit", Some(third)),
        ("ops", Some(third)),
        ("audit", Some(second)),
        ("audit", Some(first)),
        ("ops", Some(first)),
    ];
    assert_eq!(said, expected, "newest first");
    assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id), "by id, descending");

    // A claim takes one notification's deliveries only; deliver the oldest one.
    let audit = claim_of(store, "a", "audit", Duration::from_millis(1)).await;
    assert_eq!(delivery_ids(&audit), [all[3].id, all[2].id, all[0].id], "the audit ones, oldest due first");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claimed = store.claim_deliveries("a", "ops", LONG_LEASE, 1).await.expect("claim");
    assert_eq!(delivery_ids(&claimed), [all[4].id]);
    let delivered = DeliveryOutcome::Delivered { response_status: 200 };
    let delivered = finish(store, all[4].id, "a", delivered).await.expect("a holds the claim").delivery;

    let by_status = |status| DeliveryQuery { status: Some(status), ..DeliveryQuery::default() };
    assert_eq!(list(store, by_status(DeliveryStatus::Delivered)).await, [delivered]);
    assert_eq!(delivery_ids(&list(store, by_status(DeliveryStatus::Pending)).await), delivery_ids(&all[..4]));
    assert!(list(store, by_status(DeliveryStatus::Failed)).await.is_empty());
    let ops = DeliveryQuery { notification: Some("ops".into()), ..DeliveryQuery::default() };
    assert_eq!(delivery_ids(&list(store, ops).await), [all[1].id, all[4].id]);
    let of_first = DeliveryQuery { execution: Some(first), ..DeliveryQuery::default() };
    assert_eq!(delivery_ids(&list(store, of_first).await), [all[3].id, all[4].id]);
    let audit_of_third = DeliveryQuery {
        notification: Some("audit".into()),
        execution: Some(third),
        ..DeliveryQuery::default()
    };
    assert_eq!(delivery_ids(&list(store, audit_of_third).await), [all[0].id]);

    let page = DeliveryQuery { before: Some(all[1].id), limit: 2, ..DeliveryQuery::default() };
    assert_eq!(
        delivery_ids(&list(store, page).await),
        [all[2].id, all[3].id],
        "older than the cursor, at most 2"
    );
    let one = store.list_deliveries(&DeliveryQuery::default()).await.expect("list with limit 0");
    assert_eq!(delivery_ids(&one), [all[0].id], "a limit of 0 is read as 1");
}

/// Pruning deletes the deliveries delivered or given up before the cutoff, and keeps pending ones and those finished
/// later.
pub async fn prune_deletes_finished_deliveries_and_keeps_pending_ones(store: &dyn DashboardStore) {
    store.set_outbox_rules(vec![rule("ops", &[EventKind::ExecutionFailed])]);
    let alpha = function(store, "alpha").await;
    for _ in 0..5 {
        fail(store, &alpha).await;
    }
    let written = all_deliveries(store).await;
    let claimed = claim(store, "a", LONG_LEASE).await;
    assert_eq!(claimed.len(), 5, "all five are due");
    let ids: Vec<DeliveryId> = written.iter().rev().map(|delivery| delivery.id).collect();
    let (delivered_early, given_up_early, delivered_late, retried, pending) =
        (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let delivered = DeliveryOutcome::Delivered { response_status: 200 };
    finish(store, delivered_early, "a", delivered.clone()).await.expect("a holds the claim");
    let give_up = DeliveryOutcome::GiveUp { error: "gone".into(), response_status: Some(410) };
    finish(store, given_up_early, "a", give_up).await.expect("a holds the claim");
    let retry_at: Timestamp = now();
    let retry = DeliveryOutcome::Retry { at: retry_at, error: "refused".into(), response_status: None };
    finish(store, retried, "a", retry).await.expect("a holds the claim");
    let cutoff = a_moment_between().await;
    finish(store, delivered_late, "a", delivered).await.expect("a holds the claim");

    store.prune_finished_before(cutoff, 100).await.expect("prune");
    let kept = delivery_ids(&all_deliveries(store).await);
    assert_eq!(
        kept,
        [pending, retried, delivered_late],
        "finished before the cutoff are gone, the rest kept"
    );
}
