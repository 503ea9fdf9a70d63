//! Counting a turn's usage from the thread totals Codex reports: within an execution a later report replaces an
//! earlier one, and a continued execution counts only its own turn — the total at its end minus the total when its
//! thread was resumed, so a budget never counts an earlier turn twice.

use serde_json::{Map, Value};

use super::notifications::ThreadUsage;

/// The usage of one execution, from the reports read so far.
#[derive(Debug)]
pub(crate) struct TurnUsage {
    /// Whether the thread was resumed, so its totals include earlier turns.
    is_resumed: bool,
    /// The thread's total before this execution's turn, once known; only for a resumed thread.
    baseline: Option<Value>,
    /// Whether a report arrived for a resumed thread with no way to tell its total before the turn.
    has_no_baseline: bool,
    /// The latest thread total.
    total: Option<Value>,
}

impl TurnUsage {
    /// The usage of a turn on a new thread (its totals are the turn's) or on a resumed one.
    pub(crate) fn new(is_resumed: bool) -> Self {
        Self { is_resumed, baseline: None, has_no_baseline: false, total: None }
    }

    /// Takes one report; `turn_id` is this execution's turn, when known yet.
    ///
    /// The first report of a resumed thread sets the baseline. Codex 0.169 replays the thread's usage when it is
    /// resumed, before the new turn starts (`thread/resume`'s answer carries none): a report about another turn than
    /// this one, whose total is the baseline as it stands. Should that replay not come, the first report is about this
    /// turn's first model request, and the baseline is its total less its `last` (that request alone). A report about
    /// this turn without `last` leaves the baseline unknown: the usage is then the thread's total, earlier turns
    /// included — too much rather than nothing, so that a budget still stops a run — and
    /// [`TurnUsage::has_no_baseline`] says so.
    pub(crate) fn report(&mut self, report: ThreadUsage, turn_id: Option<&str>) {
        if self.is_resumed && self.baseline.is_none() && !self.has_no_baseline {
            let is_this_turn = match report.turn_id.as_deref() {
                Some(reported) => Some(reported) == turn_id,
                None => turn_id.is_some(),
            };
            match (is_this_turn, &report.last) {
                (false, _) => self.baseline = Some(report.total.clone()),
                (true, Some(last)) => self.baseline = Some(difference(&report.total, last)),
                (true, None) => self.has_no_baseline = true,
            }
        }
        self.total = Some(report.total);
    }

    /// Whether a resumed thread's usage could not be told apart from its earlier turns' (see [`TurnUsage::report`]).
    pub(crate) fn has_no_baseline(&self) -> bool {
        self.has_no_baseline
    }

    /// The execution's usage: the latest total, less the baseline of a resumed thread; `None` without a report.
    pub(crate) fn usage(&self) -> Option<Value> {
        let total = self.total.as_ref()?;
        Some(match &self.baseline {
            Some(baseline) => difference(total, baseline),
            None => total.clone(),
        })
    }
}

/// `total − earlier`, field by field, never below zero; a field `earlier` lacks counts as zero, and a value that is
/// no count is kept as it is.
fn difference(total: &Value, earlier: &Value) -> Value {
    let Some(total) = total.as_object() else { return total.clone() };
    let fields = total.iter().map(|(name, value)| {
        let before = earlier.get(name).and_then(Value::as_u64).unwrap_or(0);
        let value = match value.as_u64() {
            Some(count) => Value::from(count.saturating_sub(before)),
            None => value.clone(),
        };
        (name.clone(), value)
    });
    Value::Object(fields.collect::<Map<String, Value>>())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(total: u64, last: Option<u64>, turn_id: &str) -> ThreadUsage {
        ThreadUsage {
            total: json!({"input_tokens": total, "total_tokens": total}),
            last: last.map(|last| json!({"input_tokens": last, "total_tokens": last})),
            turn_id: Some(turn_id.to_owned()),
        }
    }

    /// Feeds the reports (each with this execution's turn `u`) and checks the usage's `input_tokens`.
    fn check(is_resumed: bool, reports: Vec<ThreadUsage>, expected: Option<u64>) {
        let mut usage = TurnUsage::new(is_resumed);
        for one in reports {
            usage.report(one, Some("u"));
        }
        let counted = usage.usage().map(|usage| usage["input_tokens"].as_u64().expect("a count"));
        assert_eq!(counted, expected);
    }

    #[test]
    fn a_new_thread_counts_its_latest_total() {
        check(false, vec![report(100, Some(100), "u"), report(250, Some(150), "u")], Some(250));
        check(false, Vec::new(), None);
    }

    #[test]
    fn a_resumed_thread_counts_from_before_its_first_report_of_this_turn() {
        // 1,000 tokens were spent by earlier turns; this turn's requests spent 150, then 300.
        check(true, vec![report(1_150, Some(150), "u"), report(1_450, Some(300), "u")], Some(450));
    }

    #[test]
    fn a_resumed_thread_counts_from_a_report_about_an_earlier_turn() {
        check(true, vec![report(1_000, Some(80), "earlier"), report(1_150, Some(150), "u")], Some(150));
    }

    #[test]
    fn a_resumed_thread_without_a_baseline_counts_the_thread_total() {
        let mut usage = TurnUsage::new(true);
        usage.report(report(1_150, None, "u"), Some("u"));
        usage.report(report(1_450, Some(300), "u"), Some("u"));
        assert!(usage.has_no_baseline());
        assert_eq!(usage.usage(), Some(json!({"input_tokens": 1_450, "total_tokens": 1_450})));
    }

    #[test]
    fn a_difference_is_never_negative_and_keeps_what_is_no_count() {
        let total = json!({"input_tokens": 5, "output_tokens": 7, "model": "m"});
        let earlier = json!({"input_tokens": 9});
        assert_eq!(
            difference(&total, &earlier),
            json!({"input_tokens": 0, "output_tokens": 7, "model": "m"})
        );
    }
}
