//! Schedules over HTTP (DESIGN.md §14): a schedule every 2 s fires three times in 6 s, once per due time, each fire an
//! execution `triggered_by = "schedule:<id>"` and a `schedule.fired` event; `overlap = "skip"` skips a fire while the
//! previous run goes on (counted, and told in the feed), `queue` does not; a config file's schedule survives a kill
//! and restart of the real binary, created once, and the due time missed while it was down fires once; the API
//! refuses what it cannot use, naming the field.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::binary::{BinaryServer, TestDir};
use common::{TestServer, server};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn at(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().expect("a time"), &Rfc3339).expect("an RFC 3339 time")
}

/// The feed's events of `kind` about schedule `id`.
fn schedule_events<'a>(events: &'a [Value], kind: &str, id: &str) -> Vec<&'a Value> {
    events.iter().filter(|event| event["kind"] == kind && event["data"]["schedule_id"] == id).collect()
}

async fn events(server: &TestServer) -> Vec<Value> {
    let page = server.get("/api/events?after=0&limit=1000").await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.body["items"].as_array().expect("events").clone()
}

async fn executions_of(server: &TestServer, function: &str) -> Vec<Value> {
    let page = server.get(&format!("/api/executions?function={function}&limit=200")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.body["items"].as_array().expect("executions").clone()
}

/// Waits until the schedule's next due time is after `after`, so every due time up to `after` has been dealt with.
async fn wait_past(server: &TestServer, id: &str, after: OffsetDateTime) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let schedule = server.get(&format!("/api/schedules/{id}")).await.body;
        if schedule["next_run_at"].is_string() && at(&schedule["next_run_at"]) > after {
            return schedule;
        }
        assert!(tokio::time::Instant::now() < deadline, "the schedule is stuck: {schedule}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_schedule_every_two_seconds_fires_three_times_in_six_seconds_once_per_due_time() {
    let server = server().await;
    server.create_function("tick", json!({"backend": "demo"})).await;
    let created = server
        .post(
            "/api/schedules",
            json!({"function": "tick", "cron": "*/2 * * * * *", "input": {"steps": 1, "delay_ms": 10}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.body["id"].as_str().expect("an id").to_owned();
    let start = at(&created.body["created_at"]);
    let first_due = at(&created.body["next_run_at"]);
    assert!(first_due > start && first_due <= start + Duration::from_secs(2), "{}", created.body);
    assert_eq!(created.body["timezone"], "UTC");
    assert_eq!(created.body["overlap"], "skip");

    let end = start + Duration::from_secs(6);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let schedule = wait_past(&server, &id, end).await;

    // The due times in (start, start + 6 s] of */2: exactly three, each fired once.
    let expected: BTreeSet<OffsetDateTime> =
        (0..3).map(|n| first_due + Duration::from_secs(2 * n)).filter(|due| *due <= end).collect();
    assert_eq!(expected.len(), 3);
    let events = events(&server).await;
    let fired = schedule_events(&events, "schedule.fired", &id);
    let dues: Vec<OffsetDateTime> =
        fired.iter().map(|event| at(&event["data"]["due"])).filter(|due| *due <= end).collect();
    assert_eq!(dues.iter().copied().collect::<BTreeSet<_>>(), expected, "fired: {fired:?}");
    assert_eq!(dues.len(), 3, "a due time fired twice: {dues:?}");

    // Each fire is an execution of the schedule, and the schedule points to the last one.
    let executions = executions_of(&server, "tick").await;
    assert_eq!(executions.len(), fired.len(), "{executions:?}");
    let trigger = format!("schedule:{id}");
    assert!(
        executions.iter().all(|execution| execution["triggered_by"] == trigger.as_str()),
        "{executions:?}"
    );
    let fired_ids: BTreeSet<&str> = fired.iter().filter_map(|event| event["execution_id"].as_str()).collect();
    let execution_ids: BTreeSet<&str> =
        executions.iter().filter_map(|execution| execution["id"].as_str()).collect();
    assert_eq!(fired_ids, execution_ids);
    assert_eq!(schedule["last_execution"], executions[0]["id"], "{schedule}");
    assert!(schedule["last_run_at"].is_string());
    assert_eq!(schedule["skipped"], 0);
    assert_eq!(schedule_events(&events, "schedule.created", &id).len(), 1);

    // The list and the page show it.
    let list = server.get("/api/schedules").await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "{}", list.text());
    let page = server.get("/schedules").await;
    assert_eq!(page.status, 200);
    let row = format!("id=\"schedule-{id}\"");
    assert!(page.text().contains(&row) && page.text().contains("/functions/tick"), "{}", page.text());
    assert!(
        page.text().contains("status-succeeded") || page.text().contains("status-running"),
        "the last run's status"
    );

    // Disabled, it fires no more; deleted, it is gone with an event, its executions kept.
    let disabled = server
        .put(
            &format!("/api/schedules/{id}"),
            json!({"function": "tick", "cron": "*/2 * * * * *", "enabled": false}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text());
    assert_eq!(disabled.body["enabled"], false);
    assert_eq!(disabled.body["last_execution"], schedule["last_execution"], "the history is kept");
    let count = executions_of(&server, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(executions_of(&server, "tick").await.len(), count, "a disabled schedule fired");
    let deleted = server.delete(&format!("/api/schedules/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(server.get(&format!("/api/schedules/{id}")).await.status, 404);
    assert_eq!(executions_of(&server, "tick").await.len(), count);
    let events = self::events(&server).await;
    assert_eq!(schedule_events(&events, "schedule.updated", &id).len(), 1);
    assert_eq!(schedule_events(&events, "schedule.deleted", &id).len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_overlapping_fire_is_skipped_with_skip_and_queued_with_queue() {
    let server = server().await;
    server.create_function("slow", json!({"backend": "demo"})).await;
    server.create_function("piled", json!({"backend": "demo", "max_concurrency": 1})).await;
    // Each run takes about 3.5 s; the schedules fire every second.
    let long_run = json!({"steps": 7, "delay_ms": 500});
    let skip = server
        .post(
            "/api/schedules",
            json!({"function": "slow", "cron": "* * * * * *", "input": long_run, "overlap": "skip"}),
        )
        .await;
    assert_eq!(skip.status, 201, "{}", skip.text());
    let queue = server
        .post(
            "/api/schedules",
            json!({"function": "piled", "cron": "* * * * * *", "input": long_run, "overlap": "queue"}),
        )
        .await;
    assert_eq!(queue.status, 201, "{}", queue.text());
    let (skip_id, queue_id) = (skip.body["id"].as_str().expect("id"), queue.body["id"].as_str().expect("id"));
    tokio::time::sleep(Duration::from_millis(3200)).await;
    for id in [skip_id, queue_id] {
        let disabled = server.get(&format!("/api/schedules/{id}")).await.body;
        let mut spec = json!({"function": disabled["function"], "cron": disabled["cron"], "input": long_run});
        spec["enabled"] = json!(false);
        spec["overlap"] = disabled["overlap"].clone();
        assert_eq!(server.put(&format!("/api/schedules/{id}"), spec).await.status, 200);
    }

    // With skip: one run, and the fires during it skipped, counted and told.
    let slow = executions_of(&server, "slow").await;
    assert_eq!(slow.len(), 1, "{slow:?}");
    let skipped = server.get(&format!("/api/schedules/{skip_id}")).await.body;
    let events = events(&server).await;
    let skip_events = schedule_events(&events, "schedule.skipped", skip_id);
    assert!(skipped["skipped"].as_u64().is_some_and(|n| n >= 2), "{skipped}");
    assert_eq!(skipped["skipped"].as_u64(), Some(skip_events.len() as u64));
    let reason = skip_events[0]["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(slow[0]["id"].as_str().unwrap_or("?")) && reason.contains("running"), "{reason}");

    // With queue: a run for every fire, waiting their turn behind max_concurrency = 1.
    let piled = executions_of(&server, "piled").await;
    assert!(piled.len() >= 3, "{piled:?}");
    assert!(piled.iter().filter(|execution| execution["status"] == "queued").count() >= 2, "{piled:?}");
    assert_eq!(server.get(&format!("/api/schedules/{queue_id}")).await.body["skipped"], 0);
    server.stop().await;
}

#[tokio::test]
async fn the_api_refuses_a_schedule_it_cannot_use_naming_the_field() {
    let server = server().await;
    server
        .create_function(
            "typed",
            json!({"backend": "demo", "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}),
        )
        .await;
    let cases = [
        (json!({"function": "typed", "cron": "every minute", "input": {"n": 1}}), "cron"),
        (
            json!({"function": "typed", "cron": "* * * * *", "timezone": "Mars/Olympus", "input": {"n": 1}}),
            "timezone",
        ),
        (json!({"function": "nobody", "cron": "* * * * *"}), "function"),
        (json!({"function": "typed", "cron": "* * * * *", "input": {"n": "one"}}), "input"),
        (json!({"function": "typed", "cron": "* * * * *", "input": {"n": 1}, "every": 2}), "every"),
        (json!({"function": "typed", "cron": "0 0 30 2 *", "input": {"n": 1}}), "cron"),
        (
            json!({"function": "typed", "cron": "* * * * *", "input": {"n": 1}, "overlap": "sometimes"}),
            "overlap",
        ),
    ];
    for (body, field) in cases {
        let answer = server.post("/api/schedules", body.clone()).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.text());
        assert!(
            answer.body["error"]["message"].as_str().unwrap_or_default().contains(field),
            "{body}: {}",
            answer.text()
        );
    }
    assert_eq!(server.get("/api/schedules").await.body["items"], json!([]));
    let unknown = "0192f0c4-0000-7000-8000-000000000000";
    assert_eq!(server.get(&format!("/api/schedules/{unknown}")).await.status, 404);
    assert_eq!(server.delete(&format!("/api/schedules/{unknown}")).await.status, 404);
    assert_eq!(server.get("/api/schedules/not-an-id").await.status, 404);
    let in_berlin = server
        .post("/api/schedules", json!({"function": "typed", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "input": {"n": 1}}))
        .await;
    assert_eq!(in_berlin.status, 201, "{}", in_berlin.text());
    let next = at(&in_berlin.body["next_run_at"]);
    // 09:00 in Berlin is 07:00 or 08:00 UTC.
    assert!(matches!(next.hour(), 7 | 8) && next.minute() == 0, "{next}");
    server.stop().await;
}

const CONFIG: &str = r#"
[[backends]]
name = "demo"
kind = "demo"

[[functions]]
name = "every-two"
backend = "demo"

[[schedules]]
function = "every-two"
cron = "*/2 * * * * *"
input = { steps = 1, delay_ms = 10 }
"#;

#[tokio::test]
async fn a_config_schedule_survives_a_restart_and_a_due_time_missed_meanwhile_fires_once() {
    let dir = TestDir::new("schedules-restart");
    std::fs::write(dir.path().join("dashboard.toml"), CONFIG).expect("the config file");
    let env = [
        ("DASHBOARD_CONFIG", dir.path().join("dashboard.toml").display().to_string()),
        ("DASHBOARD_STORE", format!("sqlite:{}", dir.path().join("dashboard.db").display())),
    ];
    let mut first = BinaryServer::start(&dir, &env).await;
    let schedules = first.get_ok("/api/schedules").await;
    let [schedule] = schedules["items"].as_array().expect("schedules").as_slice() else {
        panic!("one schedule from the file: {schedules}")
    };
    let id = schedule["id"].as_str().expect("an id").to_owned();
    // Let it fire once, then kill the server just after a fire and keep it down over two due times.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !first.get_ok(&format!("/api/schedules/{id}")).await["last_run_at"].is_string() {
        assert!(tokio::time::Instant::now() < deadline, "the schedule never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let down_at = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let second = BinaryServer::start(&dir, &env).await;
    let up_at = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let schedules = second.get_ok("/api/schedules").await;
    assert_eq!(schedules["items"].as_array().map(Vec::len), Some(1), "created once: {schedules}");
    assert_eq!(schedules["items"][0]["id"], id.as_str(), "the same schedule");
    let events = second.all_events().await;
    let fired = schedule_events(&events, "schedule.fired", &id);
    let dues: Vec<OffsetDateTime> = fired.iter().map(|event| at(&event["data"]["due"])).collect();
    let unique: BTreeSet<OffsetDateTime> = dues.iter().copied().collect();
    assert_eq!(unique.len(), dues.len(), "a due time fired twice: {dues:?}");
    // The due times that passed while it was down (at least two) fired once in all, at start.
    let missed: Vec<&OffsetDateTime> = dues.iter().filter(|due| **due > down_at && **due < up_at).collect();
    assert_eq!(missed.len(), 1, "down {down_at} .. up {up_at}: {dues:?}");
    // And it goes on as before.
    assert!(dues.iter().any(|due| *due > up_at), "no fire after the restart: {dues:?}");
    let executions = second.get_ok("/api/executions?function=every-two&limit=200").await;
    assert_eq!(executions["items"].as_array().map(Vec::len), Some(fired.len()), "{executions}");
}
