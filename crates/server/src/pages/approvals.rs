//! `/approvals`: the inbox — what agents are waiting for a person to decide, newest on top, each with what it asks in
//! full and its Approve / Decline buttons, and the approvals decided lately — and `POST /approvals/{id}`, the
//! decision of its forms and of the status page's, which works without JavaScript.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{Approval, ApprovalId, ApprovalKind, ApprovalStatus, Decision};
use dashboard_engine::DecideRequest;
use dashboard_store::ApprovalQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::approval_view::{ApprovalView, question_ids};
use crate::common::html::{error_page, see_other, sentence};
use crate::common::{Caller, parse_approval_id};
use crate::error::ApiError;
use crate::state::{AppState, State};

/// How many pending approvals the store is asked for: it lists them oldest first, and the page shows the newest.
const PENDING_READ: usize = 1000;
/// How many pending approvals the inbox shows, newest first.
const PENDING_SHOWN: usize = 100;
/// How many approvals are read for the "decided lately" list, and how many of the decided ones it shows.
const RECENT_READ: usize = 100;
const RECENT_SHOWN: usize = 20;

/// `?decided=ID`: the approval a decision has just decided, for the notice saying so.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct InboxQuery {
    decided: String,
}

/// A decision that failed, shown above the inbox and in the card of its approval.
#[derive(Serialize)]
struct DecideError {
    approval_id: String,
    message: String,
}

pub(crate) async fn inbox(
    state: State,
    caller: Caller,
    query: Option<web::Query<InboxQuery>>,
) -> HttpResponse {
    let decided = query.and_then(|query| query.decided.parse::<ApprovalId>().ok());
    render_inbox(&state, &caller, decided, None, StatusCode::OK).await
}

async fn render_inbox(
    state: &AppState,
    caller: &Caller,
    decided: Option<ApprovalId>,
    error: Option<DecideError>,
    status: StatusCode,
) -> HttpResponse {
    let store = state.dashboard.store();
    let read = async {
        let mut pending = store
            .list_approvals(&ApprovalQuery { pending_only: true, execution: None, limit: PENDING_READ })
            .await?;
        let n_pending = store.count_pending_approvals().await?;
        pending.reverse();
        pending.truncate(PENDING_SHOWN);
        let recent = store
            .list_approvals(&ApprovalQuery { pending_only: false, execution: None, limit: RECENT_READ })
            .await?;
        let notice = match decided {
            Some(id) => store.get_approval(id).await?.map(|approval| decided_sentence(&approval)),
            None => None,
        };
        let last_event_id = store.last_event_id().await?;
        Ok::<_, dashboard_store::StoreError>((pending, n_pending, recent, notice, last_event_id))
    };
    let (pending, n_pending, recent, notice, last_event_id) = match read.await {
        Ok(read) => read,
        Err(error) => return error_page(state, &error.into()),
    };
    let recent: Vec<ApprovalView> = recent
        .iter()
        .filter(|approval| !approval.is_pending())
        .take(RECENT_SHOWN)
        .map(ApprovalView::new)
        .collect();
    let mut context = super::page_context(state, caller, "approvals", "Approvals").await;
    let pending: Vec<ApprovalView> = pending
        .iter()
        .map(|approval| match &error {
            Some(error) if error.approval_id == approval.id.to_string() => {
                ApprovalView::new(approval).with_error(error.message.clone())
            }
            _ => ApprovalView::new(approval),
        })
        .collect();
    context.insert("pending", &pending);
    context.insert("n_pending", &n_pending);
    context.insert("recent", &recent);
    context.insert("notice", &notice);
    context.insert("decide_error", &error);
    context.insert("last_event_id", &last_event_id);
    state.render(status, "approvals.html", &context)
}

/// What the notice after a decision says: `Approved "rm -rf build" (by alice).`
pub(super) fn decided_sentence(approval: &Approval) -> String {
    let what = match approval.status {
        ApprovalStatus::Pending => "Still pending:",
        ApprovalStatus::Approved if approval.for_session => "Approved for the session:",
        ApprovalStatus::Approved => "Approved:",
        ApprovalStatus::Declined => "Declined:",
        ApprovalStatus::Expired => "Expired:",
    };
    match &approval.decided_by {
        Some(by) => format!("{what} {} (by {by}).", approval.summary),
        None => format!("{what} {}.", approval.summary),
    }
}

/// The decision form as posted: the button pressed, the note, the page it was on, and the answers of a question
/// (`answer.<question id>`, repeated for several).
#[derive(Default)]
struct DecideForm {
    decision: String,
    note: String,
    /// `execution` from the status page; anything else is the inbox.
    from: String,
    answers: BTreeMap<String, Vec<String>>,
}

