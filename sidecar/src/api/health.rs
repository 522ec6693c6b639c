//! `/healthz` (the process answers), `/readyz` (the session is connected), `/metrics`,
//! `/v1/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::types::{Health, Ready};
use crate::app::App;
use crate::error::ApiError;
use crate::session::{self, Link};

pub async fn healthz() -> Response {
    axum::Json(Health {
        status: "ok".into(),
    })
    .into_response()
}

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let link = app.sessions.link();
    if app.shutting_down() {
        return session::unavailable(Link::Closed).into_response();
    }
    if link == Link::Connected {
        let slot = app.sessions.slot();
        axum::Json(Ready {
            ready: true,
            session: link.into(),
            generation: slot.generation,
        })
        .into_response()
    } else {
        let e = session::unavailable(link);
        ApiError {
            message: format!("not ready: {}", e.message),
            ..e
        }
        .into_response()
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

pub async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
