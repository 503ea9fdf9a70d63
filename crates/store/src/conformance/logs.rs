//! Conformance cases for execution logs: gap-free numbering, also under concurrent appends, paged reads, and lines
//! stored in one step with a status change.

use std::sync::Arc;

use dashboard_core::{ExecutionId, ExecutionStatus, LogLine, LogStream, NewEvent, NewLogLine, now};
use serde_json::json;

use super::fixtures::{assert_no_event_after, function, in_status, last_event_id, queued};
use crate::{DashboardStore, ExecutionUpdate, StoreError};

fn batch(messages: &[&str]) -> Vec<NewLogLine> {
    messages.iter().map(|message| NewLogLine::new(LogStream::Stdout, *message)).collect()
}

async fn read_all(store: &dyn DashboardStore, id: ExecutionId) -> Vec<LogLine> {
    store.read_logs(id, 0, 100_000).await.expect("read logs")
}

/// Lines are numbered 1, 2, 3… across batches, in order, with their stream and text; each append returns the last seq.
pub async fn log_lines_are_numbered_without_gaps(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let other = queued(store, &alpha, json!({})).await;
    assert!(read_all(store, execution.id).await.is_empty(), "a new execution has no lines");
    assert_eq!(store.append_logs(execution.id, Vec::new()).await.expect("append nothing"), 0);

    let earliest = now();
    let first = vec![
        NewLogLine::new(LogStream::Stdout, "one"),
        NewLogLine::new(LogStream::Stderr, "two"),
        NewLogLine::new(LogStream::Agent, "three"),
    ];
    assert_eq!(store.append_logs(execution.id, first).await.expect("append"), 3);
    assert_eq!(
        store.append_logs(execution.id, Vec::new()).await.expect("append nothing"),
        3,
        "the last stored seq"
    );
    assert_eq!(
        store.append_logs(other.id, batch(&["elsewhere"])).await.expect("append"),
        1,
        "seqs are per execution"
    );
    assert_eq!(
        store
            .append_logs(execution.id, vec![NewLogLine::new(LogStream::System, "four")])
            .await
            .expect("append"),
        4
    );
    assert_eq!(store.append_logs(execution.id, batch(&["five", "six", "seven"])).await.expect("append"), 7);
    let latest = now();

    let lines = read_all(store, execution.id).await;
    let seen: Vec<(u64, LogStream, &str)> =
        lines.iter().map(|line| (line.seq, line.stream, line.message.as_str())).collect();
    use LogStream::*;
    let expected = [
        (1, Stdout, "one"),
        (2, Stderr, "two"),
        (3, Agent, "three"),
        (4, System, "four"),
        (5, Stdout, "five"),
        (6, Stdout, "six"),
        (7, Stdout, "seven"),
    ];
    assert_eq!(seen, expected);
    assert!(lines.iter().all(|line| (earliest..=latest).contains(&line.ts)), "ts is the time of the append");
    let elsewhere = read_all(store, other.id).await;
    assert_eq!(
        elsewhere.iter().map(|line| (line.seq, line.message.as_str())).collect::<Vec<_>>(),
        [(1, "elsewhere")]
    );
}

/// Reads return the lines after `after`, at most `limit` of them, in order.
pub async fn log_reads_respect_after_and_limit(store: &dyn DashboardStore) {
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    let messages: Vec<String> = (1..=10).map(|n| format!("line {n}")).collect();
    let lines = messages.iter().map(|message| NewLogLine::new(LogStream::Stdout, message.clone())).collect();
    assert_eq!(store.append_logs(execution.id, lines).await.expect("append"), 10);

    let read = |after: u64, limit: usize| async move {
        let lines = store.read_logs(execution.id, after, limit).await.expect("read logs");
        lines.iter().map(|line| line.seq).collect::<Vec<u64>>()
    };
    assert_eq!(read(0, 3).await, [1, 2, 3]);
    assert_eq!(read(4, 3).await, [5, 6, 7]);
    assert_eq!(read(8, 100).await, [9, 10]);
    assert_eq!(read(9, 1).await, [10]);
    assert_eq!(read(10, 100).await, Vec::<u64>::new(), "nothing after the last line");
    assert_eq!(read(1000, 100).await, Vec::<u64>::new(), "nothing after a seq past the end");
    assert_eq!(read(0, 0).await, Vec::<u64>::new(), "a limit of 0 reads nothing");
    let lines = store.read_logs(execution.id, 2, 1).await.expect("read logs");
    assert_eq!(lines[0].message, "line 3");
}

/// Appending to an execution that does not exist is `NotFound`.
pub async fn log_append_to_unknown_execution_is_not_found(store: &dyn DashboardStore) {
    let unknown = ExecutionId::generate();
    let result = store.append_logs(unknown, batch(&["lost"])).await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "execution", .. })), "got {result:?}");
}

