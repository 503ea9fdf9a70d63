//! The listener: one connection of its own, outside the pool, that `LISTEN`s on the signals channel and hands each
//! notification to the store's sinks; it reconnects by itself when the connection drops (then signals
//! `Signal::Reconnected`).
//!
//! It never gives up while its store lives: a server that is down is tried again after 100 ms, then ever less often
//! up to every 2 s, and each outage is logged once when it begins and once when it ends. It stops when the store is
//! dropped (it holds the sinks weakly) or with the runtime.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use dashboard_store::{Signal, SignalSink, StoreError};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket};

use crate::PostgresOptions;
use crate::codec::unavailable;
use crate::signals::{self, CHANNEL};

/// The `application_name` of the listener's connection, which tells it apart in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "dashboard-listener";

/// The wait before the first retry after a failure; it doubles at each failure up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two attempts: a server that comes back is heard again within it.
const LAST_RETRY: Duration = Duration::from_secs(2);
/// How often a listener with nothing to hear looks whether its store is still there.
const STORE_CHECK: Duration = Duration::from_secs(5);
/// TCP keepalives: a server that vanished without closing the connection (a cut network, a dead machine) is noticed
/// within about `idle + interval × retries`, not the operating system's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// tokio-postgres's keep-alive idle time when the URL sets none.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// Who hears the signals: the store's list, shared with [`Cluster::subscribe`](dashboard_store::Cluster::subscribe).
type Sinks = Mutex<Vec<SignalSink>>;

/// Starts the listener task on the current tokio runtime; it runs until the store is dropped or the runtime ends.
/// Outside a runtime, or with a URL the driver cannot read, it logs why and starts nothing (the store's own connect
/// has refused such a URL already).
pub(crate) fn spawn(options: PostgresOptions, sinks: Arc<Sinks>) {
    let mut config = match options.url.parse::<Config>() {
        Ok(config) => config,
        Err(error) => {
            log::error!(
                "the PostgreSQL listener cannot start: the URL {} is not valid: {error}",
                crate::redacted_url(&options.url)
            );
            return;
        }
    };
    config.application_name(APPLICATION_NAME).connect_timeout(options.connect_timeout);
    // Keep-alives as the URL says, when it says anything.
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE && config.get_keepalives_interval().is_none() {
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
    }
    // The server's side too: a listener that vanished leaves no session behind for long.
    crate::session::apply_server_options(&mut config);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(run(config, options.connect_timeout, Arc::downgrade(&sinks)));
        }
        Err(error) => log::error!("the PostgreSQL listener cannot start outside a tokio runtime: {error}"),
    }
}

/// How one connection of the listener ended.
enum Ended {
    /// The store was dropped: the listener stops.
    StoreGone,
    /// The connection failed or was closed, for this reason.
    Lost(String),
}

