//! Functions: registered agent tasks (a backend, a prompt template, an input schema, limits), and their validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    ApprovalPolicy, CoreError, DEFAULT_APPROVAL_TIMEOUT_SECS, FunctionId, Timestamp, check_input_schema, now,
};

/// The longest a description may be, in characters.
const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// The longest a prompt template may be, in characters.
const MAX_PROMPT_CHARS: usize = 100_000;
/// How many tags a function may carry.
const MAX_TAGS: usize = 32;
/// The largest budget a function may set, in US dollars (a larger one is a mistake, not a budget).
const MAX_BUDGET_USD: f64 = 1_000_000.0;
/// The longest timeout a function may ask for: a week.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// What a client says a function is: the body of a create or a replace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// A unique slug: `^[a-z0-9][a-z0-9._-]{0,63}$`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub name: String,
    /// What it is for, in a sentence or two.
    #[cfg_attr(feature = "openapi", schema(max_length = 10_000))]
    #[serde(default)]
    pub description: String,
    /// The backend its executions run on unless a trigger names another.
    pub backend: String,
    /// A tera template rendered with the input (`{{ input.issue_url }}`).
    #[cfg_attr(feature = "openapi", schema(max_length = 100_000))]
    #[serde(default)]
    pub prompt: Option<String>,
    /// The JSON Schema every input must satisfy.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default = "default_input_schema")]
    pub input_schema: Value,
    /// Backend-specific settings.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// How long an execution may run before it is stopped as `timed_out`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 604_800))]
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// How many of its executions may run at once; more wait in `queued`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// What the dashboard does when the agent asks permission: `auto` (its own sandbox decides), `ask` (a person
    /// decides) or `deny`.
    #[serde(default, skip_serializing_if = "ApprovalPolicy::is_auto")]
    pub approval_policy: ApprovalPolicy,
    /// How long an approval may stay pending before it expires (and the agent is told no); 3600 when unset.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 604_800))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// The most one execution may cost, in US dollars: a run that crosses it is stopped, `failed`.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The most its executions may cost in one UTC day, in US dollars: triggers are refused (429) once it is spent,
    /// and a run that crosses it is stopped.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cost_usd: Option<f64>,
    /// The most tokens its executions may use in one UTC day, as `daily_cost_usd`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_tokens: Option<u64>,
    /// Labels to find it by.
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free-form data for the owner's own use.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

fn default_input_schema() -> Value {
    json!({"type": "object"})
}

