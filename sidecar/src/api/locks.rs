//! `/v1/locks/{lock}`: acquire (`?wait=`), release by token, holder.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::extract::{Body, LockBody, Names, Params};
use crate::app::App;
use crate::blocking::{self, Block, MAX_WAIT};
use crate::error::ApiError;
use crate::hub::Filter;
use crate::locks::{self, Locks, Released};
use crate::names;

async fn read(app: &Arc<App>, lock: &str) -> Result<(Value, i64), ApiError> {
    let client = app.sessions.client()?;
    let ((holder, waiting), index) = locks::load(&client, &app.layout, lock).await?;
    let own: Vec<Value> = app
        .locks
        .held(lock)
        .iter()
        .map(|g| json!({ "token": g.token, "owner": g.owner, "state": locks::hold_name(g.hold()) }))
        .collect();
    let doc = json!({
        "lock": lock,
        "holder": holder.map(|h| json!({ "fencingToken": h.token, "token": h.token, "owner": h.owner, "sidecar": h.sidecar })),
        "waiting": waiting,
        "self": own,
        "index": index,
        "session": app.sessions.link().name(),
    });
    Ok((doc, index))
}

/// `POST /v1/locks/{lock}?wait=10s` `{"owner"}`: acquire.
pub async fn acquire(
    State(app): State<Arc<App>>,
    Names(lock): Names<String>,
    params: Params,
    Body(body): Body<LockBody>,
) -> Result<Response, ApiError> {
    names::name("lock name", &lock)?;
    let wait = params
        .duration("wait")?
        .unwrap_or(Duration::ZERO)
        .min(MAX_WAIT);
    let owner = match body.and_then(|b| b.owner) {
        Some(o) => {
            crate::names::value_size("owner", o.len())?;
            o
        }
        None => app.settings.id.clone().unwrap_or_default(),
    };
    if app.shutting_down() {
        return Err(crate::session::unavailable(crate::session::Link::Closed));
    }
    let started = std::time::Instant::now();
    match Locks::acquire(&app, &lock, &owner, wait).await? {
        Some(grant) => Ok((
            StatusCode::OK,
            axum::Json(json!({
                "lock": lock,
                "token": grant.token,
                "fencingToken": grant.token,
                "owner": grant.owner,
            })),
        )
            .into_response()),
        None => {
            let holder = match read(&app, &lock).await {
                Ok((doc, _)) => doc.get("holder").cloned().unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let waited = started.elapsed();
            Err(ApiError::conflict(format!(
                "lock {lock:?} is held by another owner: not granted within the wait ({})",
                crate::duration::display(Duration::from_millis(waited.as_millis() as u64))
            ))
            .with_detail(
                json!({ "lock": lock, "holder": holder, "waited_ms": waited.as_millis() as u64 }),
            ))
        }
    }
}

/// `DELETE /v1/locks/{lock}/{token}`: release.
pub async fn release(
    State(app): State<Arc<App>>,
    Names((lock, token)): Names<(String, String)>,
) -> Result<Response, ApiError> {
    names::name("lock name", &lock)?;
    let token: i64 = token.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "token must be the integer fencing token of a grant, got {token:?}"
        ))
        .with_detail(json!({ "field": "token" }))
    })?;
    match Locks::release(&app, &lock, token).await? {
        Released::Released => Ok(StatusCode::NO_CONTENT.into_response()),
        Released::WrongLock(other) => Err(ApiError::conflict(format!(
            "token {token} is a grant of lock {other:?}, not {lock:?}"
        ))),
        Released::Lost => Err(ApiError::new(
            StatusCode::GONE,
            format!(
                "the grant {token} of lock {lock:?} was lost with its session (the lock may now be held by someone else)"
            ),
        )),
        Released::Unknown => Err(ApiError::not_found(format!(
            "no grant {token} of lock {lock:?} is held through this sidecar"
        ))),
    }
}

/// `GET /v1/locks/{lock}`: the holder (blocking with index/wait).
pub async fn holder(
    State(app): State<Arc<App>>,
    Names(lock): Names<String>,
    params: Params,
) -> Result<Response, ApiError> {
    names::name("lock name", &lock)?;
    let block = Block::from_params(&params.0)?;
    app.sessions.client()?;
    let filter = Filter::Subtree(app.layout.lock(&lock));
    let load = {
        let app = app.clone();
        let lock = lock.clone();
        move || {
            let app = app.clone();
            let lock = lock.clone();
            async move { read(&app, &lock).await }
        }
    };
    let (doc, index) = blocking::until(&app, &filter, block.deadline(false), load, |_, index| {
        block.moved(index)
    })
    .await?;
    let mut response = axum::Json(doc).into_response();
    blocking::index_header(response.headers_mut(), index);
    Ok(response)
}
