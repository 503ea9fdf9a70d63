//! `/functions` and `/functions/{key}`: the list, a function's page with its trigger form and its budgets, triggering,
//! deleting.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_engine::TriggerRequest;
use dashboard_store::{ExecutionQuery, FunctionKey, SpendQuery};
use serde::Serialize;
use serde_json::Value;

use super::schema_form::{self, Posted};
use super::usage_view::SpendToday;
use super::view::{ExecutionRow, FunctionDetail, FunctionRow, input_from_defaults};
use super::{FormError, insert_form_error};
use crate::common::Caller;
use crate::common::html::{error_page, see_other};
use crate::error::ApiError;
use crate::state::State;

/// How many of a function's executions its page lists.
const RECENT_EXECUTIONS: usize = 10;

pub(crate) async fn list(state: State, caller: Caller) -> HttpResponse {
    match state.dashboard.store().list_functions().await {
        Ok(functions) => {
            let mut context = super::page_context(&state, &caller, "functions", "Functions").await;
            context.insert("functions", &functions.iter().map(FunctionRow::new).collect::<Vec<_>>());
            state.render(StatusCode::OK, "functions.html", &context)
        }
        Err(error) => error_page(&state, &error.into()),
    }
}

/// The trigger form as typed. The generated fields (`input.*`) are kept by name in `fields`.
#[derive(Default, Serialize)]
pub(crate) struct TriggerForm {
    /// `fields` (the generated form) or `json` (the raw textarea).
    mode: String,
    input: String,
    backend: String,
    idempotency_key: String,
    #[serde(skip)]
    fields: Posted,
}

impl TriggerForm {
    /// The posted pairs; a post with an `input` textarea but no `mode` (an older form, a script) is raw JSON.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "mode" => form.mode = value,
                "input" => form.input = value,
                "backend" => form.backend = value,
                "idempotency_key" => form.idempotency_key = value,
                _ if name.starts_with("input.") => {
                    form.fields.insert(name, value);
                }
                _ => {}
            }
        }
        if form.mode != "fields" && form.mode != "json" {
            form.mode =
                if form.fields.is_empty() && !form.input.is_empty() { "json" } else { "fields" }.to_owned();
        }
        form
    }
}

pub(crate) async fn detail(state: State, caller: Caller, key: web::Path<String>) -> HttpResponse {
    render_detail(&state, &caller, &key, None, None, Posted::new(), StatusCode::OK).await
}

/// The function's page; with a form and errors, the trigger form shows what was typed and what is wrong with it
/// (`field_errors` beside the generated fields, `error` above the form).
async fn render_detail(
    state: &State,
    caller: &Caller,
    key: &str,
    typed: Option<TriggerForm>,
    error: Option<FormError>,
    mut field_errors: Posted,
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
    let spent_query = SpendQuery {
        since: dashboard_core::start_of_utc_day(dashboard_core::now()),
        function: Some(function.name.clone()),
        triggered_by: None,
    };
    let spend_today = match store.spend_since(&spent_query).await {
        Ok(spent) => Some(SpendToday::new(&function, &spent)),
        Err(error) => {
            // The page is still worth showing: it says that today's spend could not be read.
            log::warn!("the page of function {}: today's spend: {error}", function.name);
            None
        }
    };
    // An error the engine found in a generated field is shown beside that field too.
    if let Some(FormError { message, field: Some(field) }) = &error
        && typed.as_ref().is_some_and(|form| form.mode == "fields")
    {
        field_errors.entry(field.clone()).or_insert_with(|| message.clone());
    }
    let posted = typed.as_ref().map(|form| &form.fields);
    let fields = schema_form::fields(&function.input_schema, posted, &field_errors);
    let trigger = typed.unwrap_or_else(|| TriggerForm {
        mode: if fields.is_some() { "fields" } else { "json" }.to_owned(),
        input: input_from_defaults(&function.input_schema),
        backend: function.backend.clone(),
        ..TriggerForm::default()
    });
    let mut context = super::page_context(state, caller, "functions", &function.name).await;
    context.insert("function", &FunctionDetail::new(&function));
    context.insert("spend_today", &spend_today);
    context.insert("backends", &state.dashboard.backends().names());
    context.insert("trigger", &trigger);
    context.insert("fields", &fields);
    context.insert("older_versions", &older_versions(function.version, &executions));
    insert_form_error(&mut context, error.as_ref());
    context.insert("executions", &executions.iter().map(ExecutionRow::new).collect::<Vec<_>>());
    state.render(status, "function.html", &context)
}

pub(crate) async fn trigger(
    state: State,
    caller: Caller,
    key: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let form = TriggerForm::from_pairs(form.into_inner());
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let input = if form.mode == "json" {
        match parse_input(&form.input) {
            Ok(input) => input,
            Err(error) => {
                return render_detail(
                    &state,
                    &caller,
                    &key,
                    Some(form),
                    Some(error),
                    Posted::new(),
                    unprocessable,
                )
                .await;
            }
        }
    } else {
        let schema = match state.dashboard.store().get_function(&FunctionKey::parse(&key)).await {
            Ok(Some(function)) => function.input_schema,
            Ok(None) => return error_page(&state, &ApiError::not_found("function", &key)),
            Err(error) => return error_page(&state, &error.into()),
        };
        match schema_form::assemble(&schema, &form.fields) {
            Ok(input) => input,
            Err(errors) => {
                let summary = FormError {
                    message: "Some fields need another look: see the messages beside them.".to_owned(),
                    field: None,
                };
                return render_detail(
                    &state,
                    &caller,
                    &key,
                    Some(form),
                    Some(summary),
                    errors,
                    unprocessable,
                )
                .await;
            }
        }
    };
    let request = TriggerRequest {
        function: key.as_str().to_owned(),
        input,
        backend: non_empty(&form.backend),
        idempotency_key: non_empty(&form.idempotency_key),
    };
    match state.dashboard.trigger(&caller.principal, request).await {
        Ok(triggered) => see_other(&format!("/executions/{}", triggered.execution.id)),
        Err(error) => {
            let error = ApiError::from(error);
            if error.status() == StatusCode::NOT_FOUND {
                return error_page(&state, &error);
            }
            let shown = FormError::from(&error);
            render_detail(&state, &caller, &key, Some(form), Some(shown), Posted::new(), error.status()).await
        }
    }
}

pub(crate) async fn delete(state: State, caller: Caller, key: web::Path<String>) -> HttpResponse {
    let key = FunctionKey::parse(&key);
    match state.dashboard.delete_function(&caller.principal, &key).await {
        Ok(_) => see_other("/functions"),
        Err(error) => error_page(&state, &error.into()),
    }
}

/// A version older than the current one that some of the recent executions ran with.
#[derive(Serialize)]
struct OlderVersion {
    version: u32,
    n_executions: usize,
}

/// The store keeps only a function's current version; its executions record the version they ran, so the older
/// versions the page can name are those of its recent executions, newest first.
fn older_versions(current: u32, executions: &[dashboard_core::Execution]) -> Vec<OlderVersion> {
    let mut counts = std::collections::BTreeMap::<u32, usize>::new();
    for execution in executions.iter().filter(|execution| execution.function_version < current) {
        *counts.entry(execution.function_version).or_default() += 1;
    }
    counts.into_iter().rev().map(|(version, n_executions)| OlderVersion { version, n_executions }).collect()
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
