//! Conformance cases for schedules: stored with their events, changed without losing their history, listed when
//! due, and fired once per due time as a compare-and-set that queues an execution or counts a skip.

use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{
    CoreError, EventKind, Execution, ExecutionId, Function, NewEvent, Overlap, Schedule, ScheduleId,
    ScheduleSpec, Timestamp, now,
};
use serde_json::json;

use super::fixtures::{
    all_executions, assert_no_event_after, function, last_event_id, new_execution, queued,
};
use crate::{DashboardStore, FireAction, FiredSchedule, NewExecution, ScheduleFire, StoreError};

/// How many tasks race to fire one due time.
const N_FIRING_TASKS: usize = 8;

/// The current time truncated to the whole second: due times are whole seconds, which every store keeps exactly.
pub(crate) fn whole_second_now() -> Timestamp {
    now().replace_nanosecond(0).expect("zero nanoseconds is a valid time")
}

/// `at` moved by `seconds` (either way).
pub(crate) fn seconds_after(at: Timestamp, seconds: i64) -> Timestamp {
    let by = Duration::from_secs(seconds.unsigned_abs());
    if seconds < 0 { at - by } else { at + by }
}

/// The declaration of a schedule of `function` on `cron`, enabled, overlaps skipped.
pub(crate) fn schedule_spec(function: &str, cron: &str) -> ScheduleSpec {
    ScheduleSpec {
        function: function.to_owned(),
        cron: cron.to_owned(),
        timezone: "UTC".to_owned(),
        input: json!({"from": "schedule"}),
        overlap: Overlap::Skip,
        enabled: true,
    }
}

/// Stores a new schedule of `spec`, due first at `due`.
pub(crate) async fn create_schedule(
    store: &dyn DashboardStore,
    spec: ScheduleSpec,
    due: Option<Timestamp>,
) -> Schedule {
    let schedule = Schedule::create(ScheduleId::generate(), spec, due, now());
    store.create_schedule(schedule).await.expect("creating a schedule with a fresh id").value
}

/// The trigger a fire of `schedule` queues: an execution of `function` triggered by the schedule.
pub(crate) fn scheduled_execution(schedule: &Schedule, function: &Function) -> NewExecution {
    NewExecution { triggered_by: Some(schedule.trigger_name()), ..new_execution(function, json!({})) }
}

/// A fire of `schedule` at its stored due time that queues a fresh execution of `function`, due next at `next`.
pub(crate) fn run_fire(schedule: &Schedule, function: &Function, next: Option<Timestamp>) -> ScheduleFire {
    ScheduleFire {
        id: schedule.id,
        due: schedule.next_run_at.expect("the schedule has a due time"),
        next,
        action: FireAction::Run(scheduled_execution(schedule, function)),
    }
}

/// Fires `fire`, which must win.
pub(crate) async fn fire_and_win(store: &dyn DashboardStore, fire: ScheduleFire) -> FiredSchedule {
    let fired = store.fire_schedule(fire).await.expect("firing a due schedule");
    fired.expect("the schedule was due at the fire's due time")
}

async fn read_schedule(store: &dyn DashboardStore, id: ScheduleId) -> Option<Schedule> {
    store.get_schedule(id).await.expect("reading a schedule")
}

async fn all_schedules(store: &dyn DashboardStore) -> Vec<Schedule> {
    store.list_schedules().await.expect("listing schedules")
}

fn schedule_ids(schedules: &[Schedule]) -> Vec<ScheduleId> {
    schedules.iter().map(|schedule| schedule.id).collect()
}

/// Whether `result` is `NotFound` of the schedule `id`.
fn is_schedule_not_found<T>(result: &Result<T, StoreError>, id: ScheduleId) -> bool {
    matches!(result, Err(StoreError::NotFound { entity: "schedule", key }) if *key == id.to_string())
}

/// Panics unless `fire` is refused with `None` and writes nothing: no event, no execution, the schedule as it was.
async fn assert_fires_nothing(
    store: &dyn DashboardStore,
    fire: ScheduleFire,
    was: Option<&Schedule>,
    what: &str,
) {
    let before = last_event_id(store).await;
    let executions = all_executions(store).await;
    let id = fire.id;
    let fired = store.fire_schedule(fire).await.unwrap_or_else(|error| panic!("{what}: an error {error}"));
    assert_eq!(fired, None, "{what} fired");
    assert_no_event_after(store, before, what).await;
    assert_eq!(all_executions(store).await, executions, "{what} stored an execution");
    assert_eq!(read_schedule(store, id).await.as_ref(), was, "{what} changed the schedule");
}

