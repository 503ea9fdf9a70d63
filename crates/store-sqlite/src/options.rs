//! The settings of a [`SqliteStore`](crate::SqliteStore): how hard a commit works to reach the disk, how many readers.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::schema::DEFAULT_BUSY_TIMEOUT;

/// How far a commit goes before the store answers: SQLite's `synchronous` setting, in WAL mode.
///
/// Either way, a commit is in the write-ahead log before the caller hears of it, so **a crash of the process**
/// (`kill -9`, a panic, the OOM killer) loses nothing that was answered. They differ on **a crash of the machine**
/// (power loss, kernel panic):
///
/// - [`Synchronous::Full`] (the default) waits for the log to be flushed to the disk (`fsync`) at every commit, so an
///   answered change survives a power loss too. Group commit shares one flush among every change queued meanwhile.
/// - [`Synchronous::Normal`] flushes only at checkpoints: commits are faster, and the file stays consistent after a
///   power loss, but the last changes before it (those since the last checkpoint) may be lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Flush the write-ahead log at every commit: survives a power loss.
    #[default]
    Full,
    /// Flush at checkpoints only: survives a crash of the process, may lose the last commits on a power loss.
    Normal,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    pub(super) fn pragma_value(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }

    /// The setting as written in configuration: `full` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `synchronous` setting that is neither `full` nor `normal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a synchronous setting; expected `full` or `normal`")]
pub struct UnknownSynchronous(pub String);

impl FromStr for Synchronous {
    type Err = UnknownSynchronous;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(UnknownSynchronous(text.to_owned())),
        }
    }
}

/// How a [`SqliteStore`](crate::SqliteStore) is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How far a commit goes before the store answers (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// How many connections serve reads at once (default 4, at least 1). Reads never wait for the writer.
    pub readers: usize,
    /// How long to wait for a lock held by another process (an `sqlite3` shell, a backup) before failing (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { synchronous: Synchronous::default(), readers: 4, busy_timeout: DEFAULT_BUSY_TIMEOUT }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_parses_its_two_names() {
        assert_eq!("full".parse(), Ok(Synchronous::Full));
        assert_eq!("NORMAL".parse(), Ok(Synchronous::Normal));
        assert!("off".parse::<Synchronous>().is_err(), "OFF would lose answered changes on a crash");
        for setting in [Synchronous::Full, Synchronous::Normal] {
            assert_eq!(setting.as_str().parse(), Ok(setting));
        }
    }
}