/// A status change with lines changes the status as `update_execution` does, records its event, and numbers the lines
/// after those already stored, in the same sequence as plain appends.
pub async fn update_with_logs_changes_status_and_numbers_lines_after_the_stored_ones(
    store: &dyn DashboardStore,
) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;

    let started = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Queued, Running),
            batch(&["started"]),
            Vec::new(),
        )
        .await
        .expect("start with a line");
    let running = started.recorded.value.clone();
    assert_eq!(running.status, Running);
    assert!(running.started_at.is_some(), "started_at is set on running, as update_execution sets it");
    let event = &started.recorded.event;
    assert_eq!(*event, NewEvent::for_execution(&running).recorded(event.id, event.ts));
    assert_eq!(last_event_id(store).await, event.id);
    assert_eq!(started.last_seq, 1);
    assert_eq!(store.get_execution(execution.id).await.expect("get"), Some(running.clone()));

    assert_eq!(store.append_logs(execution.id, batch(&["two", "three"])).await.expect("append"), 3);
    let finished = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Running, Succeeded).output(json!({"ok": true})),
            batch(&["four", "five"]),
            Vec::new(),
        )
        .await
        .expect("finish with lines");
    assert_eq!(finished.last_seq, 5);
    let succeeded = finished.recorded.value;
    assert_eq!((succeeded.status, succeeded.output), (Succeeded, Some(json!({"ok": true}))));
    assert!(succeeded.finished_at.is_some(), "finished_at is set on a terminal status");
    assert!(finished.recorded.event.id > event.id, "event ids increase");

    let lines = read_all(store, execution.id).await;
    let seen: Vec<(u64, &str)> = lines.iter().map(|line| (line.seq, line.message.as_str())).collect();
    assert_eq!(seen, [(1, "started"), (2, "two"), (3, "three"), (4, "four"), (5, "five")]);

    let other = in_status(store, &alpha, Running).await;
    store.append_logs(other.id, batch(&["only"])).await.expect("append");
    let without_lines = store
        .update_execution_with_logs(
            other.id,
            ExecutionUpdate::new(Running, Failed).error("boom"),
            Vec::new(),
            Vec::new(),
        )
        .await
        .expect("finish without lines");
    assert_eq!(without_lines.last_seq, 1, "with no lines, the seq of the last stored line");
    assert_eq!(without_lines.recorded.value.error.as_deref(), Some("boom"));
}

/// A status change with lines that is refused — unknown execution, wrong `from`, illegal transition — appends no line
/// and records no event, and says why as `update_execution` would.
pub async fn refused_update_with_logs_appends_nothing(store: &dyn DashboardStore) {
    use ExecutionStatus::*;
    let alpha = function(store, "alpha").await;
    let execution = queued(store, &alpha, json!({})).await;
    store.append_logs(execution.id, batch(&["before"])).await.expect("append");
    let before = last_event_id(store).await;

    let unknown = ExecutionId::generate();
    let result = store
        .update_execution_with_logs(
            unknown,
            ExecutionUpdate::new(Queued, Running),
            batch(&["lost"]),
            Vec::new(),
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound { entity: "execution", .. })), "got {result:?}");
    assert!(read_all(store, unknown).await.is_empty(), "lines of an unknown execution were stored");

    let result = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Running, Succeeded),
            batch(&["lost"]),
            Vec::new(),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::StatusMismatch { expected: Running, actual: Queued })),
        "got {result:?}"
    );
    let result = store
        .update_execution_with_logs(
            execution.id,
            ExecutionUpdate::new(Queued, Succeeded),
            batch(&["lost"]),
            Vec::new(),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "got {result:?}");

    let lines = read_all(store, execution.id).await;
    assert_eq!(lines.iter().map(|line| line.message.as_str()).collect::<Vec<_>>(), ["before"]);
    assert_no_event_after(store, before, "a refused update with lines").await;
    let stored = store.get_execution(execution.id).await.expect("get").expect("the execution");
    assert_eq!(stored.status, Queued, "a refused update changed the status");
    assert_eq!(
        store.append_logs(execution.id, batch(&["next"])).await.expect("append"),
        2,
        "no seq was used"
    );
}

const N_TASKS: usize = 20;
const N_BATCHES: usize = 10;
const LINES_PER_BATCH: usize = 3;

/// Many tasks appending at once get one gap-free, duplicate-free numbering, with each batch's lines together.
pub async fn concurrent_log_appends_have_no_gaps_or_duplicates(store: Arc<dyn DashboardStore>) {
    let alpha = function(&*store, "alpha").await;
    let execution = queued(&*store, &alpha, json!({})).await.id;
    let tasks: Vec<_> = (0..N_TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut last_seqs = Vec::new();
                for batch_no in 0..N_BATCHES {
                    let lines = (0..LINES_PER_BATCH)
                        .map(|line| NewLogLine::new(LogStream::Stdout, format!("{task}/{batch_no}/{line}")))
                        .collect();
                    let last_seq = store.append_logs(execution, lines).await.expect("a concurrent append");
                    last_seqs.push((last_seq, format!("{task}/{batch_no}")));
                    tokio::task::yield_now().await;
                }
                last_seqs
            })
        })
        .collect();
    let mut last_seqs = Vec::new();
    for task in tasks {
        last_seqs.extend(task.await.expect("an appending task panicked"));
    }

    let total = (N_TASKS * N_BATCHES * LINES_PER_BATCH) as u64;
    let lines = read_all(&*store, execution).await;
    let seqs: Vec<u64> = lines.iter().map(|line| line.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<u64>>(), "seqs must be 1..={total} exactly once each");
    for (last_seq, batch_name) in last_seqs {
        let last = usize::try_from(last_seq).expect("a seq fits in usize");
        assert!(last >= LINES_PER_BATCH, "batch {batch_name} ended at {last_seq}");
        let messages: Vec<&str> =
            lines[last - LINES_PER_BATCH..last].iter().map(|line| line.message.as_str()).collect();
        let expected: Vec<String> = (0..LINES_PER_BATCH).map(|line| format!("{batch_name}/{line}")).collect();
        assert_eq!(
            messages, expected,
            "batch {batch_name} must end at its returned seq, its lines together and in order"
        );
    }
    assert_eq!(store.append_logs(execution, Vec::new()).await.expect("append nothing"), total);
}