/// A new schedule is stored as given with its `schedule.created` event, and read back by id and in the list, oldest
/// first.
pub async fn a_schedule_is_created_with_its_event_and_read_back(store: &dyn DashboardStore) {
    assert!(all_schedules(store).await.is_empty(), "a fresh store has no schedules");
    let due = seconds_after(whole_second_now(), 60);
    let schedule =
        Schedule::create(ScheduleId::generate(), schedule_spec("alpha", "0 * * * *"), Some(due), now());
    let recorded = store.create_schedule(schedule.clone()).await.expect("create");
    assert_eq!(recorded.value, schedule, "stored as given");
    assert_eq!(
        recorded.event,
        NewEvent::for_schedule(EventKind::ScheduleCreated, &schedule)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(recorded.event.data["schedule_id"], json!(schedule.id));
    assert_eq!(last_event_id(store).await, recorded.event.id);

    let disabled =
        ScheduleSpec { enabled: false, overlap: Overlap::Queue, ..schedule_spec("bravo", "*/5 * * * *") };
    let second = create_schedule(store, disabled, None).await;
    assert_eq!(read_schedule(store, schedule.id).await, Some(schedule.clone()));
    assert_eq!(read_schedule(store, second.id).await, Some(second.clone()));
    assert_eq!(read_schedule(store, ScheduleId::generate()).await, None);
    assert_eq!(all_schedules(store).await, [schedule, second], "oldest first");
}

/// A schedule whose id exists already is refused as invalid, naming `id`, and nothing is written.
pub async fn a_schedule_with_a_taken_id_is_invalid_and_writes_nothing(store: &dyn DashboardStore) {
    let first = create_schedule(store, schedule_spec("alpha", "0 3 * * *"), None).await;
    let before = last_event_id(store).await;
    let again =
        Schedule::create(first.id, schedule_spec("bravo", "0 4 * * *"), Some(whole_second_now()), now());
    let result = store.create_schedule(again).await;
    assert!(
        matches!(&result, Err(StoreError::Invalid(CoreError::InvalidField { field, .. })) if field == "id"),
        "got {result:?}"
    );
    assert_no_event_after(store, before, "a schedule with a taken id").await;
    assert_eq!(all_schedules(store).await, [first], "one schedule, as first created");
}

/// An update replaces the declaration and the next due time, keeps the stored history and creation time whatever the
/// given schedule says of them, and records `schedule.updated`.
pub async fn a_schedule_update_replaces_the_declaration_and_keeps_its_history(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let fired = fire_and_win(store, run_fire(&schedule, &alpha, Some(seconds_after(due, 60)))).await;
    let skipped = fire_and_win(
        store,
        ScheduleFire {
            id: schedule.id,
            due: seconds_after(due, 60),
            next: Some(seconds_after(due, 120)),
            action: FireAction::Skip { reason: "the previous run still runs".into() },
        },
    )
    .await;
    let stored = skipped.schedule;
    assert_eq!(
        (stored.last_execution, stored.skipped),
        (fired.execution.as_ref().map(|execution| execution.id), 1),
        "the history the update must keep"
    );

    let spec = ScheduleSpec {
        function: "bravo".into(),
        cron: "30 2 * * 1".into(),
        timezone: "Europe/Paris".into(),
        input: json!({"changed": true}),
        overlap: Overlap::Queue,
        enabled: false,
    };
    let next = seconds_after(due, 3600);
    let expected = stored.replaced_by(spec, Some(next), now());
    let claims_another_history = Schedule {
        created_at: seconds_after(stored.created_at, -86_400),
        last_run_at: None,
        last_execution: Some(ExecutionId::generate()),
        skipped: 42,
        ..expected.clone()
    };
    let before = last_event_id(store).await;
    let recorded = store.update_schedule(claims_another_history).await.expect("update");
    assert_eq!(recorded.value, expected, "the declaration replaced, the history kept");
    assert_eq!(
        recorded.event,
        NewEvent::for_schedule(EventKind::ScheduleUpdated, &expected)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(store.list_events(before, 10).await.expect("list events"), [recorded.event]);
    assert_eq!(read_schedule(store, schedule.id).await, Some(expected.clone()));
    assert_eq!(all_schedules(store).await, [expected]);
}

/// An update or a delete of a schedule that does not exist is `NotFound` of entity `schedule`, and writes nothing.
pub async fn a_change_of_an_unknown_schedule_is_not_found(store: &dyn DashboardStore) {
    let kept = create_schedule(store, schedule_spec("alpha", "0 3 * * *"), None).await;
    let before = last_event_id(store).await;
    let unknown = Schedule::create(ScheduleId::generate(), schedule_spec("alpha", "0 4 * * *"), None, now());
    let result = store.update_schedule(unknown.clone()).await;
    assert!(is_schedule_not_found(&result, unknown.id), "update: got {result:?}");
    let result = store.delete_schedule(unknown.id).await;
    assert!(is_schedule_not_found(&result, unknown.id), "delete: got {result:?}");
    assert_no_event_after(store, before, "a change of an unknown schedule").await;
    assert_eq!(all_schedules(store).await, [kept], "an update of an unknown schedule creates nothing");
}

/// A delete removes the schedule and records `schedule.deleted`; the executions it fired are kept.
pub async fn a_deleted_schedule_is_gone_with_its_event(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let other = create_schedule(store, schedule_spec("alpha", "0 * * * *"), None).await;
    let fired = fire_and_win(store, run_fire(&schedule, &alpha, Some(seconds_after(due, 60)))).await;

    let recorded = store.delete_schedule(schedule.id).await.expect("delete");
    assert_eq!(recorded.value, fired.schedule, "the schedule as it was stored");
    assert_eq!(
        recorded.event,
        NewEvent::for_schedule(EventKind::ScheduleDeleted, &fired.schedule)
            .recorded(recorded.event.id, recorded.event.ts)
    );
    assert_eq!(last_event_id(store).await, recorded.event.id);
    assert_eq!(read_schedule(store, schedule.id).await, None);
    assert_eq!(all_schedules(store).await, [other]);
    let execution = fired.execution.expect("a run fire queues an execution");
    assert_eq!(
        store.get_execution(execution.id).await.expect("get"),
        Some(execution),
        "its execution is kept"
    );
    let result = store.delete_schedule(schedule.id).await;
    assert!(is_schedule_not_found(&result, schedule.id), "a second delete: got {result:?}");
}

/// The due schedules are the enabled ones whose next due time is at or before now, earliest first, at most `limit`
/// (0 read as 1).
pub async fn due_schedules_are_the_enabled_ones_due_by_now_earliest_first(store: &dyn DashboardStore) {
    let at = whole_second_now();
    let spec = |cron: &str| schedule_spec("alpha", cron);
    let late = create_schedule(store, spec("1 * * * *"), Some(seconds_after(at, -10))).await;
    let earliest = create_schedule(store, spec("2 * * * *"), Some(seconds_after(at, -30))).await;
    let disabled = ScheduleSpec { enabled: false, ..spec("3 * * * *") };
    create_schedule(store, disabled, Some(seconds_after(at, -20))).await;
    create_schedule(store, spec("4 * * * *"), Some(seconds_after(at, 60))).await;
    create_schedule(store, spec("5 * * * *"), None).await;
    let due_now = create_schedule(store, spec("6 * * * *"), Some(at)).await;

    let due = store.due_schedules(at, 10).await.expect("due schedules");
    assert_eq!(schedule_ids(&due), [earliest.id, late.id, due_now.id], "enabled, due by now, earliest first");
    assert_eq!(due, [earliest.clone(), late.clone(), due_now], "as stored");
    let due = store.due_schedules(at, 2).await.expect("due schedules");
    assert_eq!(schedule_ids(&due), [earliest.id, late.id], "at most `limit`");
    let due = store.due_schedules(at, 0).await.expect("due schedules");
    assert_eq!(schedule_ids(&due), [earliest.id], "a limit of 0 is read as 1");
    let due = store.due_schedules(seconds_after(at, -31), 10).await.expect("due schedules");
    assert!(due.is_empty(), "nothing is due before the earliest due time: {due:?}");
}

/// A run fire stores the execution as `create_execution` would, records `execution.queued` then `schedule.fired`,
/// and moves the schedule to its next due time with the fire as its last run.
pub async fn a_fire_queues_the_execution_and_advances_the_schedule(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = seconds_after(whole_second_now(), -5);
    let next = seconds_after(due, 60);
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let trigger = scheduled_execution(&schedule, &alpha);
    let before = last_event_id(store).await;

    let earliest = now();
    let fired = fire_and_win(
        store,
        ScheduleFire { id: schedule.id, due, next: Some(next), action: FireAction::Run(trigger.clone()) },
    )
    .await;
    let latest = now();
    let execution = fired.execution.clone().expect("a run fire returns its execution");
    assert_eq!(execution, trigger.into_execution(execution.created_at), "stored queued, as given");
    assert_eq!(execution.triggered_by, Some(schedule.trigger_name()));
    assert!((earliest..=latest).contains(&execution.created_at), "created at the fire");

    let last_run_at = fired.schedule.last_run_at.expect("last_run_at is set by a run fire");
    assert!((earliest..=latest).contains(&last_run_at), "last_run_at is the time of the fire");
    let expected = Schedule {
        next_run_at: Some(next),
        last_run_at: Some(last_run_at),
        last_execution: Some(execution.id),
        ..schedule.clone()
    };
    assert_eq!(fired.schedule, expected, "next due time and last run set, nothing else changed");

    let kinds: Vec<EventKind> = fired.events.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::ExecutionQueued, EventKind::ScheduleFired]);
    let [queued_event, fired_event] = &fired.events[..] else { panic!("two events: {:?}", fired.events) };
    assert_eq!(queued_event, &NewEvent::for_execution(&execution).recorded(queued_event.id, queued_event.ts));
    assert_eq!(
        fired_event,
        &NewEvent::schedule_fired(&expected, &execution, due).recorded(fired_event.id, fired_event.ts)
    );
    assert!(queued_event.id < fired_event.id, "events in id order");
    assert_eq!(
        store.list_events(before, 10).await.expect("list events"),
        fired.events,
        "the feed holds them"
    );
    assert_eq!(read_schedule(store, schedule.id).await, Some(expected));
    assert_eq!(store.get_execution(execution.id).await.expect("get"), Some(execution.clone()));
    assert_eq!(all_executions(store).await, [execution], "one execution");
}

