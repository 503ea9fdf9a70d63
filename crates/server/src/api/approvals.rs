//! `/api/approvals`: what agents asked a person, and the decisions — the list (pending ones or all), one approval,
//! and the decision that lets the waiting agent go on.

use actix_web::{HttpResponse, web};
use dashboard_core::{Approval, Decision, ExecutionId};
use dashboard_engine::DecideRequest;
use dashboard_store::ApprovalQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ApiJson;
use crate::common::{Caller, parse_approval_id};
use crate::error::ApiError;
use crate::state::State;

/// How many approvals a list holds when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// The most approvals one list holds.
const MAX_LIMIT: usize = 1000;

/// Which approvals `GET /api/approvals` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ApprovalListStatus)]
#[allow(dead_code)] // Only its schema is used: the handler reads the parameter as text, to name it when it is wrong.
pub(crate) enum StatusFilter {
    /// Only the pending ones, oldest first (the default).
    Pending,
    /// All of them, newest first.
    All,
}

/// Filters of `GET /api/approvals`. Read as text, so that a value that cannot be understood is answered naming its
/// parameter.
#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ListQuery {
    /// `pending` (the default): the approvals nobody has decided yet, oldest first; `all`: every approval, newest
    /// first.
    #[param(value_type = Option<StatusFilter>)]
    status: Option<String>,
    /// Only the approvals of this execution.
    #[param(value_type = Option<String>, format = Uuid)]
    execution: Option<String>,
    /// How many approvals at most (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

impl ListQuery {
    /// The store query, or a 400 naming the parameter that cannot be understood.
    fn to_store_query(&self) -> Result<ApprovalQuery, ApiError> {
        fn given(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|value| !value.is_empty())
        }
        let pending_only = match given(&self.status) {
            None | Some("pending") => true,
            Some("all") => false,
            Some(other) => {
                return Err(ApiError::bad_query("status", format!("{other:?} is neither pending nor all")));
            }
        };
        let execution = given(&self.execution)
            .map(|text| {
                text.parse::<ExecutionId>()
                    .map_err(|_| ApiError::bad_query("execution", "is not an execution id"))
            })
            .transpose()?;
        let limit = match given(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(text) => {
                text.parse::<usize>().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(
                    || ApiError::bad_query("limit", format!("{text:?} is not between 1 and {MAX_LIMIT}")),
                )?
            }
        };
        Ok(ApprovalQuery { pending_only, execution, limit })
    }
}

/// `GET /api/approvals`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ApprovalList {
    /// Pending ones oldest first; with `status=all`, all of them newest first.
    items: Vec<Approval>,
}

pub(crate) async fn list(state: State, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let items = state.dashboard.store().list_approvals(&query.to_store_query()?).await?;
    Ok(HttpResponse::Ok().json(ApprovalList { items }))
}

pub(crate) async fn get(state: State, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_approval_id(&id)?;
    match state.dashboard.store().get_approval(id).await? {
        Some(approval) => Ok(HttpResponse::Ok().json(approval)),
        None => Err(ApiError::not_found("approval", &id.to_string())),
    }
}

/// The body of `POST /api/approvals/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    /// `approve`, `approve_for_session` (the same request needs no asking again in this session) or `decline`.
    /// Read as text, so that a value of the wrong type is refused naming the field, as an unknown one is.
    #[schema(value_type = Decision)]
    decision: String,
    /// A note for the record, told to the agent where it can hear it (at most 2,000 characters).
    #[schema(max_length = 2000)]
    note: Option<String>,
    /// A question's answers, `{"<question id>": ["<answer>", …]}`: required to approve a `question`, refused for any
    /// other kind.
    #[schema(value_type = Option<Object>)]
    answers: Option<Value>,
}

pub(crate) async fn decide(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    ApiJson(body): ApiJson<DecideBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_approval_id(&id)?;
    let decision = body.decision.parse::<Decision>()?;
    let request = DecideRequest { decision, note: body.note, answers: body.answers };
    let approval = state.dashboard.decide_approval(&caller.principal, id, request).await?;
    Ok(HttpResponse::Ok().json(approval))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(status: &str, execution: &str, limit: &str) -> Result<ApprovalQuery, ApiError> {
        let text = |value: &str| Some(value.to_owned()).filter(|value| !value.is_empty());
        ListQuery { status: text(status), execution: text(execution), limit: text(limit) }.to_store_query()
    }

    fn parameter(result: Result<ApprovalQuery, ApiError>) -> String {
        let error = result.expect_err("a bad query accepted");
        assert_eq!(error.status().as_u16(), 400, "{}", error.message);
        error.details["parameter"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn the_list_reads_pending_first_with_a_bounded_limit() {
        let pending = query("", "", "").expect("the defaults");
        assert_eq!((pending.pending_only, pending.execution, pending.limit), (true, None, 100));
        let all = query("all", "0190b0c4-0000-7000-8000-000000000000", "1000").expect("valid");
        assert_eq!((all.pending_only, all.limit), (false, 1000));
        assert!(all.execution.is_some());
    }

    #[test]
    fn a_bad_parameter_is_named() {
        assert_eq!(parameter(query("decided", "", "")), "status");
        assert_eq!(parameter(query("", "nope", "")), "execution");
        assert_eq!(parameter(query("", "", "0")), "limit");
        assert_eq!(parameter(query("", "", "1001")), "limit");
        assert_eq!(parameter(query("", "", "ten")), "limit");
    }
}
