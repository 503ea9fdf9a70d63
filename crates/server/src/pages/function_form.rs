//! `/functions/new` and `/functions/{key}/edit`: the function form, and the posts that create and update from it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use dashboard_core::{ApprovalPolicy, Function, FunctionSpec};
use dashboard_store::FunctionKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::view::pretty_json;
use super::{FormError, insert_form_error};
use crate::common::Caller;
use crate::common::html::{error_page, see_other};
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, State};

/// The form as typed. Every field is text, so that a post never fails before it is checked here, and a form with
/// an error comes back exactly as it was sent.
#[derive(Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct FunctionForm {
    name: String,
    description: String,
    backend: String,
    prompt: String,
    input_schema: String,
    timeout_secs: String,
    max_concurrency: String,
    /// `auto`, `ask` or `deny` (empty: `auto`).
    approval_policy: String,
    approval_timeout_secs: String,
    /// The budgets: US dollars a run, US dollars a day, tokens a day.
    max_cost_usd: String,
    daily_cost_usd: String,
    daily_tokens: String,
    tags: String,
    /// On edit: the version the form was loaded from, so that two people editing at once cannot overwrite each
    /// other unknowingly.
    expected_version: String,
}

impl FunctionForm {
    /// An empty form on the first backend, with the default input schema.
    fn blank(state: &AppState) -> Self {
        Self {
            backend: state.dashboard.backends().names().into_iter().next().unwrap_or_default(),
            input_schema: pretty_json(&json!({"type": "object"})),
            ..Self::default()
        }
    }

    /// The form of an existing function.
    fn of(function: &Function) -> Self {
        Self {
            name: function.name.clone(),
            description: function.description.clone(),
            backend: function.backend.clone(),
            prompt: function.prompt.clone().unwrap_or_default(),
            input_schema: pretty_json(&function.input_schema),
            timeout_secs: function.timeout_secs.map(|secs| secs.to_string()).unwrap_or_default(),
            max_concurrency: function.max_concurrency.map(|limit| limit.to_string()).unwrap_or_default(),
            approval_policy: function.approval_policy.as_str().to_owned(),
            approval_timeout_secs: function
                .approval_timeout_secs
                .map(|secs| secs.to_string())
                .unwrap_or_default(),
            max_cost_usd: function.max_cost_usd.map(|usd| usd.to_string()).unwrap_or_default(),
            daily_cost_usd: function.daily_cost_usd.map(|usd| usd.to_string()).unwrap_or_default(),
            daily_tokens: function.daily_tokens.map(|tokens| tokens.to_string()).unwrap_or_default(),
            tags: function.tags.join(", "),
            expected_version: function.version.to_string(),
        }
    }

    /// The spec the form describes, on top of `base` (which keeps what the form does not show: config, metadata),
    /// and the version an edit expects. Rules of the domain are checked later by the engine; this only reads text.
    fn to_spec(&self, base: FunctionSpec) -> Result<(FunctionSpec, Option<u32>), FormError> {
        let input_schema = match self.input_schema.trim() {
            "" => json!({"type": "object"}),
            text => serde_json::from_str::<Value>(text)
                .map_err(|error| FormError::new("input_schema", format!("is not valid JSON: {error}")))?,
        };
        let prompt = Some(lines(&self.prompt)).filter(|prompt| !prompt.trim().is_empty());
        let spec = FunctionSpec {
            name: self.name.trim().to_owned(),
            description: lines(self.description.trim()),
            backend: self.backend.trim().to_owned(),
            prompt,
            input_schema,
            timeout_secs: number(&self.timeout_secs, "timeout_secs", "a whole number of seconds")?,
            max_concurrency: number(&self.max_concurrency, "max_concurrency", "a whole number")?,
            approval_policy: approval_policy(&self.approval_policy)?,
            approval_timeout_secs: number(
                &self.approval_timeout_secs,
                "approval_timeout_secs",
                "a whole number of seconds",
            )?,
            max_cost_usd: dollars(&self.max_cost_usd, "max_cost_usd")?,
            daily_cost_usd: dollars(&self.daily_cost_usd, "daily_cost_usd")?,
            daily_tokens: number(&self.daily_tokens, "daily_tokens", "a whole number of tokens")?,
            tags: self
                .tags
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned)
                .collect(),
            ..base
        };
        let expected_version = number(&self.expected_version, "expected_version", "a version number")?;
        Ok((spec, expected_version))
    }
}

/// Text from a textarea with the browser's CRLF line breaks made plain `\n`.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The approval policy of the select: empty is the default, `auto`.
fn approval_policy(text: &str) -> Result<ApprovalPolicy, FormError> {
    match text.trim() {
        "" | "auto" => Ok(ApprovalPolicy::Auto),
        "ask" => Ok(ApprovalPolicy::Ask),
        "deny" => Ok(ApprovalPolicy::Deny),
        other => Err(FormError::new("approval_policy", format!("{other:?} is not auto, ask or deny"))),
    }
}

