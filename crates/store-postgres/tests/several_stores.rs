//! What the conformance suite cannot see from one store: several `PostgresStore`s (as several dashboard instances) on
//! one database at once — event ids in commit order, one winner of a compare-and-set, an idempotency key or a
//! schedule's due time, notification deliveries claimed by one instance each, schema migrated once — and the store's answers about its server: a newer schema refused, an absent server unavailable,
//! a NUL byte stored. Each test skips, saying why, without a test server (see `dashboard_store_postgres::testing`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashboard_core::{
    DeliveryId, EventKind, ExecutionStatus, Function, FunctionSpec, LogStream, NewLogLine, Schedule,
    ScheduleId, ScheduleSpec, now,
};
use dashboard_store::{
    DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionUpdate, FireAction, NewExecution, OutboxRule,
    ScheduleFire, StoreError,
};
use dashboard_store_postgres::{PostgresOptions, PostgresStore, testing};
use serde_json::json;

/// The URL of a fresh database, or `None` to skip.
async fn database() -> Option<String> {
    testing::database("store_several").await
}

async fn connect(url: &str) -> Arc<PostgresStore> {
    let options = PostgresOptions { pool_size: 8, ..PostgresOptions::new(url) };
    Arc::new(PostgresStore::connect(options).await.expect("a store on the test database"))
}

/// Two stores on one fresh database, as two instances would have.
async fn two_stores() -> Option<[Arc<PostgresStore>; 2]> {
    let url = database().await?;
    Some([connect(&url).await, connect(&url).await])
}

async fn function(store: &PostgresStore, name: &str) -> Function {
    let function = Function::create(FunctionSpec::new(name, "demo")).expect("a valid spec");
    store.create_function(function).await.expect("a new function").value
}

/// Runs `body` on a multi-threaded runtime, as the server does.
fn run<F: Future<Output = ()>>(body: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(body);
}

