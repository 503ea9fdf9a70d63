//! The conformance suite: one set of test bodies that every [`DashboardStore`] implementation must pass.
//!
//! The contract lives in the doc comments of [`DashboardStore`]; each case here checks one part of it on a fresh,
//! empty store, and panics with a message naming what broke. The same bodies run against every implementation, the
//! way ripgrep runs one test body against each of its matchers.
//!
//! # Running the suite against an implementation
//!
//! Depend on `dashboard-store` with the `testing` feature (in `[dev-dependencies]`), then in an integration test:
//!
//! ```no_run
//! // tests/conformance.rs of the implementing crate (here `MemoryStore` stands in for it).
//! # use dashboard_store::MemoryStore as MyStore;
//! dashboard_store::conformance_tests!(MyStore::default());
//! # fn main() {}
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) expands to one `#[test]` per case, named after the case, so a
//! failure names the broken behaviour. The expression is evaluated afresh for every case inside an `async` block, so
//! it may `.await` (`MyStore::open_temporary().await.expect("a temporary store")`); each test runs it on its own
//! multi-threaded tokio runtime, so the caller needs no tokio dependency of its own. Invoke the macro once per
//! module (it defines functions named after the cases).
//!
//! Alternatively, run everything from one test of your own with [`run_all`], or a single case by calling it
//! directly (`conformance::function_is_found_by_id_and_by_name(&store).await`). Both need a tokio runtime with
//! the time driver enabled (`#[tokio::test]` gives one): some cases spawn tasks and sleep.

mod approval_reads;
mod approvals;
mod events;
mod executions;
mod fixtures;
mod functions;
mod items;
mod listing;
mod logs;
mod outbox;
mod schedules;
mod sessions;
mod spend;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use approval_reads::*;
pub use approvals::*;
pub use events::*;
pub use executions::*;
pub use functions::*;
pub use items::*;
pub use listing::*;
pub use logs::*;
pub use outbox::*;
pub use schedules::*;
pub use sessions::*;
pub use spend::*;

use crate::DashboardStore;