/// An optional number field: empty is `None`.
fn number<T: std::str::FromStr>(text: &str, field: &str, what: &str) -> Result<Option<T>, FormError> {
    match text.trim() {
        "" => Ok(None),
        text => text.parse().map(Some).map_err(|_| FormError::new(field, format!("{text:?} is not {what}"))),
    }
}

/// An optional amount of US dollars: empty is `None`, a leading `$` is allowed. Whether it is a budget the engine
/// accepts (more than 0, not too large) is the engine's to say, naming the field the same way.
fn dollars(text: &str, field: &str) -> Result<Option<f64>, FormError> {
    let amount = text.trim();
    let amount = amount.strip_prefix('$').unwrap_or(amount).trim();
    number(amount, field, "an amount of US dollars, such as 0.50")
}

/// The fields of the form that show their own error message; the errors of any other field go above the form.
const FIELDS_WITH_MESSAGES: [&str; 13] = [
    "name",
    "description",
    "backend",
    "prompt",
    "input_schema",
    "timeout_secs",
    "max_concurrency",
    "approval_policy",
    "approval_timeout_secs",
    "max_cost_usd",
    "daily_cost_usd",
    "daily_tokens",
    "tags",
];

impl FormError {
    fn is_beside_a_field(&self) -> bool {
        self.field.as_deref().is_some_and(|field| {
            FIELDS_WITH_MESSAGES.iter().any(|shown| {
                field == *shown
                    || (matches!(*shown, "prompt" | "input_schema" | "tags") && field.starts_with(shown))
            })
        })
    }
}

/// Which form is shown: a new function, or the edit of the function called `name`.
enum Mode<'a> {
    New,
    Edit { name: &'a str },
}

async fn render_form(
    state: &AppState,
    caller: &Caller,
    mode: Mode<'_>,
    form: &FunctionForm,
    error: Option<FormError>,
    status: StatusCode,
) -> HttpResponse {
    let (title, action, back) = match mode {
        Mode::New => ("New function".to_owned(), "/functions".to_owned(), "/functions".to_owned()),
        Mode::Edit { name } => {
            (format!("Edit {name}"), format!("/functions/{name}/edit"), format!("/functions/{name}"))
        }
    };
    let mut backends = state.dashboard.backends().names();
    // A function whose backend is no longer configured keeps it in the list, so that saving does not change it.
    if !form.backend.is_empty() && !backends.contains(&form.backend) {
        backends.push(form.backend.clone());
    }
    let mut context = super::page_context(state, caller, "functions", &title).await;
    context.insert("form", form);
    context.insert("is_edit", &matches!(mode, Mode::Edit { .. }));
    context.insert("action", &action);
    context.insert("back", &back);
    context.insert("backends", &backends);
    insert_form_error(&mut context, error.as_ref());
    context.insert("error_is_beside_field", &error.as_ref().is_some_and(FormError::is_beside_a_field));
    state.render(status, "function_form.html", &context)
}

pub(crate) async fn new(state: State, caller: Caller) -> HttpResponse {
    render_form(&state, &caller, Mode::New, &FunctionForm::blank(&state), None, StatusCode::OK).await
}

pub(crate) async fn edit(state: State, caller: Caller, key: web::Path<String>) -> HttpResponse {
    match state.dashboard.store().get_function(&FunctionKey::parse(&key)).await {
        Ok(Some(function)) => {
            render_form(
                &state,
                &caller,
                Mode::Edit { name: &function.name },
                &FunctionForm::of(&function),
                None,
                StatusCode::OK,
            )
            .await
        }
        Ok(None) => error_page(&state, &ApiError::not_found("function", &key)),
        Err(error) => error_page(&state, &error.into()),
    }
}

