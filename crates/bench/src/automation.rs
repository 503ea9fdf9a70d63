//! Phases (i) and (j): notifications and schedules, on a dashboard of their own — a SQLite file in a temporary folder
//! and a config file with the demo backend, one signed notification and one schedule — so that their settings touch
//! none of the other phases.
//!
//! (i) From an execution's `execution.failed` event (its time, `data.event.ts` in the body) to the signed notification's
//! arrival at a receiver in this process: the outbox row written with the event, the sender woken by the bus, the
//! claim, the execution read, the body signed and posted. (j) From a schedule's due time to the creation of the
//! execution it fires (`created_at`): the fire loop's lateness. One process, one clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use dashboard_core::{Timestamp, now};
use dashboard_server::{InstanceId, ServerConfig, StoreSpec, config_file};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::load;

/// The function both phases use.
const FUNCTION: &str = "bench-automation";
/// The signing secret of the notification (the Standard Webhooks specification's example).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long the phase waits for what it started before it gives up (a fail-safe, not a measure).
const PATIENCE: Duration = Duration::from_secs(60);

/// The figures of both phases.
pub struct Figures {
    /// (i) event → notification at the receiver, one per failed execution.
    pub notified: Vec<Duration>,
    /// (j) due time → execution created, one per fire.
    pub fired: Vec<Duration>,
}

/// Fails `failures` executions one after another, each notified, and lets a schedule fire every second `fires` times.
pub async fn run(failures: usize, fires: usize) -> Figures {
    let folder = std::env::temp_dir().join(format!("dashboard-bench-automation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("a temporary folder");
    let arrivals: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let received = web::Data::new(Arc::clone(&arrivals));
    let receiver =
        HttpServer::new(move || App::new().app_data(received.clone()).route("/", web::post().to(take)))
            .workers(1)
            .bind((Ipv4Addr::LOCALHOST, 0))
            .expect("a port for the receiver");
    let receiver_url = format!("http://{}/", receiver.addrs()[0]);
    let receiver = receiver.run();
    let receiver_handle = receiver.handle();
    tokio::spawn(receiver);

    let config_path = folder.join("automation.toml");
    let config = format!(
        "[[backends]]\nname = \"demo\"\nkind = \"demo\"\n\n\
         [[functions]]\nname = \"{FUNCTION}\"\nbackend = \"demo\"\n\n\
         [[schedules]]\nfunction = \"{FUNCTION}\"\ncron = \"* * * * * *\"\ninput = {{ steps = 0 }}\noverlap = \"queue\"\n\n\
         [[notifications]]\nname = \"bench\"\nurl = \"{receiver_url}\"\non = [\"failed\"]\nsecret_env = \"BENCH_SECRET\"\n"
    );
    std::fs::write(&config_path, config).expect("the config file");
    let file =
        config_file::load_with_env(&config_path, &|name| (name == "BENCH_SECRET").then(|| SECRET.to_owned()))
            .expect("the config file reads");
    let server = dashboard_server::start(ServerConfig {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        store: StoreSpec::Sqlite(folder.join("automation.db")),
        instance_id: InstanceId::Named("bench-automation".into()),
        seed_example: false,
        retention_days: 0,
        config_file: Some(config_path.clone()),
        file: Some(file),
        public_url: Some("https://dashboard.example.test".into()),
        ..ServerConfig::default()
    })
    .await
    .expect("the automation dashboard starts");
    let url = server.url();
    let client = load::client();

    // (j) runs by itself meanwhile: the schedule fires every second from the start.
    for n in 0..failures {
        let trigger = json!({"function": FUNCTION, "input": {"steps": 0, "fail": true}});
        let answer = client.post(format!("{url}/api/executions")).json(&trigger).send().await;
        assert!(answer.is_ok_and(|answer| answer.status().is_success()), "trigger {n}");
        // One at a time: each figure is of a quiet sender, not of a queue.
        wait_until("the notification", || arrivals.lock().expect("arrivals").len() > n).await;
    }
    let notified = arrivals.lock().expect("arrivals").clone();

    let fired_events = async || -> Vec<Value> {
        let page: Value = client
            .get(format!("{url}/api/events?after=0&limit=1000"))
            .send()
            .await
            .expect("the events")
            .json()
            .await
            .expect("JSON");
        page["items"]
            .as_array()
            .map(|items| items.iter().filter(|event| event["kind"] == "schedule.fired").cloned().collect())
            .unwrap_or_default()
    };
    let started = std::time::Instant::now();
    let mut events = fired_events().await;
    while events.len() < fires {
        assert!(started.elapsed() < PATIENCE, "the schedule fired {} times", events.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
        events = fired_events().await;
    }
    let mut fired = Vec::new();
    for event in events.iter().take(fires) {
        let id = event["execution_id"].as_str().expect("the fired execution");
        let execution: Value = client
            .get(format!("{url}/api/executions/{id}"))
            .send()
            .await
            .expect("the execution")
            .json()
            .await
            .expect("JSON");
        let (Some(due), Some(created)) = (time_of(&event["data"]["due"]), time_of(&execution["created_at"]))
        else {
            continue;
        };
        fired.push(Duration::try_from(created - due).unwrap_or_default());
    }

    server.stop().await;
    receiver_handle.stop(false).await;
    let _ = std::fs::remove_dir_all(&folder);
    Figures { notified, fired }
}

/// The receiver: notes how long after its event each notification arrived.
async fn take(arrivals: web::Data<Arc<Mutex<Vec<Duration>>>>, body: web::Bytes) -> HttpResponse {
    let arrived = now();
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(event_at) = time_of(&body["data"]["event"]["ts"]) {
        let latency = Duration::try_from(arrived - event_at).unwrap_or_default();
        arrivals.lock().expect("arrivals").push(latency);
    }
    HttpResponse::NoContent().finish()
}

fn time_of(value: &Value) -> Option<Timestamp> {
    Timestamp::parse(value.as_str()?, &Rfc3339).ok()
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "{what} never came");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
