//! Serving the API with limits, so a slow or hostile local client cannot hold connections
//! or memory: request heads must arrive within `--http-read-timeout` (hyper's
//! `header_read_timeout`, which also closes an idle keep-alive connection), request
//! bodies are read whole within the same timeout (408) and up to [`MAX_BODY_BYTES`]
//! (413, at once when Content-Length says so), and at most `--max-connections`
//! connections are open (503 beyond). Blocking reads and SSE streams are GETs without a
//! body, so neither timeout limits how long they run. `axum::serve` has none of these
//! knobs, hence this loop (the server's admin port has the same one for its own API).

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

use crate::error::ApiError;
use crate::names::MAX_BODY_BYTES;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// For a request head, and again for its body.
    pub read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` until `shutdown` completes, then lets open connections finish their
/// current request (each is told to close) and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let router = with_body_limits(router, limits.read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "connection over --max-connections");
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
        .header_read_timeout(limits.read_timeout);
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
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// Returns once the server is stopping (the watch guard is not held past this).
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

/// `router` with every request body read whole (within `timeout`, up to
/// [`MAX_BODY_BYTES`]) before a handler sees it.
pub fn with_body_limits(router: Router, timeout: Duration) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        read_body_first(req, next, timeout)
    }))
}

async fn read_body_first(req: Request, next: Next, timeout: Duration) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, collect(body)).await {
        Err(_) => closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {timeout:?}"),
        )),
        Ok(Err(BodyError::TooLarge)) => too_large(),
        Ok(Err(BodyError::Read(e))) => closing(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
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

/// The whole body, refusing it as soon as it grows past [`MAX_BODY_BYTES`].
async fn collect(mut body: Body) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

fn too_large() -> Response {
    closing(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds the limit of {MAX_BODY_BYTES} bytes"),
    ))
}

/// An error answer after which the connection closes (the rest of the body, if any, is
/// not read).
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
