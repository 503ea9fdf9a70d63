//! A run's log on its way to the store: the writer that stores a backend's lines and transcript items in batches
//! (through `Inner::append_logs` and `Inner::upsert_items`, held while the store cannot take them), its session id at
//! once and its latest diff at the end, and the per-execution log limit.

use std::iter::Peekable;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::vec;

use dashboard_backend_api::{MAX_DIFF_BYTES, RunEntry, bound_diff};
use dashboard_core::{ExecutionId, LogStream, NewItem, NewLogLine};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::item_budget::{Admission, ItemBudget};
use crate::inner::Inner;

/// The most lines stored in one append.
pub(super) const LOG_BATCH_LINES: usize = 512;
/// The most items stored in one upsert: fewer than lines, since an item may hold far more text than a line.
const ITEM_BATCH: usize = 128;
/// How long the end of a run waits for a backend's tasks to drop their log sinks.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long a batch of log lines may wait for more lines before it is stored: long enough that a fast backend's
/// lines share one write (usually the final one), short enough that nobody watching the log notices.
const LOG_GATHER: Duration = Duration::from_millis(5);

/// How much log one execution may keep: lines and bytes of text, counted over the lines its backend (or remote
/// agent) writes, and transcript items. The engine's own opening and closing lines and the limits' markers are not
/// counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogLimit {
    /// The most lines (default 100,000).
    pub(crate) max_lines: u64,
    /// The most bytes of text (default 64 MiB).
    pub(crate) max_bytes: u64,
    /// The most distinct transcript items (default 100,000); see [`ItemBudget`].
    pub(crate) max_items: u64,
    /// The most bytes of transcript items, each as it now stands (default 64 MiB); see [`ItemBudget`].
    pub(crate) max_item_bytes: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        Self {
            max_lines: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_items: 100_000,
            max_item_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What is left of one execution's [`LogLimit`]. Past it, one `system` line says so and every later line is dropped;
/// the run goes on.
#[derive(Debug)]
pub(crate) struct LogBudget {
    limit: LogLimit,
    n_lines: u64,
    n_bytes: u64,
    is_spent: bool,
}

impl LogBudget {
    pub(crate) fn new(limit: LogLimit) -> Self {
        Self { limit, n_lines: 0, n_bytes: 0, is_spent: false }
    }

    /// Keeps the lines that fit, in order. The first line that does not fit is replaced by the marker line; it and
    /// every line after it, now and later, are dropped. Returns what it charged, for [`refund`](Self::refund) should
    /// the lines not be stored.
    pub(crate) fn admit(&mut self, lines: &mut Vec<NewLogLine>) -> Charge {
        let mut charge = Charge::default();
        if self.is_spent {
            lines.clear();
            return charge;
        }
        for index in 0..lines.len() {
            let n_bytes = lines[index].message.len() as u64;
            let is_over_lines = self.n_lines >= self.limit.max_lines;
            let is_over_bytes = self.n_bytes.saturating_add(n_bytes) > self.limit.max_bytes;
            if is_over_lines || is_over_bytes {
                self.is_spent = true;
                charge.is_spending = true;
                let limit = if is_over_lines {
                    format!("{} lines", self.limit.max_lines)
                } else {
                    format!("{} bytes", self.limit.max_bytes)
                };
                lines.truncate(index);
                lines.push(NewLogLine::new(
                    LogStream::System,
                    format!("log limit of {limit} reached: the rest of this execution's log is dropped"),
                ));
                return charge;
            }
            self.n_lines += 1;
            self.n_bytes += n_bytes;
            charge.n_lines += 1;
            charge.n_bytes += n_bytes;
        }
        charge
    }

    /// Gives back what an admission charged, when the lines it let through were not stored (a report the store
    /// refused): the agent's retry of them counts once, and a marker line among them will be written again. Lines
    /// admitted by others meanwhile stay counted; one that found the budget spent by this admission stays dropped.
    pub(crate) fn refund(&mut self, charge: Charge) {
        self.n_lines = self.n_lines.saturating_sub(charge.n_lines);
        self.n_bytes = self.n_bytes.saturating_sub(charge.n_bytes);
        if charge.is_spending {
            self.is_spent = false;
        }
    }
}

/// What one [`LogBudget::admit`] counted: lines and bytes, and whether it spent the budget (wrote the marker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Charge {
    n_lines: u64,
    n_bytes: u64,
    is_spending: bool,
}

