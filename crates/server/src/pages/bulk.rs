//! `POST /executions/bulk`: cancel or retry the executions ticked in the list, then back to the list with a summary.
//!
//! Each execution goes through the engine one by one, exactly as its own Cancel or Retry button would; one that is
//! not in a state for the action (a finished one to cancel, a running or succeeded one to retry) is skipped and
//! counted, never an error for the whole batch; one the engine refuses to the caller (its scope, its backends) is
//! counted as refused, and the list says so.

use actix_web::HttpResponse;
use actix_web::web;
use dashboard_core::{ExecutionId, ExecutionStatus};
use dashboard_engine::EngineError;
use serde::Serialize;

use super::view::query_string;
use crate::common::Caller;
use crate::common::html::see_other;
use crate::state::State;

/// At most this many executions per post: one page of the list is 50.
const MAX_SELECTED: usize = 500;

/// What a bulk post did, carried back to the list in its query string.
#[derive(Debug, Default, PartialEq, Serialize)]
pub(super) struct BulkSummary {
    pub(super) action: String,
    pub(super) n_done: usize,
    pub(super) n_skipped: usize,
    pub(super) n_refused: usize,
    pub(super) n_failed: usize,
}

impl BulkSummary {
    /// The sentence the list shows, e.g. "Cancelled 3 executions; skipped 1 that could not be cancelled."
    pub(super) fn sentence(&self) -> String {
        let (done, verb) = match self.action.as_str() {
            "cancel" => ("Cancelled", "cancelled"),
            _ => ("Retried", "retried"),
        };
        let plural = |n: usize| if n == 1 { "execution" } else { "executions" };
        let mut text = format!("{done} {} {}", self.n_done, plural(self.n_done));
        if self.n_skipped > 0 {
            text.push_str(&format!("; skipped {} that cannot be {verb} in its state", self.n_skipped));
        }
        if self.n_refused > 0 {
            text.push_str(&format!(
                "; refused {} that you may not {} (your token's scope or backends)",
                self.n_refused, self.action
            ));
        }
        if self.n_failed > 0 {
            text.push_str(&format!("; {} failed (see the server log)", self.n_failed));
        }
        text.push('.');
        text
    }
}

/// Whether an execution in `status` takes the action; the others are skipped.
fn is_eligible(action: &str, status: ExecutionStatus) -> bool {
    match action {
        "cancel" => !status.is_terminal(),
        _ => status.is_terminal() && status != ExecutionStatus::Succeeded,
    }
}

/// Where to go back to: the list page the form was on, else the plain list (never another site).
fn back_url(back: &str) -> &str {
    if back == "/executions" || back.starts_with("/executions?") { back } else { "/executions" }
}

pub(crate) async fn apply(
    state: State,
    caller: Caller,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let mut action = String::new();
    let mut back = String::new();
    let mut ids = Vec::new();
    for (name, value) in form.into_inner() {
        match name.as_str() {
            "action" => action = value,
            "back" => back = value,
            "ids" if ids.len() < MAX_SELECTED => ids.push(value),
            _ => {}
        }
    }
    let back = back_url(&back);
    if action != "cancel" && action != "retry" {
        return see_other(back);
    }
    let mut summary = BulkSummary { action: action.clone(), ..BulkSummary::default() };
    let principal = &caller.principal;
    for text in &ids {
        let Ok(id) = text.parse::<ExecutionId>() else {
            summary.n_skipped += 1;
            continue;
        };
        let status = match state.dashboard.store().get_execution(id).await {
            Ok(Some(execution)) => execution.status,
            Ok(None) => {
                summary.n_skipped += 1;
                continue;
            }
            Err(error) => {
                log::warn!("bulk {action}: reading execution {id} failed: {error}");
                summary.n_failed += 1;
                continue;
            }
        };
        if !is_eligible(&action, status) {
            summary.n_skipped += 1;
            continue;
        }
        let outcome = if action == "cancel" {
            state.dashboard.cancel(principal, id).await.map(|_| ())
        } else {
            state.dashboard.retry(principal, id).await.map(|_| ())
        };
        match outcome {
            Ok(()) => summary.n_done += 1,
            Err(error @ EngineError::Forbidden { .. }) => {
                log::info!("bulk {action} of {id}: {error}");
                summary.n_refused += 1;
            }
            Err(error) => {
                // It may have finished in between: that is a skip, not a failure worth a warning.
                log::info!("bulk {action} of {id}: {error}");
                summary.n_skipped += 1;
            }
        }
    }
    let mut counts = vec![
        ("bulk", action.clone()),
        ("done", summary.n_done.to_string()),
        ("skipped", summary.n_skipped.to_string()),
        ("failed", summary.n_failed.to_string()),
    ];
    if summary.n_refused > 0 {
        counts.push(("refused", summary.n_refused.to_string()));
    }
    let pairs: Vec<(&str, &str)> = counts.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let separator = if back.contains('?') { "&" } else { "?" };
    let query = query_string(&pairs);
    see_other(&format!("{back}{separator}{}", query.trim_start_matches('?')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fitting_executions_are_acted_on() {
        assert!(
            is_eligible("cancel", ExecutionStatus::Running) && is_eligible("cancel", ExecutionStatus::Queued)
        );
        assert!(!is_eligible("cancel", ExecutionStatus::Failed));
        assert!(
            is_eligible("retry", ExecutionStatus::TimedOut)
                && is_eligible("retry", ExecutionStatus::Cancelled)
        );
        assert!(
            !is_eligible("retry", ExecutionStatus::Succeeded)
                && !is_eligible("retry", ExecutionStatus::Running)
        );
    }

    #[test]
    fn the_way_back_stays_on_the_list() {
        assert_eq!(back_url("/executions?status=failed"), "/executions?status=failed");
        assert_eq!(back_url("https://elsewhere.example/"), "/executions");
        assert_eq!(back_url("//elsewhere.example/executions"), "/executions");
    }

    #[test]
    fn the_summary_reads_as_a_sentence() {
        let summary =
            BulkSummary { action: "cancel".into(), n_done: 1, n_skipped: 2, ..BulkSummary::default() };
        assert_eq!(
            summary.sentence(),
            "Cancelled 1 execution; skipped 2 that cannot be cancelled in its state."
        );
    }
}
