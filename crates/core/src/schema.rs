//! Input validation against a function's JSON Schema, with the `jsonschema` crate.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::CoreError;

/// Checks that `schema` is a JSON Schema that can validate inputs: well-formed by its meta-schema, compilable, and
/// describing an object (an input is always a JSON object).
pub fn check_input_schema(schema: &Value) -> Result<(), CoreError> {
    InputValidator::new(schema).map(|_| ())
}

/// A compiled input schema: build it once per function version, validate many inputs with it.
pub struct InputValidator {
    validator: jsonschema::Validator,
}

impl fmt::Debug for InputValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputValidator").finish_non_exhaustive()
    }
}

impl InputValidator {
    /// Compiles `schema`; an error names the `input_schema` field and says what is wrong with it.
    pub fn new(schema: &Value) -> Result<Self, CoreError> {
        if !schema.is_object() {
            return Err(CoreError::invalid_field("input_schema", "must be a JSON Schema object"));
        }
        if let Some(kind) = schema.get("type")
            && kind != "object"
        {
            return Err(CoreError::invalid_field(
                "input_schema",
                format!("must describe an object (\"type\": \"object\"), not {kind}"),
            ));
        }
        if let Err(error) = jsonschema::meta::validate(schema) {
            return Err(CoreError::invalid_field(
                format!("input_schema{}", error.instance_path().as_str().replace('/', ".")),
                error.to_string(),
            ));
        }
        let validator = jsonschema::validator_for(schema)
            .map_err(|error| CoreError::invalid_field("input_schema", error.to_string()))?;
        Ok(Self { validator })
    }

    /// Checks `input`; the error points at the first failing part of the input (`/issue_url`), and for a missing
    /// required property it points at that property.
    pub fn validate(&self, input: &Value) -> Result<(), CoreError> {
        let Err(error) = self.validator.validate(input) else {
            return Ok(());
        };
        let mut path = error.instance_path().as_str().to_owned();
        if let ValidationErrorKind::Required { property } = error.kind() {
            let property = property.as_str().map(str::to_owned).unwrap_or_else(|| property.to_string());
            path = format!("{path}/{}", escape_pointer(&property));
        }
        Err(CoreError::InputRejected { path, message: error.to_string() })
    }
}

/// Escapes a property name for a JSON pointer (RFC 6901).
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issue_schema() -> Value {
        json!({"type": "object", "required": ["issue_url"],
               "properties": {"issue_url": {"type": "string"}, "steps": {"type": "integer", "minimum": 0}}})
    }

    fn check(input: Value, expected: Result<(), &str>) {
        let validator = InputValidator::new(&issue_schema()).expect("the test schema is valid");
        let outcome = validator.validate(&input).map_err(|error| match error {
            CoreError::InputRejected { path, .. } => path,
            other => panic!("unexpected error {other}"),
        });
        assert_eq!(outcome, expected.map_err(str::to_owned), "input {input}");
    }

    #[test]
    fn valid_input_passes() {
        check(json!({"issue_url": "https://example.com/1"}), Ok(()));
        check(json!({"issue_url": "x", "steps": 3}), Ok(()));
    }

    #[test]
    fn failing_input_names_the_field() {
        check(json!({}), Err("/issue_url"));
        check(json!({"issue_url": 7}), Err("/issue_url"));
        check(json!({"issue_url": "x", "steps": -1}), Err("/steps"));
        check(json!([1]), Err(""));
    }

    #[test]
    fn bad_schemas_are_refused_naming_input_schema() {
        for schema in
            [json!("string"), json!({"type": "array"}), json!({"type": "object", "minProperties": "two"})]
        {
            let error = InputValidator::new(&schema).expect_err("bad schema accepted");
            assert!(error.to_string().starts_with("input_schema"), "{error}");
        }
        assert!(check_input_schema(&json!({})).is_ok());
    }
}