impl FunctionSpec {
    /// A spec with only the required fields set.
    pub fn new(name: impl Into<String>, backend: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            backend: backend.into(),
            prompt: None,
            input_schema: default_input_schema(),
            config: Map::new(),
            timeout_secs: None,
            max_concurrency: None,
            approval_policy: ApprovalPolicy::Auto,
            approval_timeout_secs: None,
            max_cost_usd: None,
            daily_cost_usd: None,
            daily_tokens: None,
            tags: Vec::new(),
            metadata: Map::new(),
        }
    }

    /// Checks every field; the error names the first field that is wrong. Whether the backend exists and whether the
    /// prompt is a valid template is for the layers that know backends and templates.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_name(&self.name)?;
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(CoreError::invalid_field(
                "description",
                format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if self.backend.trim().is_empty() {
            return Err(CoreError::invalid_field("backend", "must name a backend"));
        }
        if self.prompt.as_ref().is_some_and(|prompt| prompt.chars().count() > MAX_PROMPT_CHARS) {
            return Err(CoreError::invalid_field(
                "prompt",
                format!("is longer than {MAX_PROMPT_CHARS} characters"),
            ));
        }
        check_input_schema(&self.input_schema)?;
        match self.timeout_secs {
            Some(0) => return Err(CoreError::invalid_field("timeout_secs", "must be at least 1")),
            Some(secs) if secs > MAX_TIMEOUT_SECS => {
                return Err(CoreError::invalid_field(
                    "timeout_secs",
                    format!("must be at most {MAX_TIMEOUT_SECS} (a week)"),
                ));
            }
            _ => {}
        }
        match self.approval_timeout_secs {
            Some(0) => return Err(CoreError::invalid_field("approval_timeout_secs", "must be at least 1")),
            Some(secs) if secs > MAX_TIMEOUT_SECS => {
                return Err(CoreError::invalid_field(
                    "approval_timeout_secs",
                    format!("must be at most {MAX_TIMEOUT_SECS} (a week)"),
                ));
            }
            _ => {}
        }
        for (field, limit) in [("max_cost_usd", self.max_cost_usd), ("daily_cost_usd", self.daily_cost_usd)] {
            if limit.is_some_and(|limit| !(limit.is_finite() && limit > 0.0 && limit <= MAX_BUDGET_USD)) {
                return Err(CoreError::invalid_field(
                    field,
                    format!("must be more than 0 and at most {MAX_BUDGET_USD} (US dollars)"),
                ));
            }
        }
        if self.daily_tokens.is_some_and(|tokens| tokens == 0 || tokens > i64::MAX as u64) {
            return Err(CoreError::invalid_field("daily_tokens", format!("must be 1 to {}", i64::MAX)));
        }
        if self.max_concurrency == Some(0) {
            return Err(CoreError::invalid_field("max_concurrency", "must be at least 1"));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(CoreError::invalid_field("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (index, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.chars().count() > 64 {
                return Err(CoreError::invalid_field(format!("tags[{index}]"), "must be 1 to 64 characters"));
            }
        }
        Ok(())
    }
}

/// Checks a function name: 1 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), CoreError> {
    let is_slug_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let starts_well = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.parse::<FunctionId>().is_ok() {
        // URLs name a function by id or by name, ids first: a name shaped like an id could never be reached.
        return Err(CoreError::invalid_field(
            "name",
            format!("{name:?} looks like an id; choose a name that does not"),
        ));
    }
    if starts_well && name.len() <= 64 && name.chars().all(is_slug_char) {
        Ok(())
    } else {
        Err(CoreError::invalid_field(
            "name",
            format!(
                "{name:?} is not a valid name: use 1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
            ),
        ))
    }
}