/// Lines and items on their way to the store, each kind in the order it was reported; at the run's end, also the
/// run's latest diff.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) lines: Vec<NewLogLine>,
    pub(super) items: Vec<NewItem>,
    /// The latest diff the backend reported (cut to [`MAX_DIFF_BYTES`]); only in the batch handed back at the end.
    pub(super) diff: Option<String>,
    /// Whether an item let through was last reported in progress; only in the batch handed back at the end.
    pub(super) has_open_items: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.items.is_empty()
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= LOG_BATCH_LINES || self.items.len() >= ITEM_BATCH
    }
}

/// Stores a run's log lines and transcript items in batches as they come, and tells the bus after each batch.
///
/// A batch is gathered for at most [`LOG_GATHER`] after its first entry (or until it is full), so that a backend that
/// writes many lines at once costs one write, not one per wake-up. Each batch stores its lines first, then its items,
/// and a line reported after an item held waits for the next batch, so lines and items are stored in the order they
/// were reported. Entries still held when the backend has dropped its sink and the run has ended go back to the run,
/// which stores them with the final status in one write. A batch the store cannot take is retried until it can:
/// meanwhile the backend waits on its full channel.
pub(super) struct LogWriter {
    pub(super) inner: Arc<Inner>,
    pub(super) execution_id: ExecutionId,
    /// The execution's log limit, shared with the remote agent's reports.
    pub(super) budget: Arc<Mutex<LogBudget>>,
    /// The execution's item limit; only the run's backend reports items.
    pub(super) items: ItemBudget,
    /// Cancelled by the run once the backend has returned.
    pub(super) run_ended: CancellationToken,
    /// The latest diff the backend reported, kept for the final status.
    pub(super) diff: Option<String>,
    /// Whether the log has said that a diff was cut (once per run is enough).
    pub(super) has_said_diff_cut: bool,
    /// A session id the backend reported and the store has not taken yet.
    pub(super) session_id: Option<String>,
    /// Asks to store at once everything the backend has reported so far, answering when it is stored: the approval
    /// gate's, so that an approval's item comes after the items the backend reported before it asked.
    pub(super) flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

impl LogWriter {
    /// Runs until every sink is gone (or, after the run has ended, until [`LOG_DRAIN_LIMIT`]); returns what is not
    /// stored yet.
    pub(super) async fn write(mut self, mut receiver: mpsc::Receiver<RunEntry>) -> Batch {
        let mut batch = Batch::default();
        let mut incoming: Vec<RunEntry> = Vec::with_capacity(LOG_BATCH_LINES);
        // When the batch held now must be stored; `None` while it is empty.
        let mut store_by: Option<Instant> = None;
        let run_ended = self.run_ended.clone();
        let drain_limit = async {
            run_ended.cancelled().await;
            tokio::time::sleep(LOG_DRAIN_LIMIT).await;
        };
        tokio::pin!(drain_limit);
        let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let room = LOG_BATCH_LINES.saturating_sub(batch.lines.len() + batch.items.len()).max(1);
            let mut is_drained = false;
            tokio::select! {
                received = receiver.recv_many(&mut incoming, room) => {
                    if received == 0 {
                        break;
                    }
                }
                Some(done) = self.flushes.recv() => {
                    // Everything sent before the request is in the channel now: take it all, and store it below.
                    while let Ok(entry) = receiver.try_recv() {
                        incoming.push(entry);
                    }
                    flushed.push(done);
                }
                () = sleep_until_some(store_by) => {}
                () = &mut drain_limit => {
                    log::warn!(
                        "execution {}: a backend task still held its log sink; later lines are dropped",
                        self.execution_id
                    );
                    receiver.close();
                    while let Ok(entry) = receiver.try_recv() {
                        incoming.push(entry);
                    }
                    is_drained = true;
                }
            }
            if !incoming.is_empty() {
                let mut entries = std::mem::take(&mut incoming).into_iter().peekable();
                // A line reported after an item held waits until the batch is stored: a batch stores its lines,
                // then its items.
                while self.admit(&mut entries, &mut batch) {
                    self.store(std::mem::take(&mut batch)).await;
                    store_by = None;
                }
                if !batch.is_empty() {
                    store_by.get_or_insert_with(|| Instant::now() + LOG_GATHER);
                }
                // The session is stored at once, not with the batch: a continue needs it, and it comes once a run.
                if let Some(session_id) = self.session_id.take()
                    && let Err(error) = self.inner.set_session_id(self.execution_id, &session_id).await
                {
                    log::error!("execution {}: could not store the session id: {error}", self.execution_id);
                }
            }
            if is_drained {
                break;
            }
            let is_due = store_by.is_some_and(|at| at <= Instant::now());
            if batch.is_full() || is_due || !flushed.is_empty() {
                if !batch.is_empty() {
                    self.store(std::mem::take(&mut batch)).await;
                }
                store_by = None;
                for done in flushed.drain(..) {
                    // The asker may have stopped waiting: nothing to tell.
                    let _ = done.send(());
                }
            }
        }
        // Every sink is gone. Held entries wait for the run's end to go with the final status, but no longer than
        // they would have waited anyway (a detached run may wait hours for its report).
        if let Some(at) = store_by
            && !batch.is_empty()
        {
            tokio::select! {
                () = self.run_ended.cancelled() => {}
                () = tokio::time::sleep_until(at) => self.store(std::mem::take(&mut batch)).await,
            }
        }
        batch.diff = self.diff.take();
        batch.has_open_items = self.items.has_open();
        batch
    }

