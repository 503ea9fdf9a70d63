//! The phases of one benchmark run, in an order that keeps each clean: idle memory and live streams first (before
//! load has grown the heap), then the echo ceiling, triggers, lifecycles, log ingestion, listing at growing sizes, and
//! the status page of a long transcript, approval round trips, and notifications and schedule fires.

use std::fmt::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashboard_core::{
    ExecutionId, ExecutionStatus, FileChange, FileChangeKind, ItemBody, ItemStatus, MessageRole, NewItem,
};
use dashboard_server::RunningServer;
use dashboard_store::{DashboardStore, FunctionKey, HistogramSnapshot, NewExecution, StoreStats};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::load::{self, LoadResult};
use crate::{Options, QUICK_FUNCTION, approvals, automation, echo};

/// Unmeasured time at the start of each load phase: connections open, caches warm.
const WARMUP: Duration = Duration::from_millis(500);
/// Lines per log report in the ingestion phase.
const LINES_PER_BATCH: usize = 100;
/// The engine's default global limit of running executions: more clients than this share executions in (c).
const ENGINE_MAX_RUNNING: usize = 32;

/// One row of the report.
struct Row {
    measure: String,
    result: String,
    p50: String,
    p99: String,
    target: String,
    /// What the store's writer did during the phase: the profile that tells whether it was the bottleneck.
    writer: String,
}

fn row(measure: impl Into<String>, result: impl Into<String>, target: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        result: result.into(),
        p50: String::new(),
        p99: String::new(),
        target: target.into(),
        writer: String::new(),
    }
}

