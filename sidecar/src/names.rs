//! What the API accepts as names, ids, config paths and values, checked before anything
//! reaches the ensemble, with a message that names the problem.
//!
//! Election, group and lock names and candidate/member ids become one znode name each;
//! config paths become a chain of them. ZooKeeper's rules apply (no empty names, no `.`
//! or `..`, no NUL or control characters), plus length limits of our own so that a path
//! always fits comfortably in a request.

use paddock_client::path;

use crate::error::ApiError;

/// The longest name, id or config path segment, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest config path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The largest value (after base64 decoding), in bytes: well under ZooKeeper's
/// default jute.maxbuffer of 1 MiB, leaving room for the path and the request framing.
pub const MAX_VALUE_BYTES: usize = 1_000_000;
/// The largest request body; values are limited separately, after decoding.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A config node whose last segment is this name cannot be addressed directly: the
/// suffix selects the event stream of its parent.
pub const RESERVED_EVENTS: &str = "events";

/// Checks one znode name; `what` says what it is ("election name", "candidate id", ...).
pub fn name(what: &str, s: &str) -> Result<(), ApiError> {
    segment(what, s, s)
}

fn segment(what: &str, s: &str, whole: &str) -> Result<(), ApiError> {
    let problem = if s.is_empty() {
        Some("is empty".to_string())
    } else if s == "." || s == ".." {
        Some(format!("{s:?} is not allowed (relative names)"))
    } else if s.contains('/') {
        Some("must not contain '/'".to_string())
    } else if s.len() > MAX_NAME_BYTES {
        Some(format!(
            "is {} bytes long; the limit is {MAX_NAME_BYTES}",
            s.len()
        ))
    } else if s.contains('\0') {
        Some("contains a NUL character".to_string())
    } else if let Err(reason) = path::validate(&format!("/{s}"), false) {
        Some(format!("is not a valid znode name: {reason}"))
    } else {
        None
    };
    match problem {
        Some(p) => Err(ApiError::bad_request(format!("{what} {p}"))
            .with_detail(serde_json::json!({ "field": what, "value": whole }))),
        None => Ok(()),
    }
}

/// Checks a config path as it appears in the URL (`app/db/url`, no leading slash
/// needed) and returns it without leading or trailing slashes. The empty path is the
/// config root itself.
pub fn config_path(raw: &str) -> Result<String, ApiError> {
    let p = raw.strip_prefix('/').unwrap_or(raw);
    if p.len() > MAX_PATH_BYTES {
        return Err(ApiError::bad_request(format!(
            "config path is {} bytes long; the limit is {MAX_PATH_BYTES}",
            p.len()
        ))
        .with_detail(serde_json::json!({ "field": "path" })));
    }
    if p.is_empty() {
        return Ok(String::new());
    }
    if p.ends_with('/') {
        return Err(ApiError::bad_request("config path must not end with '/'")
            .with_detail(serde_json::json!({ "field": "path", "value": raw })));
    }
    for seg in p.split('/') {
        if seg.is_empty() {
            return Err(
                ApiError::bad_request("config path has an empty segment ('//')")
                    .with_detail(serde_json::json!({ "field": "path", "value": raw })),
            );
        }
        segment("config path segment", seg, raw)?;
    }
    Ok(p.to_string())
}

/// Checks the size of a decoded value.
pub fn value_size(what: &str, len: usize) -> Result<(), ApiError> {
    if len > MAX_VALUE_BYTES {
        return Err(ApiError::bad_request(format!(
            "{what} is {len} bytes; the limit is {MAX_VALUE_BYTES}"
        ))
        .with_detail(
            serde_json::json!({ "field": "value", "size": len, "limit": MAX_VALUE_BYTES }),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_zookeeper_rules() {
        for ok in ["a", "pod-0", "a.b", "..a", "ü", "x y"] {
            assert!(name("id", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\0b", "a\u{1}b", &"x".repeat(256)] {
            let e = name("id", bad).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with("id "), "{}", e.message);
        }
    }

    #[test]
    fn config_paths_are_normalised_and_checked() {
        assert_eq!(config_path("app/db").unwrap(), "app/db");
        assert_eq!(config_path("/app").unwrap(), "app");
        assert_eq!(config_path("").unwrap(), "");
        for bad in ["app/", "a//b", "a/./b", "a/../b", "a/\0", &"a/".repeat(600)] {
            assert!(config_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_have_a_size_limit() {
        assert!(value_size("value", MAX_VALUE_BYTES).is_ok());
        assert!(value_size("value", MAX_VALUE_BYTES + 1).is_err());
    }
}