/// A registered function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Function {
    /// Its id (UUID v7), stable across updates.
    pub id: FunctionId,
    /// A unique slug.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The default backend.
    pub backend: String,
    /// The prompt template.
    pub prompt: Option<String>,
    /// The JSON Schema of its input.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_schema: Value,
    /// Backend-specific settings.
    pub config: Map<String, Value>,
    /// Its timeout.
    pub timeout_secs: Option<u64>,
    /// Its concurrency limit.
    pub max_concurrency: Option<u32>,
    /// What the dashboard does when the agent asks permission.
    #[serde(default)]
    pub approval_policy: ApprovalPolicy,
    /// How long an approval may stay pending (3600 s when unset).
    #[serde(default)]
    pub approval_timeout_secs: Option<u64>,
    /// The most one execution may cost, in US dollars.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// The most its executions may cost in one UTC day, in US dollars.
    #[serde(default)]
    pub daily_cost_usd: Option<f64>,
    /// The most tokens its executions may use in one UTC day.
    #[serde(default)]
    pub daily_tokens: Option<u64>,
    /// Its labels.
    pub tags: Vec<String>,
    /// Free-form data.
    pub metadata: Map<String, Value>,
    /// 1 when created, +1 on every update.
    pub version: u32,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// When it was last updated.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl Function {
    /// How long an approval of its executions may stay pending.
    pub fn approval_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.approval_timeout_secs.unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECS))
    }

    /// A new function (version 1) from a spec, which is validated first.
    pub fn create(spec: FunctionSpec) -> Result<Self, CoreError> {
        spec.validate()?;
        let created_at = now();
        Ok(Self::from_parts(FunctionId::generate(), spec, 1, created_at, created_at))
    }

    /// The next version of this function: same id and creation time, the spec's fields, version + 1.
    pub fn replaced_by(&self, spec: FunctionSpec) -> Result<Self, CoreError> {
        spec.validate()?;
        Ok(Self::from_parts(self.id, spec, self.version + 1, self.created_at, now()))
    }

    /// The spec this function was made from.
    pub fn spec(&self) -> FunctionSpec {
        FunctionSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            backend: self.backend.clone(),
            prompt: self.prompt.clone(),
            input_schema: self.input_schema.clone(),
            config: self.config.clone(),
            timeout_secs: self.timeout_secs,
            max_concurrency: self.max_concurrency,
            approval_policy: self.approval_policy,
            approval_timeout_secs: self.approval_timeout_secs,
            max_cost_usd: self.max_cost_usd,
            daily_cost_usd: self.daily_cost_usd,
            daily_tokens: self.daily_tokens,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
        }
    }

    fn from_parts(
        id: FunctionId,
        spec: FunctionSpec,
        version: u32,
        created_at: Timestamp,
        updated_at: Timestamp,
    ) -> Self {
        let FunctionSpec {
            name,
            description,
            backend,
            prompt,
            input_schema,
            config,
            timeout_secs,
            max_concurrency,
            approval_policy,
            approval_timeout_secs,
            max_cost_usd,
            daily_cost_usd,
            daily_tokens,
            tags,
            metadata,
        } = spec;
        Self {
            id,
            name,
            description,
            backend,
            prompt,
            input_schema,
            config,
            timeout_secs,
            max_concurrency,
            approval_policy,
            approval_timeout_secs,
            max_cost_usd,
            daily_cost_usd,
            daily_tokens,
            tags,
            metadata,
            version,
            created_at,
            updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_slug_rule() {
        for good in ["a", "0", "triage-issue", "a.b_c-d", &"x".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
        let id_shaped = FunctionId::generate().to_string();
        for bad in
            ["", "-a", ".a", "A", "has space", "é", "a/b", &"x".repeat(65), &id_shaped, &"0".repeat(32)]
        {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn field_of(spec: FunctionSpec) -> String {
        match spec.validate() {
            Err(CoreError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let base = FunctionSpec::new("ok", "demo");
        assert!(base.validate().is_ok());
        assert_eq!(field_of(FunctionSpec { name: "Bad".into(), ..base.clone() }), "name");
        assert_eq!(field_of(FunctionSpec { backend: " ".into(), ..base.clone() }), "backend");
        assert_eq!(field_of(FunctionSpec { timeout_secs: Some(0), ..base.clone() }), "timeout_secs");
        assert_eq!(field_of(FunctionSpec { max_concurrency: Some(0), ..base.clone() }), "max_concurrency");
        assert_eq!(
            field_of(FunctionSpec { input_schema: json!({"type": "string"}), ..base.clone() }),
            "input_schema"
        );
        assert_eq!(field_of(FunctionSpec { max_cost_usd: Some(0.0), ..base.clone() }), "max_cost_usd");
        assert_eq!(
            field_of(FunctionSpec { daily_cost_usd: Some(f64::NAN), ..base.clone() }),
            "daily_cost_usd"
        );
        assert_eq!(field_of(FunctionSpec { daily_tokens: Some(0), ..base.clone() }), "daily_tokens");
        assert_eq!(field_of(FunctionSpec { tags: vec!["".into()], ..base }), "tags[0]");
    }

    #[test]
    fn replacing_bumps_the_version_and_keeps_the_id() {
        let first = Function::create(FunctionSpec::new("f", "demo")).expect("valid spec");
        let second = first.replaced_by(FunctionSpec::new("g", "demo")).expect("valid spec");
        assert_eq!((second.id, second.version, second.created_at), (first.id, 2, first.created_at));
        assert_eq!(second.name, "g");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error =
            serde_json::from_value::<FunctionSpec>(json!({"name": "f", "backend": "demo", "colour": 1}))
                .expect_err("unknown field accepted");
        assert!(error.to_string().contains("colour"), "{error}");
    }
}
