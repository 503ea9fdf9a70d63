//! The turns of an agent session on the status page — each turn's prompt and a link to it, in order — and the form
//! post of the prompt box under the last turn, which runs the next turn through the engine's `continue_session`.

use actix_web::{HttpResponse, web};
use dashboard_core::{Execution, ExecutionStatus};
use dashboard_engine::{ContinueRequest, StoreReader};
use dashboard_store::{ExecutionQuery, StoreError};
use serde::Serialize;

use super::executions::action_failed;
use super::view::short_id;
use crate::common::Caller;
use crate::common::html::{error_page, see_other};
use crate::error::ApiError;
use crate::state::State;

/// The most turns of one session the status page lists (the newest ones).
const PAGE_TURNS: usize = 100;

/// One turn of a session, for the status page.
#[derive(Serialize)]
pub(super) struct TurnView {
    id: String,
    short_id: String,
    status: ExecutionStatus,
    is_terminal: bool,
    /// The follow-up's prompt; `None` for the first turn (the function's own prompt).
    prompt: Option<String>,
    /// Whether this is the execution the page shows.
    is_current: bool,
}

/// The turns of `execution`'s session, oldest first; empty when it has no session.
pub(super) async fn turns(store: &StoreReader, execution: &Execution) -> Result<Vec<TurnView>, StoreError> {
    let Some(session_id) = &execution.session_id else {
        return Ok(Vec::new());
    };
    let query =
        ExecutionQuery { session_id: Some(session_id.clone()), limit: PAGE_TURNS, ..Default::default() };
    let mut turns = store.list_executions(&query).await?.items;
    turns.reverse();
    Ok(turns
        .iter()
        .map(|turn| TurnView {
            id: turn.id.to_string(),
            short_id: short_id(&turn.id),
            status: turn.status,
            is_terminal: turn.status.is_terminal(),
            prompt: turn.prompt.clone(),
            is_current: turn.id == execution.id,
        })
        .collect())
}

/// `POST /executions/{id}/continue`: the prompt box's form. On success, the new turn's status page.
pub(crate) async fn continue_session(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let id = match crate::common::parse_execution_id(&id) {
        Ok(id) => id,
        Err(error) => return error_page(&state, &error),
    };
    let prompt = form.into_inner().into_iter().find(|(name, _)| name == "prompt").map(|(_, value)| value);
    let request = ContinueRequest { prompt: prompt.unwrap_or_default(), input: None };
    match state.dashboard.continue_session(&caller.principal, id, request).await {
        Ok(next) => see_other(&format!("/executions/{}", next.id)),
        Err(error) => action_failed(&state, &caller, id, ApiError::from(error)).await,
    }
}