pub(crate) async fn create(state: State, caller: Caller, form: web::Form<FunctionForm>) -> HttpResponse {
    let base = FunctionSpec::new("", "");
    let spec = match form.to_spec(base) {
        Ok((spec, _)) => spec,
        Err(error) => {
            return render_form(
                &state,
                &caller,
                Mode::New,
                &form,
                Some(error),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match state.dashboard.create_function(&caller.principal, spec).await {
        Ok(function) => see_other(&format!("/functions/{}", function.name)),
        Err(error) => {
            let error = ApiError::from(error);
            render_form(&state, &caller, Mode::New, &form, Some(FormError::from(&error)), error.status())
                .await
        }
    }
}

pub(crate) async fn update(
    state: State,
    caller: Caller,
    key: web::Path<String>,
    form: web::Form<FunctionForm>,
) -> HttpResponse {
    let current = match state.dashboard.store().get_function(&FunctionKey::parse(&key)).await {
        Ok(Some(function)) => function,
        Ok(None) => return error_page(&state, &ApiError::not_found("function", &key)),
        Err(error) => return error_page(&state, &error.into()),
    };
    let mode = Mode::Edit { name: &current.name };
    let (spec, expected_version) = match form.to_spec(current.spec()) {
        Ok(parsed) => parsed,
        Err(error) => {
            return render_form(&state, &caller, mode, &form, Some(error), StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    match state
        .dashboard
        .update_function(&caller.principal, &FunctionKey::Id(current.id), spec, expected_version)
        .await
    {
        Ok(function) => see_other(&format!("/functions/{}", function.name)),
        Err(error) => {
            let error = ApiError::from(error);
            let mut shown = FormError::from(&error);
            if error.code == ErrorCode::VersionMismatch {
                shown.message = format!(
                    "{}: someone saved this function since you opened the form; reload it to see their changes",
                    shown.message
                );
            }
            render_form(&state, &caller, mode, &form, Some(shown), error.status()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> FunctionForm {
        let fields: serde_json::Map<String, Value> =
            fields.iter().map(|(name, value)| ((*name).to_owned(), Value::from(*value))).collect();
        serde_json::from_value(Value::Object(fields)).expect("text fields deserialize")
    }

    fn field_of(fields: &[(&str, &str)]) -> Option<String> {
        form(fields).to_spec(FunctionSpec::new("", "")).err().and_then(|error| error.field)
    }

    #[test]
    fn a_filled_form_becomes_a_spec() {
        let (spec, version) = form(&[
            ("name", " triage "),
            ("backend", "demo"),
            ("prompt", "line 1\r\nline 2"),
            ("timeout_secs", "90"),
            ("tags", "a, b,,c "),
            ("expected_version", "3"),
        ])
        .to_spec(FunctionSpec::new("", ""))
        .expect("valid form");
        assert_eq!(spec.name, "triage");
        assert_eq!(spec.prompt.as_deref(), Some("line 1\nline 2"));
        assert_eq!((spec.timeout_secs, spec.max_concurrency, version), (Some(90), None, Some(3)));
        assert_eq!(spec.tags, ["a", "b", "c"]);
        assert_eq!(spec.input_schema, json!({"type": "object"}));
        assert_eq!((spec.approval_policy, spec.approval_timeout_secs), (ApprovalPolicy::Auto, None));
        let (spec, _) = form(&[("approval_policy", "ask"), ("approval_timeout_secs", "600")])
            .to_spec(FunctionSpec::new("", ""))
            .expect("valid form");
        assert_eq!((spec.approval_policy, spec.approval_timeout_secs), (ApprovalPolicy::Ask, Some(600)));
        let (spec, _) =
            form(&[("max_cost_usd", " $0.25 "), ("daily_cost_usd", "10"), ("daily_tokens", "50000")])
                .to_spec(FunctionSpec::new("", ""))
                .expect("valid form");
        assert_eq!(
            (spec.max_cost_usd, spec.daily_cost_usd, spec.daily_tokens),
            (Some(0.25), Some(10.0), Some(50_000))
        );
    }

    #[test]
    fn unreadable_fields_are_named() {
        assert_eq!(field_of(&[("input_schema", "{type: object}")]).as_deref(), Some("input_schema"));
        assert_eq!(field_of(&[("timeout_secs", "soon")]).as_deref(), Some("timeout_secs"));
        assert_eq!(field_of(&[("max_concurrency", "-1")]).as_deref(), Some("max_concurrency"));
        assert_eq!(field_of(&[("approval_policy", "sometimes")]).as_deref(), Some("approval_policy"));
        assert_eq!(field_of(&[("approval_timeout_secs", "1h")]).as_deref(), Some("approval_timeout_secs"));
        assert_eq!(field_of(&[("max_cost_usd", "ten")]).as_deref(), Some("max_cost_usd"));
        assert_eq!(field_of(&[("daily_cost_usd", "1,5")]).as_deref(), Some("daily_cost_usd"));
        assert_eq!(field_of(&[("daily_tokens", "1.5")]).as_deref(), Some("daily_tokens"));
    }

    #[test]
    fn a_saved_budget_comes_back_as_typed() {
        let mut spec = FunctionSpec::new("f", "demo");
        (spec.max_cost_usd, spec.daily_cost_usd, spec.daily_tokens) = (Some(0.1), Some(10.0), Some(7));
        let typed = FunctionForm::of(&Function::create(spec).expect("a valid spec"));
        assert_eq!(
            (typed.max_cost_usd.as_str(), typed.daily_cost_usd.as_str(), typed.daily_tokens.as_str()),
            ("0.1", "10", "7")
        );
    }
}