/// Firing a due time that was fired already fires nothing: one due time queues one execution.
pub async fn a_due_time_fires_once(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let fired = fire_and_win(store, run_fire(&schedule, &alpha, Some(seconds_after(due, 60)))).await;
    let again = run_fire(&schedule, &alpha, Some(seconds_after(due, 60)));
    assert_fires_nothing(store, again, Some(&fired.schedule), "a second fire of the same due time").await;
    assert_eq!(all_executions(store).await.len(), 1, "one execution");
}

/// A fire that names another due time than the stored one fires nothing.
pub async fn a_fire_of_another_due_time_fires_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    for (offset, what) in [(1, "a fire of a later due time"), (-60, "a fire of an earlier due time")] {
        let fire = ScheduleFire { due: seconds_after(due, offset), ..run_fire(&schedule, &alpha, None) };
        assert_fires_nothing(store, fire, Some(&schedule), what).await;
    }
    let never_due = create_schedule(store, schedule_spec("alpha", "0 0 31 2 *"), None).await;
    let fire = ScheduleFire { id: never_due.id, due, ..run_fire(&schedule, &alpha, None) };
    assert_fires_nothing(store, fire, Some(&never_due), "a fire of a schedule with no due time").await;
}

/// A disabled schedule fires nothing, even at its stored due time.
pub async fn a_disabled_schedule_fires_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let spec = ScheduleSpec { enabled: false, ..schedule_spec("alpha", "* * * * *") };
    let schedule = create_schedule(store, spec, Some(due)).await;
    let fire = run_fire(&schedule, &alpha, Some(seconds_after(due, 60)));
    assert_fires_nothing(store, fire, Some(&schedule), "a fire of a disabled schedule").await;
}