fn load_row(measure: &str, result: &LoadResult, unit: &str, per_request: f64, target: &str) -> Row {
    Row {
        measure: measure.to_owned(),
        result: format!("{:.0} {unit}/s ({} errors)", result.per_second() * per_request, result.errors),
        p50: ms(result.quantile(0.5)),
        p99: ms(result.quantile(0.99)),
        target: target.to_owned(),
        writer: String::new(),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Runs every phase and returns the report (markdown). With several instances, load phases spread their clients over
/// them (client `i` talks to instance `i mod n`), and the SSE subscribers listen on the last instance while the
/// triggers they time go to the first.
pub async fn all(options: &Options, servers: &[RunningServer]) -> String {
    let server = &servers[0];
    let url = server.url();
    let urls: Arc<[String]> = servers.iter().map(RunningServer::url).collect();
    let duration = Duration::from_secs_f64(options.seconds);
    let clients = options.clients;
    let mut rows = Vec::new();
    let setup = load::client();
    let created = setup
        .post(format!("{url}/api/functions"))
        .json(&json!({"name": QUICK_FUNCTION, "backend": "demo"}))
        .send()
        .await
        .expect("the function is created");
    assert_eq!(created.status(), StatusCode::CREATED, "creating {QUICK_FUNCTION}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib();
    rows.push(row("(f) idle RSS (whole process, server started, no client)", kib(idle_rss), "< 30 MB"));

    if options.subscribers > 0 {
        eprintln!("(e) {} SSE subscribers…", options.subscribers);
        let subscribed = servers.last().map_or_else(|| url.clone(), RunningServer::url);
        rows.extend(sse(options, &subscribed, &url, idle_rss).await);
        drain(servers).await;
        // The server learns that a subscriber left only when a write to it fails (a heartbeat at the latest), and
        // until then its stream is live: wait for that, so the phases after do not share the machine with it.
        let released = departed_streams_released(&setup, &url).await;
        rows.push(row(
            "(e′) time until the server has dropped the streams of the departed subscribers",
            format!("{:.1} s", released.as_secs_f64()),
            "",
        ));
    }

    // The smallest list size is measured before the load phases fill the store past it.
    if let Some(size) = options.list_sizes.first() {
        rows.push(list(options, servers, *size).await);
    }

    eprintln!("ceiling: echo handler, {clients} clients…");
    let body = json!({"function": QUICK_FUNCTION, "input": {"steps": 0}});
    let (echo_url, echo_handle) = echo::start();
    let echo_body = body.clone();
    let ceiling = load::run(clients, WARMUP, duration, StatusCode::OK, move |client, _| {
        client.post(format!("{echo_url}/echo")).json(&echo_body)
    })
    .await;
    echo_handle.stop(true).await;
    rows.push(load_row("ceiling: actix-web echo of the same JSON body", &ceiling, "req", 1.0, ""));

    eprintln!("(a) triggers, {clients} clients…");
    let trigger_urls = Arc::clone(&urls);
    let trigger_body = body.clone();
    let (writer_before, phase_started) = (server.dashboard.store().stats(), Instant::now());
    let triggers = load::run(clients, WARMUP, duration, StatusCode::ACCEPTED, move |client, index| {
        client
            .post(format!("{}/api/executions", trigger_urls[index % trigger_urls.len()]))
            .json(&trigger_body)
    })
    .await;
    let ratio = triggers.per_second() / ceiling.per_second().max(f64::EPSILON);
    let trigger_label = format!("(a) `POST /api/executions` ({})", options.store_label());
    let mut trigger_row = load_row(&trigger_label, &triggers, "req", 1.0, "≥ 50% of ceiling");
    trigger_row.result.push_str(&format!(" = {:.0}% of ceiling", ratio * 100.0));
    let drained = drain(servers).await;
    trigger_row.writer = writer_note(server, &writer_before, phase_started.elapsed());
    rows.push(trigger_row);
    rows.push(row(
        "(a′) time to run the backlog the triggers left",
        format!("{:.1} s", drained.as_secs_f64()),
        "",
    ));

    eprintln!("(b) lifecycles, {clients} clients…");
    rows.push(lifecycles(servers, &urls, clients, duration).await);

    eprintln!("(c) log ingestion, {clients} clients…");
    rows.push(log_ingestion(server, &url, clients, duration).await);
    drain(servers).await;

    for size in options.list_sizes.iter().skip(1) {
        rows.push(list(options, servers, *size).await);
    }

    eprintln!("(g) the status page of an execution with {TRANSCRIPT_ITEMS} items…");
    rows.extend(transcript_page(options, server).await);

    eprintln!("(h) {APPROVALS} approval round trips…");
    rows.extend(approval_round_trips(&url).await);

    eprintln!("(i, j) {NOTIFIED} notifications and {FIRES} schedule fires, on a dashboard of their own…");
    rows.extend(automation().await);

    let stats = server.dashboard.store().stats();
    rows.push(row("store: group commits", commits(&stats.commit_seconds, &stats.batch_size), ""));
    render(options, &rows)
}

/// `GET /api/executions?limit=50` once the store holds `size` executions (seeded as needed).
async fn list(options: &Options, servers: &[RunningServer], size: u64) -> Row {
    let server = &servers[0];
    let measure = format!("(d) `GET /api/executions?limit=50` at {size} executions");
    let Some(seeded) = seed(options, server, size, options.seed_budget).await else {
        return row(measure, "skipped: seeding would take longer than --seed-budget", "");
    };
    let stored = server.dashboard.store().count_by_status().await.expect("the store counts").total();
    eprintln!("(d) list at {stored} executions ({seeded})…");
    let list_urls: Vec<String> =
        servers.iter().map(|server| format!("{}/api/executions?limit=50", server.url())).collect();
    let duration = Duration::from_secs_f64(options.seconds);
    let listed = load::run(options.clients, WARMUP, duration, StatusCode::OK, move |client, index| {
        client.get(&list_urls[index % list_urls.len()])
    })
    .await;
    let mut result = load_row(&measure, &listed, "req", 1.0, "p99 at 1M ≤ 2× at 10k");
    result.measure = format!("(d) `GET /api/executions?limit=50` at {stored} executions");
    result
}

/// Opens the subscribers in a child process, measures this process's RSS with them connected, and has the child
/// time deliveries.
async fn sse(options: &Options, url: &str, trigger_url: &str, idle_rss: u64) -> Vec<Row> {
    let executable = std::env::current_exe().expect("the bench knows its own path");
    let mut child = tokio::process::Command::new(executable)
        .args([
            "sse-clients",
            url,
            &options.subscribers.to_string(),
            &options.sse_triggers.to_string(),
            trigger_url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bench can start itself as the SSE client");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
    let ready = lines.next_line().await.ok().flatten();
    assert_eq!(ready.as_deref(), Some("ready"), "the SSE child could not connect its subscribers");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected_rss = rss_kib();
    stdin.write_all(b"go\n").await.expect("the child reads its stdin");
    let report: Value = lines
        .next_line()
        .await
        .ok()
        .flatten()
        .and_then(|line| serde_json::from_str(&line).ok())
        .expect("the SSE child reports JSON");
    let _ = child.wait().await;
    let per_client = connected_rss.saturating_sub(idle_rss) as f64 / options.subscribers as f64;
    let number = |key: &str| report[key].as_f64().unwrap_or(f64::NAN);
    let mut delivery = row(
        if url == trigger_url {
            format!("(e) {} subscribers on `/api/events/stream`: trigger → delivery", options.subscribers)
        } else {
            format!(
                "(e) {} subscribers on `/api/events/stream` of another instance than the triggers': trigger → delivery",
                options.subscribers
            )
        },
        format!(
            "{} of {} deliveries, max {:.1} ms",
            report["received"],
            report["expected"],
            number("max_ms")
        ),
        "p99 < 50 ms",
    );
    delivery.p50 = format!("{:.2} ms", number("p50_ms"));
    delivery.p99 = format!("{:.2} ms", number("p99_ms"));
    vec![
        delivery,
        row(
            format!("(f) RSS with {} SSE clients connected", options.subscribers),
            format!("{} ({:.1} KiB per client)", kib(connected_rss), per_client),
            "≤ 20 KiB per client",
        ),
    ]
}

/// Complete lifecycles (queued → running → succeeded, 10 log lines each): clients trigger for `duration`, then the
/// clock runs until every one of them has succeeded.
async fn lifecycles(
    servers: &[RunningServer],
    urls: &Arc<[String]>,
    clients: usize,
    duration: Duration,
) -> Row {
    let server = &servers[0];
    let finished_before = finished(servers);
    let writer_before = server.dashboard.store().stats();
    let started = Instant::now();
    let trigger_urls = Arc::clone(urls);
    let body = json!({"function": QUICK_FUNCTION, "input": {"steps": 10, "delay_ms": 0}});
    let triggered =
        load::run(clients, Duration::ZERO, duration, StatusCode::ACCEPTED, move |client, index| {
            client.post(format!("{}/api/executions", trigger_urls[index % trigger_urls.len()])).json(&body)
        })
        .await;
    drain(servers).await;
    let elapsed = started.elapsed();
    let completed = finished(servers) - finished_before;
    let mut result = row(
        "(b) complete lifecycles (trigger → succeeded, 10 log lines)",
        format!(
            "{:.0} /s ({completed} in {:.1} s; {} trigger errors)",
            completed as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            triggered.errors
        ),
        "≥ 5,000 /s",
    );
    result.p50 = format!("trigger {}", ms(triggered.quantile(0.5)));
    result.p99 = format!("trigger {}", ms(triggered.quantile(0.99)));
    result.writer = writer_note(server, &writer_before, elapsed);
    result
}

/// Log reports of 100 lines through the callback route, one running execution per client (up to the engine's limit
/// of running executions; past it, clients share them).
async fn log_ingestion(server: &RunningServer, url: &str, clients: usize, duration: Duration) -> Row {
    let setup = load::client();
    let mut targets = Vec::new();
    for _ in 0..clients.min(ENGINE_MAX_RUNNING) {
        let answer = setup
            .post(format!("{url}/api/executions"))
            .json(&json!({"function": QUICK_FUNCTION, "input": {"hang": true}}))
            .send()
            .await
            .expect("the trigger is answered");
        let execution: Value = answer.json().await.expect("an execution");
        let id: ExecutionId =
            execution["id"].as_str().and_then(|id| id.parse().ok()).expect("the trigger answers an id");
        wait_until_running(server, id).await;
        targets.push((id, server.dashboard.callback_token(id)));
    }
    let lines: Vec<Value> = (1..=LINES_PER_BATCH)
        .map(|n| json!({"message": format!("line {n}: the agent reports what it is doing, at some length")}))
        .collect();
    let body = Arc::new(serde_json::to_vec(&json!({"lines": lines})).expect("JSON serializes"));
    let requests = Arc::new(targets.clone());
    let base = url.to_owned();
    let (writer_before, started) = (server.dashboard.store().stats(), Instant::now());
    let ingested = load::run(clients, WARMUP, duration, StatusCode::OK, move |client, index| {
        let (id, token) = &requests[index % requests.len()];
        client
            .post(format!("{base}/api/executions/{id}/logs"))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.as_ref().clone())
    })
    .await;
    let writer = writer_note(server, &writer_before, started.elapsed());
    for (id, _) in &targets {
        let _ = setup.post(format!("{url}/api/executions/{id}/cancel")).send().await;
    }
    let mut result = load_row(
        "(c) log ingestion, `POST …/logs` with 100 lines per report",
        &ingested,
        "lines",
        LINES_PER_BATCH as f64,
        "≥ 200,000 lines/s",
    );
    result.writer = writer;
    result
}

/// The status page (`GET /executions/{id}`) of an execution with [`TRANSCRIPT_ITEMS`] transcript items — messages,
/// reasoning, commands with output and file changes with diffs, seeded straight through the store — fetched by one
/// client: its latency, and the bytes of one page (the page holds the first 200 items; the rest are a link away).
async fn transcript_page(options: &Options, server: &RunningServer) -> Vec<Row> {
    let store = server.dashboard.store_for_seeding();
    let function = store
        .get_function(&FunctionKey::parse(QUICK_FUNCTION))
        .await
        .expect("the store answers")
        .expect("the bench function exists");
    let execution = NewExecution::of(&function, json!({"steps": 0, "transcript": true}));
    let id = store.create_execution(execution).await.expect("the store takes the execution").value.id;
    let mut batch = Vec::new();
    for index in 0..TRANSCRIPT_ITEMS {
        batch.push(transcript_item(index));
        if batch.len() == 500 {
            store.upsert_items(id, std::mem::take(&mut batch)).await.expect("the store takes the items");
        }
    }
    store.upsert_items(id, batch).await.expect("the store takes the items");

    let page_url = format!("{}/executions/{id}", server.url());
    let client = load::client();
    let page = client.get(&page_url).send().await.expect("the page answers");
    assert_eq!(page.status(), StatusCode::OK, "the status page");
    let bytes = page.bytes().await.expect("the page is read").len();
    let duration = Duration::from_secs_f64(options.seconds);
    let fetched =
        load::run(1, WARMUP, duration, StatusCode::OK, move |client, _| client.get(&page_url)).await;
    let measure = format!("(g) `GET /executions/{{id}}` with {TRANSCRIPT_ITEMS} transcript items, 1 client");
    vec![
        load_row(&measure, &fetched, "req", 1.0, "p99 < 200 ms"),
        row(
            "(g′) bytes of that page (200 items shown, the rest paged)",
            format!("{} KiB", bytes / 1024),
            "paged",
        ),
    ]
}

/// Approvals in (h).
const APPROVALS: usize = 1000;

/// (h): [`APPROVALS`] approvals asked by the demo backend and approved over the API, one at a time.
async fn approval_round_trips(url: &str) -> Vec<Row> {
    let trips = approvals::round_trips(url, APPROVALS).await;
    let figure = |measure: String, samples: &[Duration]| {
        let (p50, p99) = approvals::quantiles(samples);
        Row {
            p50: ms(p50),
            p99: ms(p99),
            ..row(measure, format!("{} approvals", samples.len()), "p99 < 50 ms")
        }
    };
    vec![
        figure(
            "(h) an agent's approval request → `approval.requested` on an SSE client of `/api/events/stream`"
                .into(),
            &trips.to_subscriber,
        ),
        figure(
            "(h′) `POST /api/approvals/{id}` → the agent has the decision (its next request; an upper bound)"
                .into(),
            &trips.to_agent,
        ),
    ]
}

/// Failed executions notified in (i), and schedule fires timed in (j).
const NOTIFIED: usize = 200;
const FIRES: usize = 20;

async fn automation() -> Vec<Row> {
    let figures = automation::run(NOTIFIED, FIRES).await;
    let figure = |measure: &str, samples: &[Duration], unit: &str, target: &str| {
        let (p50, p99) = approvals::quantiles(samples);
        Row { p50: ms(p50), p99: ms(p99), ..row(measure, format!("{} {unit}", samples.len()), target) }
    };
    vec![
        figure(
            "(i) `execution.failed` → its signed notification at a local receiver (outbox, claim, sign, POST)",
            &figures.notified,
            "notifications",
            "p99 < 100 ms",
        ),
        figure(
            "(j) a schedule's due time → its execution created (every second, SQLite)",
            &figures.fired,
            "fires",
            "p99 < 50 ms",
        ),
    ]
}

/// Items in the transcript of (g).
const TRANSCRIPT_ITEMS: usize = 10_000;

/// The `index`th item of (g)'s transcript: by turns a message, reasoning, a command with output, a file change.
fn transcript_item(index: usize) -> NewItem {
    let body = match index % 4 {
        0 => ItemBody::Message {
            role: MessageRole::Agent,
            text: format!(
                "Step {index}: I looked at the failing test and will fix the off-by-one in the parser."
            ),
        },
        1 => ItemBody::Reasoning {
            text: "The loop stops one short when the input ends with a newline.".into(),
        },
        2 => ItemBody::Command {
            command: "cargo test -p parser".into(),
            cwd: Some("/srv/repo".into()),
            output: "running 42 tests\n".repeat(8),
            exit_code: Some(0),
        },
        _ => ItemBody::FileChange {
            changes: vec![FileChange {
                path: "src/parser.rs".into(),
                kind: FileChangeKind::Update,
                diff: Some(
                    "@@ -10,3 +10,3 @@\n-    for i in 0..n - 1 {\n+    for i in 0..n {\n     parse(i);\n"
                        .into(),
                ),
            }],
        },
    };
    NewItem::new(format!("item-{index}"), ItemStatus::Completed, body).expect("a valid item")
}

/// Fills the store up to `size` executions straight through the store API (as queued executions of the bench
/// function, with their events); `None` when that would take longer than `budget`.
async fn seed(options: &Options, server: &RunningServer, size: u64, budget: Duration) -> Option<String> {
    const TASKS: u64 = 64;
    let store = server.dashboard.store_for_seeding();
    let have = store.count_by_status().await.expect("the store counts").total();
    if have >= size {
        return Some("already there".into());
    }
    let function = store
        .get_function(&FunctionKey::parse(QUICK_FUNCTION))
        .await
        .expect("the store answers")
        .expect("the bench function exists");
    let missing = size - have;
    if let Some(url) = &options.postgres {
        let started = Instant::now();
        crate::postgres::seed_finished(url, &function, missing).await;
        let rate = missing as f64 / started.elapsed().as_secs_f64();
        return Some(format!("seeded {missing} finished ones in SQL at {rate:.0}/s"));
    }
    let started = Instant::now();
    // A probe of 1% (at least 2,000) tells whether the rest fits the budget.
    let probe = missing.min((missing / 100).max(2_000));
    seed_n(&store, &function, probe, TASKS).await;
    let rate = probe as f64 / started.elapsed().as_secs_f64();
    let projected = Duration::from_secs_f64((missing - probe) as f64 / rate);
    if projected > budget {
        eprintln!("seeding {size}: {rate:.0}/s, {projected:.0?} projected; skipped");
        return None;
    }
    eprintln!("seeding {missing} executions at about {rate:.0}/s ({projected:.0?})…");
    seed_n(&store, &function, missing - probe, TASKS).await;
    Some(format!("seeded {missing} at {:.0}/s", missing as f64 / started.elapsed().as_secs_f64()))
}

async fn seed_n(store: &Arc<dyn DashboardStore>, function: &dashboard_core::Function, n: u64, tasks: u64) {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let store = Arc::clone(store);
            let function = function.clone();
            let count = n / tasks + u64::from(task < n % tasks);
            tokio::spawn(async move {
                for index in 0..count {
                    let execution = NewExecution::of(&function, json!({"steps": 0, "seed": index}));
                    store.create_execution(execution).await.expect("the store takes the execution");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a seeding task does not panic");
    }
}

/// Waits until nothing is queued or running; how long that took. On a store of its own, the engine's counts say
/// (seeded executions that no engine ever queued don't count); on a shared store, the queue is the store's.
async fn drain(servers: &[RunningServer]) -> Duration {
    let started = Instant::now();
    loop {
        let busy = if servers[0].dashboard.is_clustered() {
            let counts = servers[0].dashboard.store().count_by_status().await.expect("the store counts");
            [ExecutionStatus::Queued, ExecutionStatus::Running, ExecutionStatus::Waiting]
                .into_iter()
                .map(|status| counts.get(status))
                .sum::<u64>()
        } else {
            let engine = &servers[0].dashboard;
            (engine.queue_depth() + engine.running_count()) as u64
        };
        if busy == 0 {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the engine did not drain in 10 minutes");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// How long until `GET /metrics` shows no SSE client (at most a minute).
async fn departed_streams_released(client: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let metrics = client.get(format!("{url}/metrics")).send().await.expect("GET /metrics");
        let text = metrics.text().await.expect("the metrics text");
        let streams = text
            .lines()
            .find_map(|line| line.strip_prefix("dashboard_sse_clients "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .expect("the dashboard_sse_clients gauge");
        if streams == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

async fn wait_until_running(server: &RunningServer, id: ExecutionId) {
    for _ in 0..5_000 {
        let execution = server.dashboard.store().get_execution(id).await.expect("the store answers");
        if execution.is_some_and(|execution| execution.status == ExecutionStatus::Running) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("execution {id} did not start");
}

/// Executions that reached a terminal status since the engines started, on every instance.
fn finished(servers: &[RunningServer]) -> u64 {
    servers
        .iter()
        .flat_map(|server| server.dashboard.metrics().status_counts())
        .filter(|count| count.status.is_terminal())
        .map(|count| count.count)
        .sum()
}

/// This process's resident set size in KiB, from `/proc/self/status` (0 where there is none).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn kib(value: u64) -> String {
    format!("{:.1} MiB", value as f64 / 1024.0)
}

/// The writer's work since `before`: the share of `elapsed` it spent committing, how often, and in what groups.
fn writer_note(server: &RunningServer, before: &StoreStats, elapsed: Duration) -> String {
    let after = server.dashboard.store().stats();
    let commits = after.commit_seconds.count.saturating_sub(before.commit_seconds.count);
    if commits == 0 {
        // The in-memory store has no writer.
        return String::new();
    }
    let busy = after.commit_seconds.sum - before.commit_seconds.sum;
    let changes = after.batch_size.sum - before.batch_size.sum;
    format!(
        "busy {:.0}%, {commits} commits of {:.2} ms, {:.1} changes each",
        busy / elapsed.as_secs_f64() * 100.0,
        busy / commits.max(1) as f64 * 1000.0,
        changes / commits.max(1) as f64
    )
}

fn commits(seconds: &HistogramSnapshot, batch: &HistogramSnapshot) -> String {
    let count = seconds.count.max(1) as f64;
    format!(
        "{} commits, mean {:.2} ms, mean batch {:.1} changes",
        seconds.count,
        seconds.sum / count * 1000.0,
        batch.sum / batch.count.max(1) as f64
    )
}

fn render(options: &Options, rows: &[Row]) -> String {
    let mut text = String::new();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(
        text,
        "\n## dashboard-bench: {} clients, {} s per phase, {cores} cores\n",
        options.clients, options.seconds
    );
    text.push_str("| measure | result | p50 | p99 | target | store writer during the phase |\n");
    text.push_str("|---|---|---|---|---|---|\n");
    for row in rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            row.measure, row.result, row.p50, row.p99, row.target, row.writer
        );
    }
    text
}
