//! Serving the API with limits, so a slow or hostile local client cannot hold connections
//! or memory: request heads must arrive within `--http-read-timeout` (which also closes an
//! idle keep-alive connection), request bodies are read whole within the same timeout
//! (408) and up to [`MAX_BODY_BYTES`] (413, at once when Content-Length says so), and at
//! most `--max-connections` connections are open (503 beyond). Blocking reads and SSE
//! streams are GETs without a body, so neither timeout limits how long they run. The loop
//! itself is `paddock-httpserve`, shared with the server's admin port; refusals here
//! carry the API's own error body.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::names::MAX_BODY_BYTES;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// For a request head, and again for its body.
    pub read_timeout: Duration,
    pub max_connections: usize,
}

impl From<HttpLimits> for paddock_httpserve::HttpLimits {
    fn from(limits: HttpLimits) -> Self {
        paddock_httpserve::HttpLimits {
            header_timeout: limits.read_timeout,
            body_timeout: limits.read_timeout,
            max_body_bytes: MAX_BODY_BYTES,
            max_connections: limits.max_connections,
        }
    }
}

/// Serves `router` until `shutdown` completes, then lets open connections finish their
/// current request (each is told to close) and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    paddock_httpserve::serve_rendering(listener, router, limits.into(), api_error, shutdown).await
}

fn api_error(status: StatusCode, message: String) -> Response {
    ApiError::new(status, message).into_response()
}