impl DecideForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "decision" => form.decision = value,
                "note" => form.note = value,
                "from" => form.from = value,
                _ => {
                    if let Some(question) = name.strip_prefix("answer.") {
                        let value = value.trim();
                        let answers = form.answers.entry(question.to_owned()).or_default();
                        if !value.is_empty() {
                            answers.push(value.to_owned());
                        }
                    }
                }
            }
        }
        form
    }

    /// The engine's request for `approval`, or what is wrong with the form: an unknown decision, or a question left
    /// unanswered when approving.
    fn to_request(&self, approval: &Approval) -> Result<DecideRequest, ApiError> {
        let decision = self.decision.parse::<Decision>().map_err(|_| {
            ApiError::invalid_field("decision", "press Approve, Approve for session or Decline")
        })?;
        let note = Some(self.note.replace("\r\n", "\n").trim().to_owned()).filter(|note| !note.is_empty());
        let answers = if approval.kind == ApprovalKind::Question && decision != Decision::Decline {
            let unanswered =
                question_ids(approval).into_iter().find(|id| self.answers.get(id).is_none_or(Vec::is_empty));
            if let Some(id) = unanswered {
                return Err(ApiError::invalid_field("answers", format!("question {id:?} needs an answer")));
            }
            let answers: serde_json::Map<String, Value> = self
                .answers
                .iter()
                .filter(|(_, list)| !list.is_empty())
                .map(|(id, list)| (id.clone(), Value::from(list.clone())))
                .collect();
            Some(Value::Object(answers))
        } else {
            None
        };
        Ok(DecideRequest { decision, note, answers })
    }
}

pub(crate) async fn decide(
    state: State,
    caller: Caller,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let id = match parse_approval_id(&id) {
        Ok(id) => id,
        Err(error) => return error_page(&state, &error),
    };
    let form = DecideForm::from_pairs(form.into_inner());
    let approval = match state.dashboard.store().get_approval(id).await {
        Ok(Some(approval)) => approval,
        Ok(None) => return error_page(&state, &ApiError::not_found("approval", &id.to_string())),
        Err(error) => return error_page(&state, &error.into()),
    };
    let result = match form.to_request(&approval) {
        Ok(request) => {
            state.dashboard.decide_approval(&caller.principal, id, request).await.map_err(ApiError::from)
        }
        Err(error) => Err(error),
    };
    let is_from_execution = form.from == "execution";
    match result {
        Ok(decided) if is_from_execution => see_other(&format!(
            "/executions/{}?decided={}#approval-{}",
            decided.execution_id, decided.id, decided.id
        )),
        Ok(decided) => see_other(&format!("/approvals?decided={}", decided.id)),
        Err(error) if error.status() == StatusCode::NOT_FOUND => error_page(&state, &error),
        Err(error) if is_from_execution => {
            let error = ApiError { message: format!("{}: {}", approval.summary, error.message), ..error };
            super::executions::action_failed(&state, &caller, approval.execution_id, error).await
        }
        Err(error) => {
            let shown = DecideError {
                approval_id: approval.id.to_string(),
                message: format!("{}: {}", approval.summary, sentence(&error.message)),
            };
            render_inbox(&state, &caller, None, Some(shown), error.status()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ExecutionId, now};
    use serde_json::json;

    use super::*;

    fn approval(kind: ApprovalKind, details: Value) -> Approval {
        Approval {
            id: ApprovalId::generate(),
            execution_id: ExecutionId::generate(),
            function: "f".into(),
            backend: "demo".into(),
            session_id: None,
            kind,
            summary: "ask".into(),
            details,
            item_id: None,
            grant_key: None,
            status: ApprovalStatus::Pending,
            for_session: false,
            requested_at: now(),
            expires_at: now(),
            decided_by: None,
            decided_at: None,
            note: None,
            answers: None,
        }
    }

    fn form(pairs: &[(&str, &str)]) -> DecideForm {
        DecideForm::from_pairs(
            pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
        )
    }

    #[test]
    fn a_command_decision_takes_its_note_and_no_answers() {
        let command = approval(ApprovalKind::Command, json!({"command": "ls"}));
        let request =
            form(&[("decision", "approve_for_session"), ("note", "  ok\r\nthen  "), ("answer.x", "1")])
                .to_request(&command)
                .expect("a valid form");
        assert_eq!(request.decision, Decision::ApproveForSession);
        assert_eq!((request.note.as_deref(), request.answers), (Some("ok\nthen"), None));
        let error = form(&[("decision", "maybe")]).to_request(&command).expect_err("no such decision");
        assert_eq!(error.details["field"], "decision");
    }

    #[test]
    fn a_question_needs_every_answer_unless_declined() {
        let details = json!({"questions": [{"id": "colour", "options": ["red", "blue"]}, {"id": "why"}]});
        let question = approval(ApprovalKind::Question, details);
        let answered =
            form(&[("decision", "approve"), ("answer.colour", "blue"), ("answer.why", " because ")])
                .to_request(&question)
                .expect("answered");
        assert_eq!(answered.answers, Some(json!({"colour": ["blue"], "why": ["because"]})));
        let error = form(&[("decision", "approve"), ("answer.colour", "red"), ("answer.why", " ")])
            .to_request(&question)
            .expect_err("a question left unanswered");
        assert_eq!(error.details["field"], "answers");
        assert!(error.message.contains("\"why\""), "{}", error.message);
        let declined =
            form(&[("decision", "decline")]).to_request(&question).expect("a decline needs no answers");
        assert_eq!(declined.answers, None);
    }
}