/// A fire of a schedule that does not exist (or was deleted) fires nothing.
pub async fn a_fire_of_an_unknown_schedule_fires_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let unknown =
        Schedule::create(ScheduleId::generate(), schedule_spec("alpha", "* * * * *"), Some(due), now());
    let fire = run_fire(&unknown, &alpha, Some(seconds_after(due, 60)));
    assert_fires_nothing(store, fire, None, "a fire of an unknown schedule").await;

    let deleted = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    store.delete_schedule(deleted.id).await.expect("delete");
    let fire = run_fire(&deleted, &alpha, Some(seconds_after(due, 60)));
    assert_fires_nothing(store, fire, None, "a fire of a deleted schedule").await;
}

/// A skip fire queues nothing: it counts the skip, records `schedule.skipped` with the reason, and moves the
/// schedule to its next due time, leaving its last run as it was.
pub async fn a_skipped_fire_counts_the_skip_and_advances(store: &dyn DashboardStore) {
    function(store, "alpha").await;
    let due = whole_second_now();
    let next = seconds_after(due, 60);
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let before = last_event_id(store).await;
    let reason = "the previous execution still runs";
    let action = FireAction::Skip { reason: reason.into() };
    let skipped = fire_and_win(store, ScheduleFire { id: schedule.id, due, next: Some(next), action }).await;

    let expected = Schedule { next_run_at: Some(next), skipped: 1, ..schedule.clone() };
    assert_eq!(skipped.schedule, expected, "one skip counted, next due time set, no last run");
    assert_eq!(skipped.execution, None, "a skip queues nothing");
    let [event] = &skipped.events[..] else { panic!("a skip records one event: {:?}", skipped.events) };
    assert_eq!(event, &NewEvent::schedule_skipped(&expected, due, reason).recorded(event.id, event.ts));
    assert_eq!(event.data["reason"], json!(reason));
    assert_eq!(store.list_events(before, 10).await.expect("list events"), skipped.events);
    assert!(all_executions(store).await.is_empty(), "a skip stored an execution");
    assert_eq!(read_schedule(store, schedule.id).await, Some(expected));
}

