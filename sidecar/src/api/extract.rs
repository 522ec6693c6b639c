//! Extractors whose rejections are ours: every malformed path, query or body becomes a
//! 400 in the API's JSON error shape, never axum's plain-text rejection.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::schema;

use crate::duration;
use crate::error::ApiError;
use crate::names::MAX_BODY_BYTES;
use crate::value::Encoding;

/// The query string as a map.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(map)) => Ok(Params(map)),
            Err(e) => Err(ApiError::bad_request(format!(
                "malformed query string: {}",
                e.body_text()
            ))),
        }
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn encoding(&self) -> Result<Encoding, ApiError> {
        Encoding::from_param(self.get("encoding"))
    }

    /// A boolean parameter: absent is `false`; `true/false/1/0/yes/no`, or present
    /// without a value (`?recursive`), are accepted.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some("" | "true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "{key} must be true or false, got {other:?}"
            ))
            .with_detail(serde_json::json!({ "field": key }))),
        }
    }

    /// A duration parameter.
    pub fn duration(&self, key: &str) -> Result<Option<std::time::Duration>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => duration::parse(raw).map(Some).map_err(|e| {
                ApiError::bad_request(format!("{key}: {e}"))
                    .with_detail(serde_json::json!({ "field": key }))
            }),
        }
    }
}

/// Path parameters.
pub struct Names<T>(pub T);

impl<T, S> FromRequestParts<S> for Names<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Names(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "malformed path: {}",
                e.body_text()
            ))),
        }
    }
}

/// A JSON body, checked against the schema of `T` (the one the OpenAPI document
/// shows); `None` when the body is empty.
pub struct Body<T>(pub Option<T>);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned + JsonSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!(
                "cannot read the request body (the limit is {MAX_BODY_BYTES} bytes): {}",
                e.body_text()
            ))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(None));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("malformed JSON body: {e}"))
                .with_detail(serde_json::json!({ "line": e.line(), "column": e.column() }))
        })?;
        schema::check::<T>(&value)?;
        // The schema admits only what T reads, so this fails only on a bug; say so.
        serde_json::from_value::<T>(value)
            .map(|v| Body(Some(v)))
            .map_err(|e| ApiError::bad_request(format!("the body does not fit: {e}")))
    }
}

/// `Last-Event-ID`, if any.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().unwrap_or("").trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "Last-Event-ID must be an event id from this API (a zxid), got {text:?}"
                ))
            })
        }
    }
}