    /// Adds `entries` to `batch`, in order, up to a line that follows an item in the batch: lines cut and held to
    /// the execution's log limit, items bounded ([`NewItem::bounded`]: a backend may build one with any fields) and
    /// held to its item limits. `true` when it stopped at such a line, which must wait until the batch is stored, so
    /// that lines and items are stored in the order they were reported.
    fn admit(&mut self, entries: &mut Peekable<vec::IntoIter<RunEntry>>, batch: &mut Batch) -> bool {
        let mut lines = Vec::with_capacity(entries.len());
        let mut item_limit_line = None;
        let mut diff_cut_line = None;
        while let Some(entry) =
            entries.next_if(|entry| batch.items.is_empty() || !matches!(entry, RunEntry::Line(_)))
        {
            match entry {
                RunEntry::Line(mut line) => {
                    truncate_line(&mut line.message, self.inner.settings.max_log_line_bytes);
                    lines.push(line);
                }
                RunEntry::Item(item) => match item.bounded() {
                    Ok(item) => match self.items.admit(&item) {
                        Admission::Keep => batch.items.push(item),
                        Admission::Drop => {}
                        Admission::DropAndSay(message) => item_limit_line = Some(message),
                    },
                    Err(error) => log::warn!("execution {}: an item was dropped: {error}", self.execution_id),
                },
                RunEntry::Diff(diff) => {
                    let (diff, is_cut) = bound_diff(diff, MAX_DIFF_BYTES);
                    if is_cut && !self.has_said_diff_cut {
                        self.has_said_diff_cut = true;
                        diff_cut_line = Some(format!(
                            "the diff is longer than {MAX_DIFF_BYTES} bytes: it is kept cut at a line boundary"
                        ));
                    }
                    self.diff = Some(diff);
                }
                RunEntry::Session(session_id) => self.session_id = Some(session_id),
            }
        }
        self.budget.lock().expect("log budget lock poisoned").admit(&mut lines);
        batch.lines.append(&mut lines);
        // The marker is the engine's own line: the log limit does not count it.
        for message in [item_limit_line, diff_cut_line].into_iter().flatten() {
            batch.lines.push(NewLogLine::new(LogStream::System, message));
        }
        entries.peek().is_some()
    }

