//! Serving an axum `Router` with limits, so that a slow or hostile client cannot hold
//! connections or memory: a request head must arrive within a timeout (hyper's
//! `header_read_timeout`, which also closes an idle keep-alive connection), a request
//! body is read whole within another timeout and up to a size (413 beyond it, at once when
//! Content-Length says so), and at most so many connections are open (503 beyond).
//! `axum::serve` offers none of these knobs, hence this loop. GETs without a body (blocking
//! reads, event streams) are limited by neither timeout once their head has arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From a connection's first byte (or its previous response) to a whole request head.
    pub header_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_connections: usize,
}

/// Renders the answer to a request refused here (body too large, too slow or unreadable)
/// in the API's own error format; the connection is closed after it.
pub type RenderError = fn(StatusCode, String) -> Response;

/// The default error body: `{"error": message}`.
pub fn json_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

/// Serves `router` on `listener` until `shutdown` completes, then tells open connections
/// to close after their current request and returns once all are closed. Requests carry
/// the peer's `ConnectInfo<SocketAddr>`, as `into_make_service_with_connect_info` gives.
/// Refusals are rendered by [`json_error`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_rendering(listener, router, limits, json_error, shutdown).await
}

/// [`serve`], with refusals rendered by `render`.
pub async fn serve_rendering(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    render: RenderError,
    shutdown: impl Future<Output = ()>,
) {
    let router = with_body_limits(router, limits, render);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "HTTP connection over the cap");
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let (router, stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, router, limits, stopping).await;
        });
    }
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopped(&mut stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// Returns once the server is stopping (the watch guard is not held past this, which
/// keeps the connection's future `Send`).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse_busy(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
        ),
    )
    .await;
}

/// `router` with every request body read whole (within the time and size limits) before
/// a handler sees it; refusals rendered by `render`.
pub fn with_body_limits(router: Router, limits: HttpLimits, render: RenderError) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        read_body_first(req, next, limits, render)
    }))
}

async fn read_body_first(
    req: Request,
    next: Next,
    limits: HttpLimits,
    render: RenderError,
) -> Response {
    let closing = |status, message| closing(render(status, message));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large(limits.max_body_bytes),
        );
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limits.body_timeout, collect(body, limits.max_body_bytes)).await {
        Err(_) => closing(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {:?}",
                limits.body_timeout
            ),
        ),
        Ok(Err(BodyError::TooLarge)) => closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large(limits.max_body_bytes),
        ),
        Ok(Err(BodyError::Read(e))) => closing(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        ),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// The whole body, refusing it as soon as it grows past `max`.
async fn collect(mut body: Body, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn too_large(max: usize) -> String {
    format!("the request body exceeds the limit of {max} bytes")
}

/// `response`, after which the connection closes (the rest of the body, if any, is not
/// read).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests;
