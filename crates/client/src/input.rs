//! An execution's input from a command line: `--input JSON` (an object) and `-i key=value` pairs, each value read as
//! JSON when it parses (`steps=2` is a number, `fail=true` a boolean) and else taken as a string (`name=Ada`).

use serde_json::{Map, Value};

/// Why a piece of input from a command line cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A pair without `=`, or with an empty key.
    #[error("-i {0:?}: expected key=value")]
    NotAPair(String),
    /// `--input` that is not JSON.
    #[error("--input: not JSON: {0}")]
    NotJson(String),
    /// `--input` that is JSON but not an object, while pairs are to be added to it.
    #[error("--input: -i key=value needs an object to add to, not {0}")]
    NotAnObject(String),
}

/// One `-i key=value`: the key and its value.
pub fn parse_pair(pair: &str) -> Result<(String, Value), InputError> {
    let Some((key, value)) = pair.split_once('=') else {
        return Err(InputError::NotAPair(pair.to_owned()));
    };
    if key.is_empty() {
        return Err(InputError::NotAPair(pair.to_owned()));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// The input of a trigger: `--input`'s JSON (an empty object without it) with the pairs set on it, later ones
/// winning.
pub fn build(json: Option<&str>, pairs: &[String]) -> Result<Value, InputError> {
    let base = match json {
        Some(text) => serde_json::from_str(text).map_err(|error| InputError::NotJson(error.to_string()))?,
        None => Value::Object(Map::new()),
    };
    if pairs.is_empty() {
        return Ok(base);
    }
    let Value::Object(mut object) = base else {
        return Err(InputError::NotAnObject(base.to_string()));
    };
    for pair in pairs {
        let (key, value) = parse_pair(pair)?;
        object.insert(key, value);
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(pair: &str, expected: Value) {
        assert_eq!(
            parse_pair(pair),
            Ok((pair.split('=').next().unwrap_or_default().to_owned(), expected)),
            "{pair}"
        );
    }

    #[test]
    fn a_value_is_json_when_it_parses_else_a_string() {
        check("steps=2", json!(2));
        check("fail=true", json!(true));
        check("ratio=0.5", json!(0.5));
        check("tags=[\"a\",\"b\"]", json!(["a", "b"]));
        check("nested={\"a\":1}", json!({"a": 1}));
        check("nothing=null", json!(null));
        check("name=Ada", json!("Ada"));
        check("quoted=\"2\"", json!("2"));
        check("empty=", json!(""));
        check("sentence=hello world", json!("hello world"));
    }

    #[test]
    fn only_the_first_equals_sign_splits() {
        assert_eq!(parse_pair("query=a=b"), Ok(("query".to_owned(), json!("a=b"))));
    }

    #[test]
    fn a_pair_needs_a_key_and_an_equals_sign() {
        assert_eq!(parse_pair("steps"), Err(InputError::NotAPair("steps".to_owned())));
        assert_eq!(parse_pair("=2"), Err(InputError::NotAPair("=2".to_owned())));
    }

    #[test]
    fn pairs_are_set_on_the_json_input_later_ones_winning() {
        let pairs = ["steps=2".to_owned(), "name=Ada".to_owned(), "steps=3".to_owned()];
        assert_eq!(
            build(Some(r#"{"fail": true, "steps": 1}"#), &pairs),
            Ok(json!({"fail": true, "steps": 3, "name": "Ada"}))
        );
        assert_eq!(build(None, &pairs), Ok(json!({"steps": 3, "name": "Ada"})));
        assert_eq!(build(None, &[]), Ok(json!({})));
        assert_eq!(build(Some("[1]"), &[]), Ok(json!([1])));
    }

    #[test]
    fn wrong_input_is_refused() {
        assert!(matches!(build(Some("{"), &[]), Err(InputError::NotJson(_))));
        assert!(matches!(build(Some("[1]"), &["a=1".to_owned()]), Err(InputError::NotAnObject(_))));
        assert!(matches!(build(None, &["a".to_owned()]), Err(InputError::NotAPair(_))));
    }
}