    async fn store(&self, batch: Batch) {
        let Batch { lines, items, .. } = batch;
        if !lines.is_empty()
            && let Err(error) = self.inner.append_logs(self.execution_id, lines, true).await
        {
            log::error!("execution {}: could not store log lines: {error}", self.execution_id);
        }
        if !items.is_empty()
            && let Err(error) = self.inner.upsert_items(self.execution_id, items, true).await
        {
            log::error!("execution {}: could not store transcript items: {error}", self.execution_id);
        }
    }
}

/// Sleeps until `at`, or for ever without it.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Cuts a line to at most `max_bytes` bytes on a character boundary, saying so at its end.
pub(crate) fn truncate_line(message: &mut String, max_bytes: usize) {
    const MARK: &str = " … [line cut]";
    if message.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes.saturating_sub(MARK.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut line = "é".repeat(100);
        truncate_line(&mut line, 64);
        assert!(line.len() <= 64 && line.ends_with("[line cut]"), "{line}");
        let mut short = "short".to_owned();
        truncate_line(&mut short, 64);
        assert_eq!(short, "short");
    }

    /// Feeds `batches` of lines of `n_bytes` bytes each through a budget; what is kept of each batch.
    fn check(limit: LogLimit, n_bytes: usize, batches: &[usize], expected: &[&[&str]]) {
        let mut budget = LogBudget::new(limit);
        let kept: Vec<Vec<String>> = batches
            .iter()
            .map(|n_lines| {
                let mut lines: Vec<NewLogLine> =
                    (0..*n_lines).map(|_| NewLogLine::new(LogStream::Stdout, "x".repeat(n_bytes))).collect();
                budget.admit(&mut lines);
                lines
                    .into_iter()
                    .map(|line| match line.stream {
                        LogStream::System => line.message,
                        _ => "line".to_owned(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(kept, expected, "{limit:?}, lines of {n_bytes} bytes, batches {batches:?}");
    }

    #[test]
    fn past_the_log_limit_one_marker_is_kept_and_the_rest_dropped() {
        let lines = LogLimit { max_lines: 3, max_bytes: 1000, ..LogLimit::default() };
        let marker = "log limit of 3 lines reached: the rest of this execution's log is dropped";
        check(lines, 1, &[2, 2, 2], &[&["line", "line"], &["line", marker], &[]]);
        check(lines, 1, &[3], &[&["line", "line", "line"]]);
        check(lines, 1, &[3, 1, 1], &[&["line", "line", "line"], &[marker], &[]]);
        let bytes = LogLimit { max_lines: 100, max_bytes: 25, ..LogLimit::default() };
        let marker = "log limit of 25 bytes reached: the rest of this execution's log is dropped";
        check(bytes, 10, &[2, 2], &[&["line", "line"], &[marker]]);
        check(bytes, 30, &[1, 1], &[&[marker], &[]]);
    }

    #[test]
    fn a_refunded_admission_counts_nothing() {
        let mut budget = LogBudget::new(LogLimit { max_lines: 3, max_bytes: 1000, ..LogLimit::default() });
        let lines = |n_lines: usize| vec![NewLogLine::new(LogStream::Stdout, "x"); n_lines];
        let mut admitted = lines(4);
        let charge = budget.admit(&mut admitted);
        assert_eq!(admitted.len(), 4, "three lines and the marker");
        budget.refund(charge);
        let mut again = lines(4);
        budget.admit(&mut again);
        assert_eq!(again, admitted, "the same lines and marker once more");
        let mut after = lines(1);
        budget.admit(&mut after);
        assert!(after.is_empty());
    }
}
