//! The HTTP API (DESIGN §4): routes, the bearer-token check and request metrics.

pub mod config;
pub mod elections;
pub mod extract;
pub mod groups;
pub mod health;
pub mod locks;
pub mod schema;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on};

use crate::app::App;
use crate::error::ApiError;
use crate::names::MAX_BODY_BYTES;

/// The methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Post,
    Delete,
}

impl Verb {
    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Put => "PUT",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route of the API: the router is built from these rows and nothing else, and the
/// OpenAPI document is checked against them (`documented`).
pub struct Route {
    pub verb: Verb,
    /// The path as the router matches it.
    pub path: &'static str,
    /// The paths the OpenAPI document shows it under (the config wildcard serves both
    /// `{path}` and `{path}/events`).
    pub documented: &'static [&'static str],
    handler: MethodRouter<Arc<App>>,
}

fn row<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<App>>,
    T: 'static,
{
    Route {
        verb,
        path,
        documented: &[],
        handler: on(verb.filter(), handler),
    }
}

/// The config wildcard, shown in the document under `documented`.
fn config_row<H, T>(verb: Verb, documented: &'static [&'static str], handler: H) -> Route
where
    H: Handler<T, Arc<App>>,
    T: 'static,
{
    Route {
        documented,
        ..row(verb, "/v1/config/{*path}", handler)
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Verb::{Delete, Get, Post, Put};
    vec![
        row(Get, "/healthz", health::healthz),
        row(Get, "/readyz", health::readyz),
        row(Get, "/metrics", health::metrics),
        row(Get, "/v1/openapi.json", health::openapi),
        row(Get, "/v1/elections/{election}", elections::state),
        row(Get, "/v1/elections/{election}/self", elections::am_i_leader),
        row(Get, "/v1/elections/{election}/events", elections::events),
        row(
            Put,
            "/v1/elections/{election}/candidates/{id}",
            elections::join,
        ),
        row(
            Delete,
            "/v1/elections/{election}/candidates/{id}",
            elections::resign,
        ),
        row(Get, "/v1/groups/{group}/members", groups::list),
        row(Get, "/v1/groups/{group}/events", groups::events),
        row(Put, "/v1/groups/{group}/members/{id}", groups::join),
        row(Delete, "/v1/groups/{group}/members/{id}", groups::leave),
        row(Get, "/v1/config", config::get_root),
        config_row(
            Get,
            &["/v1/config/{path}", "/v1/config/{path}/events"],
            config::get,
        ),
        config_row(Put, &["/v1/config/{path}"], config::put),
        config_row(Delete, &["/v1/config/{path}"], config::delete),
        row(Post, "/v1/locks/{lock}", locks::acquire),
        row(Get, "/v1/locks/{lock}", locks::holder),
        row(Put, "/v1/locks/{lock}/{token}", locks::renew),
        row(Delete, "/v1/locks/{lock}/{token}", locks::release),
    ]
}

/// Every (method, path) the OpenAPI document must show.
pub fn documented_routes() -> Vec<(&'static str, &'static str)> {
    routes()
        .iter()
        .flat_map(|r| {
            let paths: &[&'static str] = if r.documented.is_empty() {
                std::slice::from_ref(&r.path)
            } else {
                r.documented
            };
            paths
                .iter()
                .map(|p| (r.verb.name(), *p))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn router(app: Arc<App>) -> Router {
    // Rows of one path merge into one method router.
    let api = routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler));
    api.fallback(not_found)
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