/// Expands to one `#[test]` per conformance case, each running that case on a fresh store made by `$make_store`.
///
/// `$make_store` is an expression of a type that implements [`DashboardStore`]; it is evaluated inside an `async`
/// block, once per test, so it may `.await`. See the [`conformance`](crate::conformance) module for an example.
/// (The arms that start with `@` are the macro's own plumbing: they hold the one list of cases.)
#[macro_export]
macro_rules! conformance_tests {
    // The single list of cases. `plain` cases take `&dyn DashboardStore`; `shared` ones take an
    // `Arc<dyn DashboardStore>` because they hand the store to spawned tasks.
    (@cases $mode:ident [$($args:tt)*]) => {
        $crate::conformance_tests! { @expand $mode [$($args)*]
            plain [
                function_is_found_by_id_and_by_name,
                functions_are_listed_by_name,
                duplicate_function_name_is_refused,
                function_update_bumps_version_and_keeps_id,
                function_update_with_stale_version_is_refused,
                function_rename_onto_another_name_is_refused,
                function_update_with_invalid_spec_is_refused,
                function_update_of_missing_function_is_not_found,
                function_delete_keeps_its_executions,
                function_delete_of_missing_function_is_not_found,
                execution_create_records_queued,
                the_instance_that_runs_an_execution_is_kept,
                idempotency_key_reuse_returns_first_execution_and_writes_nothing,
                execution_update_follows_the_status_machine,
                execution_update_with_wrong_from_is_status_mismatch,
                illegal_execution_transition_is_invalid,
                terminal_execution_never_changes,
                execution_update_of_unknown_id_is_not_found,
                a_waiting_execution_runs_again_or_ends,
                executions_are_listed_newest_first,
                execution_filters_select_matching_executions,
                execution_text_search_is_a_case_insensitive_substring_of_the_input,
                execution_pages_visit_every_execution_once,
                unfinished_executions_are_listed_oldest_first,
                executions_are_counted_by_status,
                log_lines_are_numbered_without_gaps,
                log_reads_respect_after_and_limit,
                log_append_to_unknown_execution_is_not_found,
                update_with_logs_changes_status_and_numbers_lines_after_the_stored_ones,
                refused_update_with_logs_appends_nothing,
                items_are_numbered_in_order_of_first_appearance,
                item_upsert_keeps_seq_and_ts_and_changes_status_body_and_updated_at,
                an_item_named_twice_in_one_call_is_stored_once_with_the_later_fields,
                item_reads_respect_after_and_limit,
                items_of_an_unknown_execution_are_not_found_on_upsert_and_none_on_list,
                update_with_logs_stores_items_with_the_status_change_or_none_of_them,
                prune_deletes_the_items_of_pruned_executions,
                a_follow_up_turn_is_stored_with_its_session_and_the_execution_it_continues,
                a_session_id_is_set_while_the_execution_runs_without_an_event,
                a_diff_is_stored_with_the_status_change_and_read_apart,
                prune_deletes_the_diffs_of_pruned_executions,
                executions_are_listed_by_session,
                a_pending_approval_moves_a_running_execution_to_waiting,
                a_second_pending_approval_of_a_waiting_execution_changes_no_status,
                a_pending_approval_of_an_execution_neither_running_nor_waiting_is_a_status_mismatch,
                an_approval_stored_decided_records_requested_and_decided_and_changes_no_status,
                an_approval_with_a_taken_id_is_invalid_and_writes_nothing,
                an_approval_of_an_unknown_execution_is_not_found,
                deciding_is_a_compare_and_set_on_pending,
                deciding_the_last_pending_approval_resumes_the_execution,
                deciding_changes_no_status_of_an_execution_that_is_not_waiting,
                a_decision_that_decides_nothing_is_refused,
                an_approval_is_stored_with_its_item,
                approvals_are_listed_pending_oldest_first_and_all_newest_first,
                pending_approvals_are_counted_across_executions,
                a_session_grant_is_the_newest_approval_approved_for_the_session,
                prune_deletes_the_approvals_of_pruned_executions,
                a_function_keeps_its_approval_policy_and_timeout,
                spend_sums_the_usage_of_executions_with_and_without_usage,
                spend_is_filtered_by_function_and_by_caller,
                spend_counts_the_executions_created_at_or_after_since,
                odd_usage_figures_count_as_usage_spend_reads_them,
                daily_spend_is_per_utc_day_and_function_in_order,
                a_function_keeps_its_budgets,
                every_change_records_its_event_in_order,
                events_are_listed_after_a_cursor_with_limit,
                prune_deletes_old_finished_executions_with_their_logs_and_events,
                prune_respects_its_limit,
                event_ids_keep_increasing_after_prune,
                ping_answers,
                a_schedule_is_created_with_its_event_and_read_back,
                a_schedule_with_a_taken_id_is_invalid_and_writes_nothing,
                a_schedule_update_replaces_the_declaration_and_keeps_its_history,
                a_change_of_an_unknown_schedule_is_not_found,
                a_deleted_schedule_is_gone_with_its_event,
                due_schedules_are_the_enabled_ones_due_by_now_earliest_first,
                a_fire_queues_the_execution_and_advances_the_schedule,
                a_due_time_fires_once,
                a_fire_of_another_due_time_fires_nothing,
                a_disabled_schedule_fires_nothing,
                a_fire_of_an_unknown_schedule_fires_nothing,
                a_skipped_fire_counts_the_skip_and_advances,
                a_fire_whose_execution_cannot_be_created_writes_nothing,
                a_failed_execution_writes_one_pending_delivery_of_its_event,
                an_event_of_another_kind_writes_no_delivery,
                a_rule_for_other_functions_skips_the_event,
                each_matching_rule_writes_its_own_delivery,
                without_rules_no_delivery_is_written,
                fires_and_approvals_write_the_deliveries_of_their_events,
                a_claimed_delivery_is_not_claimed_by_another_owner,
                an_expired_lease_lets_another_owner_claim,
                only_the_holder_finishes_a_delivery,
                a_retry_keeps_the_delivery_pending_until_its_time,
                a_delivered_delivery_is_finished_and_never_claimed_again,
                a_given_up_delivery_fails_and_records_notification_failed,
                deliveries_are_listed_newest_first_with_filters_and_a_cursor,
                prune_deletes_finished_deliveries_and_keeps_pending_ones,
            ]
            shared [
                concurrent_log_appends_have_no_gaps_or_duplicates,
                concurrent_item_upserts_have_no_gaps_or_duplicates,
                concurrent_fires_of_one_due_time_fire_once,
            ]
        }
    };
    (@expand table [] plain [$($plain:ident,)*] shared [$($shared:ident,)*]) => {
        /// Every case of the suite, in a stable order.
        pub static CASES: &[Case] = &[
            $(Case { name: stringify!($plain), run: |store| Box::pin(async move { $plain(&*store).await }) },)*
            $(Case { name: stringify!($shared), run: |store| Box::pin($shared(store)) },)*
        ];
    };
    (@expand tests [$make_store:expr] plain [$($plain:ident,)*] shared [$($shared:ident,)*]) => {
        $(
            #[test]
            fn $plain() {
                $crate::conformance::block_on(async {
                    let store = $crate::conformance::share($make_store);
                    $crate::conformance::$plain(&*store).await;
                });
            }
        )*
        $(
            #[test]
            fn $shared() {
                $crate::conformance::block_on(async {
                    let store = $crate::conformance::share($make_store);
                    $crate::conformance::$shared(store).await;
                });
            }
        )*
    };
    ($make_store:expr $(,)?) => {
        $crate::conformance_tests! { @cases tests [$make_store] }
    };
}

/// A future a case returns once it owns its store.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One case of the suite, named, with a uniform entry point.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The name of the case function (and of the test [`conformance_tests!`](crate::conformance_tests) makes).
    pub name: &'static str,
    /// Runs the case on a store; panics when the store breaks the contract.
    pub run: fn(Arc<dyn DashboardStore>) -> CaseFuture,
}

crate::conformance_tests! { @cases table [] }

/// Runs every case, each on a fresh store from `make_store`; panics naming the first case that fails.
///
/// Must run inside a tokio runtime with the time driver (`#[tokio::test]`), since each case is spawned as a task.
pub async fn run_all<S, F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: DashboardStore,
{
    for case in CASES {
        let store: Arc<dyn DashboardStore> = Arc::new(make_store().await);
        if let Err(error) = tokio::spawn((case.run)(store)).await {
            let reason = match error.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(error) => error.to_string(),
            };
            panic!("conformance case `{}` failed: {reason}", case.name);
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Wraps a store for the cases; used by [`conformance_tests!`](crate::conformance_tests).
#[doc(hidden)]
pub fn share<S: DashboardStore>(store: S) -> Arc<dyn DashboardStore> {
    Arc::new(store)
}

/// Runs a test body on a multi-threaded tokio runtime; used by [`conformance_tests!`](crate::conformance_tests).
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for a conformance test")
        .block_on(future)
}
