//! The HTTP API (DESIGN §4): routes, the bearer-token check and request metrics.

pub mod config;
pub mod elections;
pub mod extract;
pub mod groups;
pub mod health;
pub mod locks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};

use crate::app::App;
use crate::error::ApiError;
use crate::names::MAX_BODY_BYTES;

/// Every route, as (method, path) — the OpenAPI document is checked against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/elections/{election}"),
    ("GET", "/v1/elections/{election}/self"),
    ("GET", "/v1/elections/{election}/events"),
    ("PUT", "/v1/elections/{election}/candidates/{id}"),
    ("DELETE", "/v1/elections/{election}/candidates/{id}"),
    ("GET", "/v1/groups/{group}/members"),
    ("GET", "/v1/groups/{group}/events"),
    ("PUT", "/v1/groups/{group}/members/{id}"),
    ("DELETE", "/v1/groups/{group}/members/{id}"),
    ("GET", "/v1/config"),
    ("GET", "/v1/config/{path}"),
    ("PUT", "/v1/config/{path}"),
    ("DELETE", "/v1/config/{path}"),
    ("GET", "/v1/config/{path}/events"),
    ("POST", "/v1/locks/{lock}"),
    ("GET", "/v1/locks/{lock}"),
    ("DELETE", "/v1/locks/{lock}/{token}"),
];

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/v1/elections/{election}", get(elections::state))
        .route("/v1/elections/{election}/self", get(elections::am_i_leader))
        .route("/v1/elections/{election}/events", get(elections::events))
        .route(
            "/v1/elections/{election}/candidates/{id}",
            put(elections::join).delete(elections::resign),
        )
        .route("/v1/groups/{group}/members", get(groups::list))
        .route("/v1/groups/{group}/events", get(groups::events))
        .route(
            "/v1/groups/{group}/members/{id}",
            put(groups::join).delete(groups::leave),
        )
        .route("/v1/config", get(config::get_root))
        .route(
            "/v1/config/{*path}",
            get(config::get).put(config::put).delete(config::delete),
        )
        .route("/v1/locks/{lock}", get(locks::holder).post(locks::acquire))
        .route("/v1/locks/{lock}/{token}", delete(locks::release))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// The probe-only router (`--probe-listen`): kubelet probes arrive on the pod IP, which
/// the loopback API never listens on, so these three read-only endpoints can be served
/// on an address of their own without exposing anything else.
pub fn probe_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/elections/{election}/self", get(elections::am_i_leader))
        .fallback(probe_only)
        .with_state(app)
}

async fn probe_only(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "{} is not served on the probe address (only /healthz, /readyz and /v1/elections/{{election}}/self)",
        request.uri().path()
    ))
}

async fn not_found(request: Request) -> ApiError {
    let path = request.uri().path();
    // A route with an empty name in it (`/v1/elections//self`, `/v1/groups/g/members/`)
    // matches nothing; say what is wrong rather than "no such endpoint".
    if path.starts_with("/v1/") && (path.contains("//") || path.ends_with('/')) {
        return ApiError::bad_request(format!(
            "empty name in {path}: election, group and lock names, ids and config paths cannot be empty"
        ))
        .with_detail(serde_json::json!({ "path": path }));
    }
    ApiError::not_found(format!("no such endpoint: {}", request.uri().path()))
        .with_detail(serde_json::json!({ "openapi": "/v1/openapi.json" }))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .with_detail(serde_json::json!({ "openapi": "/v1/openapi.json" }))
}

/// Whether a request may skip the bearer token: health, metrics, the OpenAPI document,
/// and the leadership probe (kubelet probes cannot read a token file).
fn public(method: &Method, path: &str) -> bool {
    if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
        return true;
    }
    let segments: Vec<&str> = path.split('/').collect();
    method == Method::GET
        && matches!(segments.as_slice(), ["", "v1", "elections", e, "self"] if !e.is_empty())
}

/// Compares without leaking where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token
        && !public(request.method(), request.uri().path())
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let ok = given.is_some_and(|g| same(g.as_bytes(), token.as_bytes()));
        if !ok {
            app.metrics.request(401);
            let message = if given.is_some() {
                "the bearer token does not match"
            } else {
                "this endpoint needs Authorization: Bearer <token> (the sidecar runs with --token-file)"
            };
            return ApiError::unauthorized(message).into_response();
        }
    }
    let response = next.run(request).await;
    app.metrics.request(response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        assert!(public(&Method::GET, "/healthz"));
        assert!(public(&Method::GET, "/metrics"));
        assert!(public(&Method::GET, "/v1/openapi.json"));
        assert!(public(&Method::GET, "/v1/elections/e/self"));
        assert!(!public(&Method::GET, "/v1/elections/e"));
        assert!(!public(&Method::GET, "/v1/elections/self"));
        assert!(!public(&Method::GET, "/v1/elections/e/x/self"));
        assert!(!public(&Method::PUT, "/v1/elections/e/self"));
        assert!(!public(&Method::GET, "/v1/config/a"));
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
