//! A PostgreSQL server of the test's own, made and run by `scripts/postgres` in a folder of the test, which the test
//! may stop and start again (an outage of the database); stopped when dropped, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::instance::free_port;
use super::postgres_required;

/// The script that makes, starts and stops throwaway servers.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres");

/// A running (or stopped) server of the test's own.
pub struct OwnPostgres {
    dir: PathBuf,
    /// The URL of its `postgres` superuser.
    pub url: String,
    is_running: bool,
}

impl OwnPostgres {
    /// Makes a server in `dir` (a folder that does not exist yet) and starts it on a free port of 127.0.0.1. `None`,
    /// having printed why, when the PostgreSQL binaries are missing and neither `CI` nor
    /// `DASHBOARD_REQUIRE_POSTGRES=1` requires them.
    pub fn start(dir: &Path) -> Option<Self> {
        if let Some(why) = missing_binaries() {
            assert!(!postgres_required(), "{why}, and CI or DASHBOARD_REQUIRE_POSTGRES=1 requires them");
            eprintln!("skipped: {why} (install Debian's postgresql, or set DASHBOARD_PG_BIN)");
            return None;
        }
        let port = free_port().to_string();
        let printed = script(&["start", &dir.display().to_string(), &port]);
        let url = printed.lines().last().unwrap_or("").trim().to_owned();
        assert!(url.starts_with("postgres://"), "scripts/postgres start printed no URL: {printed:?}");
        Some(Self { dir: dir.to_owned(), url, is_running: true })
    }

    /// Stops the server (a fast shutdown: connections are cut, what was committed stays).
    pub fn stop(&mut self) {
        script(&["stop", &self.dir.display().to_string()]);
        self.is_running = false;
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn start_again(&mut self) {
        script(&["start", &self.dir.display().to_string()]);
        self.is_running = true;
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.is_running {
            let _ = Command::new(SCRIPT).args(["stop", &self.dir.display().to_string()]).output();
        }
    }
}

/// Why no server can be made here, if it cannot: the binaries `scripts/postgres` looks for are missing.
fn missing_binaries() -> Option<String> {
    if let Ok(bin) = std::env::var("DASHBOARD_PG_BIN") {
        let found = Path::new(&bin).join("pg_ctl").is_file();
        return (!found).then(|| format!("no pg_ctl in DASHBOARD_PG_BIN={bin}"));
    }
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().any(|version| version.path().join("bin/pg_ctl").is_file()))
        .unwrap_or(false);
    (!installed).then(|| "no PostgreSQL binaries in /usr/lib/postgresql/*/bin".to_owned())
}

/// Runs `scripts/postgres` with `args`; what it printed. Panics, with what it said, when it fails.
fn script(args: &[&str]) -> String {
    let output = Command::new(SCRIPT).args(args).output().expect("scripts/postgres runs");
    assert!(
        output.status.success(),
        "scripts/postgres {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
