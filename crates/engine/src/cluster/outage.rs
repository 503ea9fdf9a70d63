//! The store's trouble with an instance's cluster work (claims, heartbeats, the relay of events), told in one log line
//! when it begins and one when it ends — not once per failed attempt, which come every second while it lasts.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::Instant;

/// The episode of failures going on, if any. It belongs to the work that began it: only that work's success ends it,
/// so one kind of work that keeps failing while another succeeds cannot make the log flap.
#[derive(Debug, Default)]
pub(super) struct Outage {
    episode: Mutex<Option<Episode>>,
}

#[derive(Debug)]
struct Episode {
    /// What failed first (`claiming work`, `the heartbeat`…).
    what: &'static str,
    began: Instant,
    failures: u64,
}

impl Outage {
    /// Records that `what` failed: the first failure of an episode is logged, the others counted.
    pub(super) fn failed(&self, what: &'static str, error: &dyn Display) {
        let mut episode = self.episode.lock().expect("outage lock poisoned");
        match episode.as_mut() {
            Some(episode) => episode.failures += 1,
            None => {
                log::error!("cluster: {what} failed: {error}; retrying until the store answers");
                *episode = Some(Episode { what, began: Instant::now(), failures: 1 });
            }
        }
    }

    /// Records that `what` succeeded: it ends the episode that `what` began.
    pub(super) fn succeeded(&self, what: &'static str) {
        let mut episode = self.episode.lock().expect("outage lock poisoned");
        if episode.as_ref().is_some_and(|episode| episode.what == what)
            && let Some(ended) = episode.take()
        {
            log::warn!(
                "cluster: {what} works again, after {} failed attempts of cluster work in {:.1} s",
                ended.failures,
                ended.began.elapsed().as_secs_f64()
            );
        }
    }
}
