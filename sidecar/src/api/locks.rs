//! `/v1/locks/{lock}`: acquire (`?wait=`, `?ttl=`; idempotent for its owner), renew and
//! release by token, holder.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::extract::{Body, Names, Params};
use crate::api::types::{LockBody, LockGrant, LockHolder, LockState, OwnGrant};
use crate::app::App;
use crate::blocking::{self, Block, MAX_WAIT};
use crate::error::ApiError;
use crate::hub::Filter;
use crate::locks::{self, Ended, Found, Grant, Locks, MIN_TTL};
use crate::names;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The TTL and the time left of a grant, in milliseconds.
fn lease_ms(grant: &Grant) -> (Option<u64>, Option<u64>) {
    match grant.lease() {
        Some(l) => (
            Some(millis(l.ttl)),
            Some(millis(
                l.expires
                    .saturating_duration_since(tokio::time::Instant::now()),
            )),
        ),
        None => (None, None),
    }
}

fn grant_doc(grant: &Grant, again: bool) -> LockGrant {
    let (ttl_ms, expires_in_ms) = lease_ms(grant);
    LockGrant {
        lock: grant.lock.clone(),
        token: grant.token,
        fencing_token: grant.token,
        owner: grant.owner.clone(),
        again,
        ttl_ms,
        expires_in_ms,
    }
}

async fn read(app: &Arc<App>, lock: &str) -> Result<(LockState, i64), ApiError> {
    let client = app.sessions.client()?;
    let ((holder, waiting), index) = locks::load(&client, &app.layout, lock).await?;
    let own = app
        .locks
        .held(lock)
        .iter()
        .map(|g| {
            let (ttl_ms, expires_in_ms) = lease_ms(g);
            OwnGrant {
                token: g.token,
                owner: g.owner.clone(),
                state: g.hold().into(),
                ttl_ms,
                expires_in_ms,
            }
        })
        .collect();
    let doc = LockState {
        lock: lock.to_string(),
        holder: holder.map(|h| LockHolder {
            fencing_token: h.token,
            token: h.token,
            owner: h.owner,
            sidecar: h.sidecar,
        }),
        waiting,
        self_: own,
        index,
        session: app.sessions.link().into(),
    };
    Ok((doc, index))
}

/// `?ttl=`: at least [`MIN_TTL`].
fn ttl(params: &Params) -> Result<Option<Duration>, ApiError> {
    match params.duration("ttl")? {
        Some(t) if t < MIN_TTL => Err(ApiError::bad_request(format!(
            "ttl must be at least {}, got {}",
            crate::duration::display(MIN_TTL),
            crate::duration::display(t)
        ))
        .with_detail(json!({ "field": "ttl" }))),
        other => Ok(other),
    }
}

fn token_of(raw: &str) -> Result<i64, ApiError> {
    raw.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "token must be the integer fencing token of a grant, got {raw:?}"
        ))
        .with_detail(json!({ "field": "token" }))
    })
}

/// The answer when a token names no grant held here.
fn not_a_grant(found: Found, lock: &str, token: i64) -> ApiError {
    match found {
        Found::Grant(_) => ApiError::internal("the grant is held"),
        Found::WrongLock(other) => ApiError::conflict(format!(
            "token {token} is a grant of lock {other:?}, not {lock:?}"
        )),
        Found::Ended(Ended::Lost) => ApiError::new(
            StatusCode::GONE,
            format!(
                "the grant {token} of lock {lock:?} was lost with its session (the lock may now be held by someone else)"
            ),
        ),
        Found::Ended(Ended::Expired) => ApiError::new(
            StatusCode::GONE,
            format!(
                "the grant {token} of lock {lock:?} expired: its TTL passed without a renewal, and it was released"
            ),
        ),
        Found::Unknown => ApiError::not_found(format!(
            "no grant {token} of lock {lock:?} is held through this sidecar"
        )),
    }
}

/// `POST /v1/locks/{lock}?wait=10s&ttl=30s` `{"owner"}`: acquire.
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
    let ttl = ttl(&params)?;
    let owner = match body.and_then(|b| b.owner) {
        Some(o) => o,
        None => app.settings.id.clone().unwrap_or_default(),
    };
    if app.shutting_down() {
        return Err(crate::session::unavailable(crate::session::Link::Closed));
    }
    let started = std::time::Instant::now();
    match Locks::acquire(&app, &lock, &owner, wait, ttl).await? {
        Some(got) => Ok(axum::Json(grant_doc(&got.grant, got.again)).into_response()),
        None => {
            let holder = match read(&app, &lock).await {
                Ok((doc, _)) => serde_json::to_value(doc.holder).unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let waited = started.elapsed();
            Err(ApiError::conflict(format!(
                "lock {lock:?} is held by another owner: not granted within the wait ({})",
                crate::duration::display(Duration::from_millis(millis(waited)))
            ))
            .with_detail(json!({ "lock": lock, "holder": holder, "waited_ms": millis(waited) })))
        }
    }
}

/// `PUT /v1/locks/{lock}/{token}?ttl=30s`: renew (restart the TTL, or set a new one).
pub async fn renew(
    State(app): State<Arc<App>>,
    Names((lock, token)): Names<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    names::name("lock name", &lock)?;
    let token = token_of(&token)?;
    let ttl = ttl(&params)?;
    match Locks::renew(&app, &lock, token, ttl) {
        Found::Grant(grant) => Ok(axum::Json(grant_doc(&grant, true)).into_response()),
        other => Err(not_a_grant(other, &lock, token)),
    }
}

/// `DELETE /v1/locks/{lock}/{token}`: release.
pub async fn release(
    State(app): State<Arc<App>>,
    Names((lock, token)): Names<(String, String)>,
) -> Result<Response, ApiError> {
    names::name("lock name", &lock)?;
    let token = token_of(&token)?;
    match Locks::release(&app, &lock, token).await? {
        Found::Grant(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(not_a_grant(other, &lock, token)),
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
