//! The settings of every database session the store opens — the pool's and the listener's — so that a session that
//! stops answering cannot hold up the other instances for long.
//!
//! An instance that froze or lost its network in the middle of a transaction sends no FIN or RST: without these, its
//! session stays "idle in transaction" for hours holding the `event_counter` row or the claim lock, and every other
//! instance's writes wait behind it. With them, the server ends such a session after
//! [`IDLE_IN_TRANSACTION_TIMEOUT`] (its locks go with it), notices a vanished client by its own TCP keep-alives, and a
//! statement that waits for a lock longer than [`LOCK_TIMEOUT`], or runs longer than [`STATEMENT_TIMEOUT`], is
//! cancelled: the caller hears `StoreError::Unavailable` (a 503) saying what it waited for, instead of hanging.
//!
//! They are sent as the connection's startup `options` (`-c name=value`), ahead of any the URL gives, so that the
//! URL's own choice wins. What must not be cut — migrating the schema, importing a SQLite file — lifts them for its
//! own transaction with `SET LOCAL`.

use std::time::Duration;

/// How long a session may stay idle inside a transaction before the server ends it. The store never waits for
/// anything outside the database in the middle of a transaction (the SQLite import lifts it), so only a client that
/// froze or vanished reaches it.
pub(crate) const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement may wait for a lock (a row another transaction changes, an advisory lock).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one statement may run.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's keep-alive probes on the session's socket: idle time before the first, the time between two, and how
/// many unanswered ones end the session (a vanished client is noticed within about a minute).
const SERVER_KEEPALIVES: [(&str, u64); 3] =
    [("tcp_keepalives_idle", 30), ("tcp_keepalives_interval", 10), ("tcp_keepalives_count", 3)];

/// The startup options of every session of the store: the timeouts above and the server's keep-alives.
pub(crate) fn server_options() -> String {
    let timeouts = [
        ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT),
        ("lock_timeout", LOCK_TIMEOUT),
        ("statement_timeout", STATEMENT_TIMEOUT),
    ];
    let timeouts = timeouts.iter().map(|(name, value)| format!("-c {name}={}ms", value.as_millis()));
    let keepalives = SERVER_KEEPALIVES.iter().map(|(name, value)| format!("-c {name}={value}"));
    timeouts.chain(keepalives).collect::<Vec<_>>().join(" ")
}

/// Adds [`server_options`] to `config`, before the options the URL gave (a later `-c` wins, so the URL's do).
pub(crate) fn apply_server_options(config: &mut tokio_postgres::Config) {
    let options = match config.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{} {given}", server_options()),
        _ => server_options(),
    };
    config.options(options);
}

/// A duration as an operator reads it in a message: `5 s`, `250 ms`.
pub(crate) fn shown(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_options_come_first_and_the_urls_win() {
        let mut config: tokio_postgres::Config = "postgres://u@h/d".parse().expect("a URL");
        apply_server_options(&mut config);
        let options = config.get_options().expect("options");
        for setting in [
            "-c idle_in_transaction_session_timeout=10000ms",
            "-c lock_timeout=5000ms",
            "-c statement_timeout=30000ms",
            "-c tcp_keepalives_idle=30",
            "-c tcp_keepalives_interval=10",
            "-c tcp_keepalives_count=3",
        ] {
            assert!(options.contains(setting), "{setting} is missing: {options}");
        }

        let mut config: tokio_postgres::Config =
            "postgres://u@h/d?options=-c%20statement_timeout%3D0".parse().expect("a URL with options");
        apply_server_options(&mut config);
        let options = config.get_options().expect("options");
        assert!(options.starts_with("-c idle_in_transaction_session_timeout="), "{options}");
        assert!(
            options.ends_with(" -c statement_timeout=0"),
            "the URL's own comes last, so it wins: {options}"
        );
        assert_eq!((shown(LOCK_TIMEOUT), shown(Duration::from_millis(250))), ("5 s".into(), "250 ms".into()));
    }
}