/// A reader that follows the feed by cursor while two stores write concurrently sees every event: none committed
/// behind its cursor (which ids taken from a sequence, not in commit order, would allow).
#[test]
fn a_reader_by_cursor_misses_no_event_of_concurrent_writers() {
    run(async {
        let Some([first, second]) = two_stores().await else { return };
        let alpha = function(&first, "alpha").await;
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (store, done) = (Arc::clone(&first), Arc::clone(&done));
            tokio::spawn(async move {
                let (mut seen, mut cursor) = (Vec::new(), 0);
                loop {
                    // Read whether or not the writers are done, then once more after they are.
                    let is_last_read = done.load(Ordering::SeqCst);
                    let events = store.list_events(cursor, 1_000).await.expect("a read of the feed");
                    if let Some(last) = events.last() {
                        cursor = last.id;
                    }
                    seen.extend(events.into_iter().map(|event| event.id));
                    if is_last_read {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut writers = Vec::new();
        for n in 0..8 {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            let alpha = alpha.clone();
            writers.push(tokio::spawn(async move {
                for _ in 0..25 {
                    let created = store.create_execution(NewExecution::of(&alpha, json!({}))).await;
                    let execution = created.expect("a new execution").value;
                    let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
                    store.update_execution(execution.id, update).await.expect("queued → running");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("a writer");
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.await.expect("the reader");
        let all: Vec<u64> = second
            .list_events(0, 10_000)
            .await
            .expect("the whole feed")
            .iter()
            .map(|event| event.id)
            .collect();
        assert_eq!(all.len(), 1 + 8 * 25 * 2, "every change recorded its event");
        assert_eq!(seen, all, "the reader by cursor saw every event, in order");
    });
}

/// The same idempotency key sent to two instances at once stores one execution; every other request hears of it.
#[test]
fn a_key_sent_at_once_to_two_stores_makes_one_execution() {
    run(async {
        let Some([first, second]) = two_stores().await else { return };
        let alpha = function(&first, "alpha").await;
        let mut requests = Vec::new();
        for n in 0..12 {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            let mut new = NewExecution::of(&alpha, json!({ "n": n }));
            new.idempotency_key = Some("the-key".to_owned());
            requests.push(tokio::spawn(async move { store.create_execution(new).await }));
        }
        let (mut created, mut existing) = (Vec::new(), BTreeSet::new());
        for request in requests {
            match request.await.expect("a request") {
                Ok(recorded) => created.push(recorded.value.id),
                Err(StoreError::IdempotencyKeyExists { existing: execution }) => {
                    existing.insert(execution.id);
                }
                Err(other) => panic!("a repeated key must come back as the first execution, not {other:?}"),
            }
        }
        assert_eq!(created.len(), 1, "one execution is made");
        assert_eq!(existing.into_iter().collect::<Vec<_>>(), created, "the others hear of that one");
        assert_eq!(first.count_by_status().await.expect("counts").total(), 1);
    });
}

/// A compare-and-set raced from two instances has one winner; the others hear who changed it first.
#[test]
fn a_status_change_raced_from_two_stores_has_one_winner() {
    run(async {
        let Some([first, second]) = two_stores().await else { return };
        let alpha = function(&first, "alpha").await;
        let execution = first.create_execution(NewExecution::of(&alpha, json!({}))).await;
        let execution = execution.expect("an execution").value;
        let mut racers = Vec::new();
        for n in 0..10 {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running)
                .instance(format!("instance-{n}"));
            racers.push(tokio::spawn(async move { store.update_execution(execution.id, update).await }));
        }
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.expect("a racer") {
                Ok(recorded) => winners.push(recorded.value),
                Err(StoreError::StatusMismatch { expected, actual }) => {
                    assert_eq!((expected, actual), (ExecutionStatus::Queued, ExecutionStatus::Running));
                }
                Err(other) => panic!("a lost race is a status mismatch, not {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "one winner: {winners:?}");
        let stored = second.get_execution(execution.id).await.expect("a read").expect("the execution");
        assert_eq!(stored.instance, winners[0].instance, "the winner's instance is stored");
    });
}

/// Many tasks of two instances fire the same due time of a schedule at once: one wins, and one execution is queued.
#[test]
fn a_due_time_fired_at_once_from_two_stores_fires_once() {
    run(async {
        let Some([first, second]) = two_stores().await else { return };
        let alpha = function(&first, "alpha").await;
        let due = now().replace_nanosecond(0).expect("a whole second");
        let next = due + Duration::from_secs(60);
        let spec = ScheduleSpec {
            function: "alpha".into(),
            cron: "* * * * *".into(),
            timezone: "UTC".into(),
            input: json!({}),
            overlap: dashboard_core::Overlap::Queue,
            enabled: true,
        };
        let schedule = Schedule::create(ScheduleId::generate(), spec, Some(due), now());
        let schedule = first.create_schedule(schedule).await.expect("a schedule").value;
        let mut firing = Vec::new();
        for n in 0..16 {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            let fire = ScheduleFire {
                id: schedule.id,
                due,
                next: Some(next),
                action: FireAction::Run(NewExecution::of(&alpha, json!({ "n": n }))),
            };
            firing.push(tokio::spawn(async move { store.fire_schedule(fire).await }));
        }
        let mut winners = Vec::new();
        for fire in firing {
            if let Some(fired) = fire.await.expect("a firing task").expect("a fire is not an error") {
                winners.push(fired);
            }
        }
        let queued: Vec<_> = winners.iter().map(|fired| fired.execution.as_ref().map(|e| e.id)).collect();
        assert_eq!(winners.len(), 1, "one fire wins, not those that queued {queued:?}");
        let execution = winners[0].execution.clone().expect("the winner queued an execution");
        assert_eq!(second.count_by_status().await.expect("counts").total(), 1, "one execution");
        let stored = second.get_schedule(schedule.id).await.expect("a read").expect("the schedule");
        assert_eq!((stored.next_run_at, stored.last_execution), (Some(next), Some(execution.id)));
        let kinds: Vec<EventKind> =
            first.list_events(0, 100).await.expect("the feed").iter().map(|event| event.kind).collect();
        let fired = kinds.iter().filter(|kind| **kind == EventKind::ScheduleFired).count();
        assert_eq!(fired, 1, "one schedule.fired: {kinds:?}");
    });
}

/// Claimers of two instances take the pending deliveries at once: each delivery goes to one claimer, every one is
/// claimed, and each claimer finishes its own.
#[test]
fn deliveries_claimed_at_once_from_two_stores_go_to_one_claimer_each() {
    const N_DELIVERIES: usize = 60;
    run(async {
        let Some([first, second]) = two_stores().await else { return };
        let rule = OutboxRule {
            notification: "ops".into(),
            kinds: vec![EventKind::ExecutionQueued],
            functions: None,
        };
        first.set_outbox_rules(vec![rule]);
        let alpha = function(&first, "alpha").await;
        for n in 0..N_DELIVERIES {
            first.create_execution(NewExecution::of(&alpha, json!({ "n": n }))).await.expect("an execution");
        }
        let mut claimers = Vec::new();
        for n in 0..8 {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            claimers.push(tokio::spawn(async move {
                let owner = format!("claimer-{n}");
                let mut claimed: Vec<DeliveryId> = Vec::new();
                loop {
                    let batch = store.claim_deliveries(&owner, "ops", Duration::from_secs(600), 3).await;
                    let batch = batch.expect("a claim");
                    if batch.is_empty() {
                        return claimed;
                    }
                    for delivery in batch {
                        let delivered = DeliveryOutcome::Delivered { response_status: 200 };
                        let finished = store.finish_delivery(delivery.id, &owner, delivered).await;
                        assert!(finished.expect("a finish").is_some(), "{owner} finishes what it claimed");
                        claimed.push(delivery.id);
                    }
                }
            }));
        }
        let mut claimed = Vec::new();
        for claimer in claimers {
            claimed.extend(claimer.await.expect("a claimer"));
        }
        let distinct: BTreeSet<DeliveryId> = claimed.iter().copied().collect();
        assert_eq!(distinct.len(), claimed.len(), "a delivery was claimed twice");
        let query = DeliveryQuery { limit: 1_000, ..DeliveryQuery::default() };
        let all: BTreeSet<DeliveryId> =
            second.list_deliveries(&query).await.expect("the deliveries").iter().map(|d| d.id).collect();
        assert_eq!(all.len(), N_DELIVERIES, "one delivery per execution.queued");
        assert_eq!(distinct, all, "every delivery was claimed");
    });
}

/// Instances that start together on an empty database migrate it once, and all of them work.
#[test]
fn stores_that_connect_at_once_migrate_once() {
    run(async {
        let Some(url) = database().await else { return };
        let connecting: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(PostgresOptions::new(url)).await })
            })
            .collect();
        for (n, connected) in connecting.into_iter().enumerate() {
            let store = connected.await.expect("a connect").expect("every store connects");
            function(&store, &format!("f{n}")).await;
        }
    });
}

/// A database whose schema a newer build wrote is refused, saying so, rather than written in a shape it does not
/// know.
#[test]
fn a_newer_schema_is_refused_saying_so() {
    run(async {
        let Some(url) = database().await else { return };
        drop(connect(&url).await);
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("a connection");
        tokio::spawn(connection);
        client
            .batch_execute("UPDATE dashboard_schema SET version = version + 1")
            .await
            .expect("a newer version");
        match PostgresStore::connect(PostgresOptions::new(&url)).await {
            Err(StoreError::Unavailable { message, .. }) => {
                assert!(message.contains("newer"), "{message}");
            }
            other => panic!("a newer schema must be refused, not {other:?}"),
        }
    });
}

/// Where no server listens, connecting is `Unavailable` — within the connect timeout, not a hang — saying why.
#[test]
fn a_server_that_is_not_there_is_unavailable() {
    run(async {
        // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
        let options = PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..PostgresOptions::new("postgres://nobody:secret@127.0.0.1:1/none")
        };
        match PostgresStore::connect(options).await {
            Err(StoreError::Unavailable { message, .. }) => {
                assert!(message.contains("connect"), "{message}");
                assert!(!message.contains("secret"), "the password never shows: {message}");
            }
            other => panic!("no server must be unavailable, not {other:?}"),
        }
    });
}

/// PostgreSQL's text refuses U+0000: in a JSON value it is kept (serde_json escapes it), in a log line it becomes
/// U+FFFD, and the write succeeds either way.
#[test]
fn a_nul_byte_is_kept_in_json_and_replaced_in_plain_text() {
    run(async {
        let Some([store, _]) = two_stores().await else { return };
        let alpha = function(&store, "alpha").await;
        let input = json!({ "prompt": "before\u{0}after" });
        let execution = store.create_execution(NewExecution::of(&alpha, input.clone())).await;
        let execution = execution.expect("an input with a NUL is stored").value;
        let line = NewLogLine { stream: LogStream::Stdout, message: "a\u{0}b".to_owned() };
        store.append_logs(execution.id, vec![line]).await.expect("a line with a NUL is stored");
        let update =
            ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Failed).error("exit\u{0}code 1");
        store.update_execution(execution.id, update).await.expect("an error with a NUL is stored");

        let stored = store.get_execution(execution.id).await.expect("a read").expect("the execution");
        assert_eq!(stored.input, input, "JSON keeps the NUL");
        assert_eq!(stored.error.as_deref(), Some("exit\u{FFFD}code 1"));
        let lines = store.read_logs(execution.id, 0, 10).await.expect("the log");
        assert_eq!(lines.iter().map(|line| line.message.as_str()).collect::<Vec<_>>(), ["a\u{FFFD}b"]);
    });
}

/// Every change tells the other instances at its commit (`NOTIFY` on the `dashboard` channel): events by the last id,
/// log lines by the last seq, items by their seqs; a refused change tells nothing.
#[test]
fn changes_are_signalled_at_commit_and_refused_ones_are_not() {
    run(async {
        let Some(url) = database().await else { return };
        let store = connect(&url).await;
        let (client, mut connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("a listening connection");
        let (sender, mut heard) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if let tokio_postgres::AsyncMessage::Notification(notification) = message {
                    let _ = sender.send(notification.payload().to_owned());
                }
            }
        });
        client.batch_execute("LISTEN dashboard").await.expect("LISTEN");
        let mut next = async || heard.recv().await.expect("a notification");

        let alpha = function(&store, "alpha").await;
        assert_eq!(next().await, "e 1");
        let execution = store.create_execution(NewExecution::of(&alpha, json!({}))).await;
        let id = execution.expect("an execution").value.id;
        assert_eq!(next().await, "e 2");
        let line = |message: &str| NewLogLine { stream: LogStream::Stdout, message: message.to_owned() };
        store.append_logs(id, vec![line("one"), line("two")]).await.expect("two lines");
        assert_eq!(next().await, format!("l {id} 2"));
        let item = |item_id: &str| dashboard_core::NewItem {
            id: item_id.to_owned(),
            status: dashboard_core::ItemStatus::Completed,
            body: dashboard_core::ItemBody::Reasoning { text: item_id.to_owned() },
        };
        store.upsert_items(id, vec![item("a"), item("b")]).await.expect("two items");
        assert_eq!(next().await, format!("i {id} 1,2"));

        let refused = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded);
        let refused =
            store.update_execution_with_logs(id, refused, vec![line("never")], vec![item("c")]).await;
        assert!(matches!(refused, Err(StoreError::StatusMismatch { .. })), "{refused:?}");
        let update = ExecutionUpdate::new(ExecutionStatus::Queued, ExecutionStatus::Running);
        store
            .update_execution_with_logs(id, update, vec![line("three")], vec![item("a")])
            .await
            .expect("running");
        assert_eq!(
            [next().await, next().await, next().await],
            [format!("l {id} 3"), format!("i {id} 1"), "e 3".to_owned()],
            "the refused change told nothing; the events come last"
        );
    });
}