/// A run fire whose execution cannot be created (its id or its idempotency key is taken) fails as
/// `create_execution` does, and writes nothing: the schedule is still due at the same time.
pub async fn a_fire_whose_execution_cannot_be_created_writes_nothing(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let existing = queued(store, &alpha, json!({})).await;
    let mut keyed = new_execution(&alpha, json!({}));
    keyed.idempotency_key = Some("nightly".into());
    let keyed = store.create_execution(keyed).await.expect("an execution with a key").value;
    let before = last_event_id(store).await;

    let taken_id = NewExecution { id: existing.id, ..scheduled_execution(&schedule, &alpha) };
    let refused = ScheduleFire { action: FireAction::Run(taken_id), ..run_fire(&schedule, &alpha, None) };
    let result = store.fire_schedule(refused).await;
    assert!(
        matches!(&result, Err(StoreError::Invalid(CoreError::InvalidField { field, .. })) if field == "id"),
        "an execution id that exists: got {result:?}"
    );
    let taken_key =
        NewExecution { idempotency_key: Some("nightly".into()), ..scheduled_execution(&schedule, &alpha) };
    let refused = ScheduleFire { action: FireAction::Run(taken_key), ..run_fire(&schedule, &alpha, None) };
    match store.fire_schedule(refused).await {
        Err(StoreError::IdempotencyKeyExists { existing }) => assert_eq!(*existing, keyed),
        other => panic!("an idempotency key that exists: got {other:?}"),
    }

    assert_no_event_after(store, before, "a fire whose execution was refused").await;
    assert_eq!(read_schedule(store, schedule.id).await, Some(schedule.clone()), "still due at {due}");
    assert_eq!(all_executions(store).await.len(), 2, "no execution was stored");
    let fired = fire_and_win(store, run_fire(&schedule, &alpha, None)).await;
    assert_eq!(fired.schedule.next_run_at, None, "the due time can still be fired");
}

/// Many instances firing the same due time at once: exactly one wins, and one execution is queued.
pub async fn concurrent_fires_of_one_due_time_fire_once(store: Arc<dyn DashboardStore>) {
    let alpha = function(&*store, "alpha").await;
    let due = whole_second_now();
    let schedule = create_schedule(&*store, schedule_spec("alpha", "* * * * *"), Some(due)).await;
    let next = Some(seconds_after(due, 60));
    let tasks: Vec<_> = (0..N_FIRING_TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            let fire = run_fire(&schedule, &alpha, next);
            tokio::spawn(async move { store.fire_schedule(fire).await.expect("a concurrent fire") })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(fired) = task.await.expect("a firing task panicked") {
            winners.push(fired);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one fire wins: {winners:?}");
    let execution: Execution = winners[0].execution.clone().expect("the winner queued an execution");
    assert_eq!(all_executions(&*store).await, std::slice::from_ref(&execution), "exactly one execution");
    let stored = read_schedule(&*store, schedule.id).await.expect("the schedule");
    assert_eq!((stored.next_run_at, stored.last_execution), (next, Some(execution.id)));
}
