//! Schemas of the API's types (derived by schemars, as the OpenAPI document shows them)
//! and the check of a request body against its type's schema, with a message that
//! names the field and the rule.
//!
//! The check covers what our request schemas use: `type` (one or several), object
//! `properties`, `required` and `additionalProperties: false`, and string
//! `minLength`/`maxLength`. A schema keyword it does not know is a bug in this module,
//! which a unit test guards against.

use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Where the OpenAPI document keeps named schemas.
pub const COMPONENTS: &str = "/components/schemas";

/// A generator whose `$ref`s point into the OpenAPI document's components, for
/// request bodies (`deserialize`) or answers (`serialize`).
pub fn generator(deserialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = COMPONENTS.into();
        s.meta_schema = None;
    });
    let settings = if deserialize {
        settings.for_deserialize()
    } else {
        settings.for_serialize()
    };
    settings.into_generator()
}

/// The schema of a request body type, self-contained.
pub fn request_schema<T: JsonSchema>() -> Value {
    generator(true).into_root_schema_for::<T>().to_value()
}

/// The keywords [`check`] enforces, and those it may ignore (annotations).
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minLength",
    "maxLength",
];
const ANNOTATIONS: &[&str] = &["title", "description", "default", "$schema"];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(schema: &Map<String, Value>, v: &Value) -> bool {
    let actual = type_name(v);
    let fits = |t: &Value| t == actual || (t == "number" && actual == "integer");
    match schema.get("type") {
        None => true,
        Some(Value::Array(types)) => types.iter().any(fits),
        Some(t) => fits(t),
    }
}

fn expected(schema: &Map<String, Value>) -> String {
    match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        Some(Value::String(t)) => t.clone(),
        _ => "any value".into(),
    }
}

fn article(t: &str) -> &'static str {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// What a value is, for messages: "null", "an array", "a string".
fn described(v: &Value) -> String {
    match type_name(v) {
        "null" => "null".into(),
        t => format!("{} {t}", article(t)),
    }
}

/// Checks `body` against the schema of `T`; `name` is the schema's name in the
/// OpenAPI document (for the message's detail).
pub fn check<T: JsonSchema>(body: &Value) -> Result<(), ApiError> {
    let schema = request_schema::<T>();
    check_against(&schema, &T::schema_name(), body)
}

fn bad(message: String, field: Option<&str>, name: &str) -> ApiError {
    ApiError::bad_request(message).with_detail(json!({
        "field": field,
        "schema": format!("#{COMPONENTS}/{name}"),
        "openapi": "/v1/openapi.json",
    }))
}

pub fn check_against(schema: &Value, name: &str, body: &Value) -> Result<(), ApiError> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if !has_type(schema, body) {
        let example = example(schema);
        return Err(bad(
            format!(
                "the body must be a JSON object such as {example}, not {}",
                described(body)
            ),
            None,
            name,
        ));
    }
    let Some(obj) = body.as_object() else {
        return Ok(());
    };
    let props = schema.get("properties").and_then(Value::as_object);
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        for key in obj.keys() {
            if !props.is_some_and(|p| p.contains_key(key)) {
                let known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                return Err(bad(
                    format!(
                        "unknown field {key:?} in the body (known: {})",
                        known.join(", ")
                    ),
                    Some(key),
                    name,
                ));
            }
        }
    }
    for req in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !obj.contains_key(req) {
            return Err(bad(
                format!("the body needs the field {req:?}, e.g. {}", example(schema)),
                Some(req),
                name,
            ));
        }
    }
    for (key, v) in obj {
        let Some(p) = props.and_then(|p| p.get(key)).and_then(Value::as_object) else {
            continue;
        };
        if !has_type(p, v) {
            let want = expected(p);
            return Err(bad(
                format!(
                    "body field {key:?} must be {} {want}, not {}",
                    article(&want),
                    described(v)
                ),
                Some(key),
                name,
            ));
        }
        if let Some(text) = v.as_str() {
            let chars = text.chars().count() as u64;
            if let Some(min) = p.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                let message = if chars == 0 {
                    format!("body field {key:?} must not be empty")
                } else {
                    format!("body field {key:?} is {chars} characters long; the least is {min}")
                };
                return Err(bad(message, Some(key), name));
            }
            if let Some(max) = p.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                return Err(bad(
                    format!("body field {key:?} is {chars} characters long; the limit is {max}"),
                    Some(key),
                    name,
                ));
            }
        }
    }
    Ok(())
}

/// `{"value": "..."}` for a schema's properties.
fn example(schema: &Map<String, Value>) -> String {
    let fields: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(|k| format!("{k:?}: \"...\"")).collect())
        .unwrap_or_default();
    format!("{{{}}}", fields.join(", "))
}

/// Every keyword used anywhere in `schema` that [`check`] neither enforces nor may
/// ignore.
pub fn unknown_keywords(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(obj) = schema.as_object() {
        for (k, v) in obj {
            if !ENFORCED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                out.push(k.clone());
            }
            if k == "properties"
                && let Some(props) = v.as_object()
            {
                for p in props.values() {
                    out.extend(unknown_keywords(p));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{ConfigValueBody, LockBody, ValueBody};

    fn message<T: JsonSchema>(body: &str) -> String {
        let v: Value = serde_json::from_str(body).unwrap();
        check::<T>(&v).unwrap_err().message
    }

    #[test]
    fn the_checker_knows_every_keyword_of_the_request_schemas() {
        for schema in [
            request_schema::<ValueBody>(),
            request_schema::<ConfigValueBody>(),
            request_schema::<LockBody>(),
        ] {
            assert_eq!(unknown_keywords(&schema), Vec::<String>::new(), "{schema}");
        }
    }

    #[test]
    fn bodies_are_objects_of_the_declared_fields() {
        for ok in [r#"{}"#, r#"{"value": "x"}"#] {
            let v: Value = serde_json::from_str(ok).unwrap();
            assert!(check::<ValueBody>(&v).is_ok(), "{ok}");
        }
        assert!(message::<ValueBody>("[]").contains("not an array"));
        assert!(message::<ValueBody>("\"x\"").contains("not a string"));
        assert!(message::<ValueBody>("null").contains("not null"));
        let m = message::<ValueBody>(r#"{"value": null}"#);
        assert!(m.contains("\"value\" must be a string, not null"), "{m}");
        assert!(message::<ValueBody>(r#"{"value": 5}"#).contains("not an integer"));
        assert!(message::<ValueBody>(r#"{"vlaue": "x"}"#).contains("unknown field \"vlaue\""));
        assert!(message::<ConfigValueBody>("{}").contains("needs the field \"value\""));
        // A config value may be null (null data), but must be given.
        let null: Value = serde_json::from_str(r#"{"value": null}"#).unwrap();
        assert!(check::<ConfigValueBody>(&null).is_ok());
        let body: ConfigValueBody = serde_json::from_value(null).unwrap();
        assert_eq!(body.value, None);
        assert!(serde_json::from_str::<ConfigValueBody>("{}").is_err());
        let m = message::<ConfigValueBody>(r#"{"value": 1}"#);
        assert!(
            m.contains("\"value\" must be a string or null, not an integer"),
            "{m}"
        );
        assert!(message::<LockBody>(r#"{"owner": ""}"#).contains("must not be empty"));
        let long = format!(r#"{{"owner": "{}"}}"#, "x".repeat(300));
        assert!(message::<LockBody>(&long).contains("the limit is 255"));
    }
}
