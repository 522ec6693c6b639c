//! Values in bodies: UTF-8 strings, or base64 with `?encoding=base64`. A stored value
//! that is not valid UTF-8 is always answered in base64, and an answer in base64 always
//! says so (`"encoding": "base64"`), so a reader can never mistake one for the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::api::types::{EncodedValue, ValueEncoding};
use crate::error::ApiError;
use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

impl Encoding {
    /// The `encoding` query parameter.
    pub fn from_param(p: Option<&str>) -> Result<Encoding, ApiError> {
        match p {
            None | Some("utf-8") | Some("utf8") | Some("text") => Ok(Encoding::Utf8),
            Some("base64") => Ok(Encoding::Base64),
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown encoding {other:?} (use utf-8 or base64)"
            ))
            .with_detail(serde_json::json!({ "field": "encoding" }))),
        }
    }
}

/// The bytes of a value given in a request body.
pub fn decode(what: &str, text: &str, encoding: Encoding) -> Result<Vec<u8>, ApiError> {
    let bytes = match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Base64 => STANDARD.decode(text.trim()).map_err(|e| {
            ApiError::bad_request(format!("{what} is not valid base64: {e}"))
                .with_detail(serde_json::json!({ "field": "value" }))
        })?,
    };
    names::value_size(what, bytes.len())?;
    Ok(bytes)
}

/// A value for an answer: as text when asked and possible, else base64 saying so;
/// null data (`None`) answers `"value": null`.
pub fn encoded(bytes: Option<&[u8]>, requested: Encoding) -> EncodedValue {
    let Some(bytes) = bytes else {
        return EncodedValue {
            value: None,
            encoding: None,
        };
    };
    match (requested, std::str::from_utf8(bytes)) {
        (Encoding::Utf8, Ok(text)) => EncodedValue {
            value: Some(text.to_string()),
            encoding: None,
        },
        _ => EncodedValue {
            value: Some(STANDARD.encode(bytes)),
            encoding: Some(ValueEncoding::Base64),
        },
    }
}

/// Puts `"value"` (and `"encoding": "base64"` when needed) into `obj`.
pub fn insert(obj: &mut Map<String, Value>, bytes: &[u8], requested: Encoding) {
    let e = encoded(Some(bytes), requested);
    obj.insert("value".into(), e.value.map_or(Value::Null, Value::String));
    if e.encoding.is_some() {
        obj.insert("encoding".into(), Value::String("base64".into()));
    }
}

/// A value as text for places without an encoding marker (rendered files): UTF-8 as
/// is, anything else in base64.
pub fn text_or_base64(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => STANDARD.encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(decode("v", "hi", Encoding::Utf8).unwrap(), b"hi");
        assert_eq!(decode("v", "aGk=", Encoding::Base64).unwrap(), b"hi");
        assert!(decode("v", "***", Encoding::Base64).is_err());
        let mut m = Map::new();
        insert(&mut m, b"hi", Encoding::Utf8);
        assert_eq!(m["value"], "hi");
        assert!(!m.contains_key("encoding"));
        let mut m = Map::new();
        insert(&mut m, &[0xff, 0x00], Encoding::Utf8);
        assert_eq!(m["encoding"], "base64");
        let mut m = Map::new();
        insert(&mut m, b"hi", Encoding::Base64);
        assert_eq!(m["value"], "aGk=");
        // Null data is null, whatever the encoding; empty data is "".
        for requested in [Encoding::Utf8, Encoding::Base64] {
            let null = serde_json::to_value(encoded(None, requested)).unwrap();
            assert_eq!(null, serde_json::json!({ "value": null }));
            let empty = serde_json::to_value(encoded(Some(b""), requested)).unwrap();
            assert_eq!(empty["value"], "");
        }
        assert!(Encoding::from_param(Some("hex")).is_err());
    }
}
