//! Schedules: a function triggered by a cron expression in a time zone, what one declares, and how it stands.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CoreError, ExecutionId, ScheduleId, Timestamp, validate_name};

/// The longest cron expression accepted, in bytes.
pub const MAX_CRON_BYTES: usize = 200;
/// The longest time zone name accepted, in bytes (IANA names are far shorter).
pub const MAX_TIMEZONE_BYTES: usize = 64;

/// What a fire does when the schedule's previous execution has not finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is skipped: no execution, `skipped` + 1 and a `schedule.skipped` event.
    #[default]
    Skip,
    /// The fire queues another execution all the same (the function's `max_concurrency` still holds).
    Queue,
}

impl Overlap {
    /// The spelling of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Queue => "queue",
        }
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn yes() -> bool {
    true
}

/// What declares a schedule: the body of `POST /api/schedules` and `PUT /api/schedules/{id}`, and a `[[schedules]]`
/// entry of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The function to trigger, by name.
    pub function: String,
    /// A cron expression of five fields (minute hour day-of-month month day-of-week) or six (seconds first).
    pub cron: String,
    /// The IANA time zone the expression is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The input of every fire; checked against the function's schema when the schedule is saved and at each fire.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// What a fire does while the previous one still runs.
    #[serde(default)]
    pub overlap: Overlap,
    /// A disabled schedule keeps its settings and fires nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl ScheduleSpec {
    /// Checks what can be checked without the function and a cron parser: the function's name and the lengths of the
    /// cron expression and the time zone. The engine checks the expression, the zone and the input.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_name(&self.function).map_err(|error| match error {
            CoreError::InvalidField { message, .. } => CoreError::invalid_field("function", message),
            other => other,
        })?;
        let cron = self.cron.trim();
        if cron.is_empty() || cron.len() > MAX_CRON_BYTES {
            return Err(CoreError::invalid_field("cron", format!("must be 1 to {MAX_CRON_BYTES} bytes")));
        }
        if self.timezone.is_empty() || self.timezone.len() > MAX_TIMEZONE_BYTES {
            return Err(CoreError::invalid_field(
                "timezone",
                format!("must be an IANA time zone name of 1 to {MAX_TIMEZONE_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// A stored schedule: its declaration and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// Its id.
    pub id: ScheduleId,
    /// The function it triggers, by name.
    pub function: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone of the expression.
    pub timezone: String,
    /// The input of every fire.
    pub input: Value,
    /// What a fire does while the previous one still runs.
    pub overlap: Overlap,
    /// Whether it fires.
    pub enabled: bool,
    /// When it fires next: the due time of its next fire (kept while disabled, and then not acted on).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<Timestamp>,
    /// When it last fired an execution.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_run_at: Option<Timestamp>,
    /// The execution its last fire created.
    pub last_execution: Option<ExecutionId>,
    /// How many fires were skipped (an overlapping run, a spent budget, a function gone or an input it refuses).
    pub skipped: u64,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// When it was last changed by a person (fires do not count).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl Schedule {
    /// A new schedule from `spec` (already checked), due first at `next_run_at`, created at `at`.
    pub fn create(id: ScheduleId, spec: ScheduleSpec, next_run_at: Option<Timestamp>, at: Timestamp) -> Self {
        Self {
            id,
            function: spec.function,
            cron: spec.cron.trim().to_owned(),
            timezone: spec.timezone,
            input: spec.input,
            overlap: spec.overlap,
            enabled: spec.enabled,
            next_run_at,
            last_run_at: None,
            last_execution: None,
            skipped: 0,
            created_at: at,
            updated_at: at,
        }
    }

    /// This schedule declared anew by `spec` (already checked), due next at `next_run_at`, changed at `at`: its id,
    /// creation time and history (`last_run_at`, `last_execution`, `skipped`) are kept.
    pub fn replaced_by(&self, spec: ScheduleSpec, next_run_at: Option<Timestamp>, at: Timestamp) -> Self {
        Self {
            id: self.id,
            created_at: self.created_at,
            last_run_at: self.last_run_at,
            last_execution: self.last_execution,
            skipped: self.skipped,
            ..Self::create(self.id, spec, next_run_at, at)
        }
    }

    /// What declares it.
    pub fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            function: self.function.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            input: self.input.clone(),
            overlap: self.overlap,
            enabled: self.enabled,
        }
    }

    /// What `triggered_by` says of the executions it fires: `schedule:<id>`.
    pub fn trigger_name(&self) -> String {
        format!("schedule:{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_takes_its_defaults_and_refuses_unknown_fields() {
        let spec: ScheduleSpec =
            serde_json::from_value(serde_json::json!({"function": "nightly", "cron": "0 3 * * *"}))
                .expect("a minimal spec");
        assert_eq!(spec.timezone, "UTC");
        assert_eq!(spec.input, serde_json::json!({}));
        assert_eq!(spec.overlap, Overlap::Skip);
        assert!(spec.enabled);
        let unknown = serde_json::from_value::<ScheduleSpec>(
            serde_json::json!({"function": "nightly", "cron": "* * * * *", "every": 2}),
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let spec = ScheduleSpec {
            function: "nightly".into(),
            cron: " ".into(),
            timezone: "UTC".into(),
            input: empty_object(),
            overlap: Overlap::Queue,
            enabled: true,
        };
        let error = spec.validate().expect_err("an empty cron");
        assert!(error.to_string().contains("cron"), "{error}");
        let error = ScheduleSpec { cron: "* * * * *".into(), function: "no spaces".into(), ..spec }
            .validate()
            .expect_err("a bad name");
        assert!(error.to_string().contains("function"), "{error}");
    }
}
