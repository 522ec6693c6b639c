//! The one error shape of the API: `{"error": "<what went wrong>", "detail": <JSON>}`
//! with a precise status, plus `Retry-After` when trying again later can help (the
//! ensemble is unreachable, the session is suspended) and `WWW-Authenticate` on 401.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paddock_client::{Error as ZkError, ErrorCode};
use serde_json::{Value, json};

/// An answer other than success.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Value,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            detail: Value::Null,
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = detail;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn precondition_failed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PRECONDITION_FAILED, message)
    }

    /// 503 with `Retry-After`: the ensemble cannot answer right now.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(1)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A failed ZooKeeper request. `write` says whether the request changed something,
    /// so that a lost reply is reported as "may or may not have been applied".
    pub fn zk(err: &ZkError, write: bool) -> ApiError {
        let detail = json!({
            "code": err.code().name(),
            "znode": err.path(),
            "cause": err.to_string(),
        });
        let e = match err {
            ZkError::ConnectionLoss { .. } | ZkError::Timeout { .. } => {
                if write {
                    ApiError::unavailable(
                        "the connection to the ensemble was lost before the reply: the write may or may not have been applied",
                    )
                } else {
                    ApiError::unavailable("the connection to the ensemble was lost")
                }
            }
            ZkError::CannotConnect { .. } => {
                ApiError::unavailable("the ensemble is unreachable").retry_after(2)
            }
            ZkError::SessionExpired { .. } | ZkError::Closed => ApiError::unavailable(
                "the session with the ensemble ended; a new one is being established",
            ),
            ZkError::AuthFailed { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the ensemble refused our credentials",
            ),
            ZkError::InvalidPath { reason, .. } => {
                ApiError::bad_request(format!("invalid znode path: {reason}"))
            }
            ZkError::TooLarge { size, limit, .. } => ApiError::bad_request(format!(
                "request of {size} bytes exceeds the ensemble's {limit}-byte limit (jute.maxbuffer)"
            )),
            ZkError::BadArguments(msg) => ApiError::bad_request(msg.clone()),
            ZkError::Protocol(msg) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("unexpected answer from the ensemble: {msg}"),
            ),
            ZkError::Server { code, .. } | ZkError::MultiFailed { code, .. } => match code {
                ErrorCode::NoNode => ApiError::not_found("no such node"),
                ErrorCode::NodeExists => ApiError::conflict("the node exists already"),
                ErrorCode::BadVersion => ApiError::precondition_failed(
                    "the version does not match (compare-and-set lost)",
                ),
                ErrorCode::NotEmpty => ApiError::conflict("the node has children"),
                ErrorCode::NoAuth => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the ensemble's ACL does not allow this",
                ),
                ErrorCode::InvalidAcl | ErrorCode::BadArguments => {
                    ApiError::bad_request("the ensemble refused the arguments")
                }
                ErrorCode::NoChildrenForEphemerals => {
                    ApiError::conflict("the parent is an ephemeral node and cannot have children")
                }
                ErrorCode::QuotaExceeded => ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the ensemble's quota is exceeded",
                ),
                ErrorCode::ConnectionLoss
                | ErrorCode::OperationTimeout
                | ErrorCode::RequestTimeout
                | ErrorCode::SessionExpired
                | ErrorCode::SessionMoved
                | ErrorCode::Throttled
                | ErrorCode::NewConfigNoQuorum
                | ErrorCode::ReconfigInProgress => {
                    ApiError::unavailable(format!("the ensemble cannot answer now ({code})"))
                }
                other => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("the ensemble refused the request: {other}"),
                ),
            },
        };
        e.with_detail(detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "detail": self.detail });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"paddock-sidecar\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_precise_statuses() {
        let nonode = ZkError::Server {
            code: ErrorCode::NoNode,
            path: Some("/paddock/config/a".into()),
        };
        let e = ApiError::zk(&nonode, false);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.detail["znode"], "/paddock/config/a");
        assert_eq!(e.detail["code"], "NoNode");
        let lost = ApiError::zk(&ZkError::ConnectionLoss { path: None }, true);
        assert_eq!(lost.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(lost.retry_after, Some(1));
        assert!(lost.message.contains("may or may not"));
        let bad = ApiError::zk(
            &ZkError::Server {
                code: ErrorCode::BadVersion,
                path: None,
            },
            true,
        );
        assert_eq!(bad.status, StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn responses_carry_the_json_shape_and_headers() {
        let r = ApiError::unavailable("down").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::unauthorized("no").into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
