//! `/functions` and `/functions/{key}`: the list, a function's page with its trigger form, triggering, deleting.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_backends::Principal;
use dashboard_engine::TriggerRequest;
use dashboard_store::{ExecutionQuery, FunctionKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::view::{ExecutionRow, FunctionDetail, FunctionRow, input_from_defaults};
use super::{FormError, base_context, error_page, insert_form_error, see_other};
use crate::error::ApiError;
use crate::state::State;

/// How many of a function's executions its page lists.
const RECENT_EXECUTIONS: usize = 10;

pub(crate) async fn list(state: State) -> HttpResponse {
    match state.dashboard.store().list_functions().await {
        Ok(functions) => {
            let mut context = base_context("functions", "Functions");
            context.insert("functions", &functions.iter().map(FunctionRow::new).collect::<Vec<_>>());
            state.render(StatusCode::OK, "functions.html", &context)
        }
        Err(error) => error_page(&state, &error.into()),
    }
}

/// The trigger form as typed. Every field is text, so no post can fail to parse before it is checked here.
#[derive(Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct TriggerForm {
    input: String,
    backend: String,
    idempotency_key: String,
}

pub(crate) async fn detail(state: State, key: web::Path<String>) -> HttpResponse {
    render_detail(&state, &key, None, None, StatusCode::OK).await
}

/// The function's page; with a form and an error, the trigger form shows what was typed and what is wrong with it.
async fn render_detail(
    state: &State,
    key: &str,
    typed: Option<TriggerForm>,
    error: Option<FormError>,
    status: StatusCode,
) -> HttpResponse {
    let store = state.dashboard.store();
    let function = match store.get_function(&FunctionKey::parse(key)).await {
        Ok(Some(function)) => function,
        Ok(None) => return error_page(state, &ApiError::not_found("function", key)),
        Err(error) => return error_page(state, &error.into()),
    };
    let query = ExecutionQuery {
        function: Some(function.name.clone()),
        limit: RECENT_EXECUTIONS,
        ..Default::default()
    };
    let executions = match store.list_executions(&query).await {
        Ok(page) => page.items,
        Err(error) => return error_page(state, &error.into()),
    };
    let trigger = typed.unwrap_or_else(|| TriggerForm {
        input: input_from_defaults(&function.input_schema),
        backend: function.backend.clone(),
        idempotency_key: String::new(),
    });
    let mut context = base_context("functions", &function.name);
    context.insert("function", &FunctionDetail::new(&function));
    context.insert("backends", &state.dashboard.backends().names());
    context.insert("trigger", &trigger);
    insert_form_error(&mut context, error.as_ref());
    context.insert("executions", &executions.iter().map(ExecutionRow::new).collect::<Vec<_>>());
    state.render(status, "function.html", &context)
}

pub(crate) async fn trigger(
    state: State,
    key: web::Path<String>,
    form: web::Form<TriggerForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let input = match parse_input(&form.input) {
        Ok(input) => input,
        Err(error) => {
            return render_detail(&state, &key, Some(form), Some(error), StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    let request = TriggerRequest {
        function: key.as_str().to_owned(),
        input,
        backend: non_empty(&form.backend),
        idempotency_key: non_empty(&form.idempotency_key),
    };
    match state.dashboard.trigger(&Principal::anonymous(), request).await {
        Ok(triggered) => see_other(&format!("/executions/{}", triggered.execution.id)),
        Err(error) => {
            let error = ApiError::from(error);
            if error.status == StatusCode::NOT_FOUND {
                return error_page(&state, &error);
            }
            render_detail(&state, &key, Some(form), Some(FormError::from(&error)), error.status).await
        }
    }
}

pub(crate) async fn delete(state: State, key: web::Path<String>) -> HttpResponse {
    match state.dashboard.delete_function(&FunctionKey::parse(&key)).await {
        Ok(_) => see_other("/functions"),
        Err(error) => error_page(&state, &error.into()),
    }
}

/// The input textarea as JSON; empty means `{}`.
fn parse_input(text: &str) -> Result<Value, FormError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text).map_err(|error| FormError::new("input", format!("is not valid JSON: {error}")))
}

fn non_empty(text: &str) -> Option<String> {
    Some(text.trim()).filter(|text| !text.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn trigger_input_is_json_and_empty_means_an_empty_object() {
        assert_eq!(parse_input("  ").ok(), Some(json!({})));
        assert_eq!(parse_input(r#"{"steps": 2}"#).ok(), Some(json!({"steps": 2})));
        let error = parse_input("{steps: 2}").expect_err("bad JSON accepted");
        assert_eq!(error.field.as_deref(), Some("input"));
        assert!(error.message.contains("line 1 column 2"), "{}", error.message);
    }
}