/// Connects, listens and serves, again and again, until the store is gone. Connecting and listening together may take
/// `patience`: a server that accepts connections but does not answer is one that is down.
async fn run(config: Config, patience: Duration, sinks: Weak<Sinks>) {
    let mut delay = FIRST_RETRY;
    // Whether signals may have been missed since the store connected: a failed first attempt, or a lost connection.
    let mut missed = false;
    // When the current outage began; `None` while connected.
    let mut outage: Option<Instant> = None;
    loop {
        if sinks.strong_count() == 0 {
            return;
        }
        let listening = tokio::time::timeout(patience, connect_and_listen(&config))
            .await
            .unwrap_or_else(|_| Err(format!("the server did not answer within {patience:?}")));
        match listening {
            Ok(Listening { client, connection, early }) => {
                if let Some(began) = outage.take() {
                    log::info!("the PostgreSQL listener is connected again, after {:.1?}", began.elapsed());
                }
                delay = FIRST_RETRY;
                let reconnected = std::mem::take(&mut missed).then_some(Signal::Reconnected);
                if !reconnected.into_iter().chain(early).all(|signal| deliver(&sinks, signal)) {
                    return;
                }
                match serve(&client, connection, &sinks).await {
                    Ended::StoreGone => return,
                    Ended::Lost(reason) => {
                        log::warn!(
                            "the PostgreSQL listener lost its connection ({reason}); signals from other instances \
                             wait until it is back, and it keeps trying"
                        );
                        missed = true;
                        outage = Some(Instant::now());
                        // A connection that was fine until now is tried again at once.
                        continue;
                    }
                }
            }
            Err(reason) => {
                missed = true;
                if outage.is_none() {
                    log::warn!(
                        "the PostgreSQL listener cannot connect ({reason}); it keeps trying, at least every {:?}",
                        LAST_RETRY
                    );
                    outage = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(LAST_RETRY);
    }
}

/// A connection that has run `LISTEN` on the channel: every signal committed from now on reaches it. Returned with
/// the signals that arrived right behind the LISTEN's answer, which the caller delivers.
async fn connect_and_listen(config: &Config) -> Result<Listening, String> {
    let (client, mut connection) =
        config.connect(NoTls).await.map_err(|error| reason(error, "could not connect"))?;
    let statement = format!("LISTEN {CHANNEL}");
    let mut early = Vec::new();
    let listened = {
        let mut listen = pin!(client.batch_execute(&statement));
        // The connection is polled here by hand (not spawned), so it must be driven while the LISTEN is in flight.
        poll_fn(|context| {
            loop {
                match connection.poll_message(context) {
                    Poll::Ready(Some(Ok(AsyncMessage::Notification(notification)))) => {
                        early.extend(signal_of(&notification));
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(reason(error, "LISTEN failed"))),
                    Poll::Ready(None) => {
                        return Poll::Ready(Err("the server closed the connection".to_owned()));
                    }
                    Poll::Pending => break,
                }
            }
            listen.as_mut().poll(context).map_err(|error| reason(error, "LISTEN failed"))
        })
        .await
    };
    listened.map(|()| Listening { client, connection, early })
}

/// A connection that listens, and the signals that came with its LISTEN's answer.
struct Listening {
    client: Client,
    connection: Connection<Socket, NoTlsStream>,
    early: Vec<Signal>,
}

/// The signal a notification carries, if it is one on the channel that this build knows; a payload this build does
/// not know is a newer instance's, which nothing here needs.
fn signal_of(notification: &tokio_postgres::Notification) -> Option<Signal> {
    if notification.channel() == CHANNEL { signals::parse(notification.payload()) } else { None }
}

/// Hands every notification of the connection to the sinks until the connection ends or the store is gone. `client`
/// is borrowed only to be kept: the connection closes when its client is dropped.
async fn serve(
    _client: &Client,
    mut connection: Connection<Socket, NoTlsStream>,
    sinks: &Weak<Sinks>,
) -> Ended {
    let mut store_check = tokio::time::interval(STORE_CHECK);
    loop {
        // Both branches are cancel-safe: a message is taken from the connection only by a poll that returns it.
        tokio::select! {
            message = poll_fn(|context| connection.poll_message(context)) => match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if let Some(signal) = signal_of(&notification)
                        && !deliver(sinks, signal)
                    {
                        return Ended::StoreGone;
                    }
                }
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    log::debug!("the PostgreSQL listener's connection says: {}", notice.message());
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ended::Lost(reason(error, "the connection failed")),
                None => return Ended::Lost("the server closed the connection".to_owned()),
            },
            _ = store_check.tick() => {
                if sinks.strong_count() == 0 {
                    return Ended::StoreGone;
                }
            }
        }
    }
}

/// Calls every sink with `signal`; `false` when the store is gone. The list is copied first, so that a sink may
/// subscribe another without a deadlock.
fn deliver(sinks: &Weak<Sinks>, signal: Signal) -> bool {
    let Some(sinks) = sinks.upgrade() else { return false };
    // A sink that panicked while the list was locked left it whole: a poisoned lock is still usable.
    let sinks: Vec<SignalSink> = sinks.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for sink in &sinks {
        sink(signal.clone());
    }
    true
}

/// A driver error in a sentence, as the store says it.
fn reason(error: tokio_postgres::Error, what: &str) -> String {
    match unavailable(error, what) {
        StoreError::Unavailable { message, .. } => message,
        other => other.to_string(),
    }
}
