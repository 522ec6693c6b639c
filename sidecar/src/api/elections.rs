//! `/v1/elections/{election}...`: join, resign, state, am-I-leader, events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::extract::{Body, Names, Params};
use crate::api::types::{CandidateState, SelfLeader, ValueBody};
use crate::app::App;
use crate::blocking::{self, Block};
use crate::elections::{self, Elections, Joined, SelfState};
use crate::error::ApiError;
use crate::hub::Filter;
use crate::names;
use crate::sse::{self, Source};
use crate::value::{self, Encoding};

/// The state document and our state, whatever the session: when it is not connected the
/// document says so and nobody is reported as leader.
async fn read(
    app: &Arc<App>,
    election: &str,
    id: Option<&str>,
    encoding: Encoding,
) -> Result<((Value, SelfState), i64), ApiError> {
    let me = app.elections.pick(election, id, app.settings.id.as_deref());
    let fallback = id.map(str::to_string).or_else(|| app.settings.id.clone());
    if let Ok(client) = app.sessions.client() {
        match elections::load_settled(app, &client, election, me.as_ref()).await {
            Ok((view, index)) => {
                let (mut doc, state) =
                    elections::state_json(app, election, Some(&view), index, me.as_ref(), encoding);
                fix_self_id(&mut doc, me.is_none(), fallback.as_deref());
                return Ok(((doc, state), index));
            }
            Err(e) if e.status != StatusCode::SERVICE_UNAVAILABLE => return Err(e),
            Err(_) => {}
        }
    }
    let (mut doc, state) = elections::state_json(app, election, None, 0, me.as_ref(), encoding);
    fix_self_id(&mut doc, me.is_none(), fallback.as_deref());
    Ok(((doc, state), 0))
}

/// Without a candidate here, `self.id` is the id asked about (or the sidecar's).
fn fix_self_id(doc: &mut Value, no_candidate: bool, id: Option<&str>) {
    if no_candidate && let Some(s) = doc.get_mut("self").and_then(Value::as_object_mut) {
        s.insert("id".into(), json!(id));
    }
}

fn check_id(params: &Params) -> Result<Option<String>, ApiError> {
    match params.get("id") {
        Some(id) => {
            names::name("candidate id", id)?;
            Ok(Some(id.to_string()))
        }
        None => Ok(None),
    }
}

/// `PUT /v1/elections/{election}/candidates/{id}` `{"value"}`: join (idempotent).
pub async fn join(
    State(app): State<Arc<App>>,
    Names((election, id)): Names<(String, String)>,
    params: Params,
    Body(body): Body<ValueBody>,
) -> Result<Response, ApiError> {
    names::name("election name", &election)?;
    names::name("candidate id", &id)?;
    let encoding = params.encoding()?;
    let raw = body.unwrap_or_default().value;
    let value = value::decode("value", &raw, encoding)?;
    if app.shutting_down() {
        return Err(crate::session::unavailable(crate::session::Link::Closed));
    }
    let (_, joined) = Elections::join(&app, &election, &id, value, false).await?;
    let ((doc, _), index) = read(&app, &election, Some(&id), encoding).await?;
    let status = match joined {
        Joined::Created => StatusCode::CREATED,
        Joined::Existing => StatusCode::OK,
        Joined::Pending => StatusCode::ACCEPTED,
    };
    let mut response = (status, axum::Json(doc)).into_response();
    blocking::index_header(response.headers_mut(), index);
    Ok(response)
}

/// `DELETE /v1/elections/{election}/candidates/{id}`: resign.
pub async fn resign(
    State(app): State<Arc<App>>,
    Names((election, id)): Names<(String, String)>,
) -> Result<Response, ApiError> {
    names::name("election name", &election)?;
    names::name("candidate id", &id)?;
    if Elections::resign(&app, &election, &id).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "{id:?} is not a candidate of election {election:?} on this sidecar"
        )))
    }
}

/// `GET /v1/elections/{election}`: who leads, and where we stand.
pub async fn state(
    State(app): State<Arc<App>>,
    Names(election): Names<String>,
    params: Params,
) -> Result<Response, ApiError> {
    names::name("election name", &election)?;
    let encoding = params.encoding()?;
    let block = Block::from_params(&params.0)?;
    let id = check_id(&params)?;
    let ((doc, state), index) = wait(&app, &election, id, encoding, block).await?;
    let mut response = axum::Json(doc).into_response();
    blocking::index_header(response.headers_mut(), index);
    if state == SelfState::Suspended || app.sessions.client().is_err() {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    Ok(response)
}

/// A blocking read of the state: returns when the index moves, our state changes, or
/// the session is not connected (a suspended sidecar never makes anyone wait).
async fn wait(
    app: &Arc<App>,
    election: &str,
    id: Option<String>,
    encoding: Encoding,
    block: Block,
) -> Result<((Value, SelfState), i64), ApiError> {
    let filter = Filter::Subtree(app.layout.election(election));
    let load = {
        let app = app.clone();
        let election = election.to_string();
        move || {
            let app = app.clone();
            let election = election.clone();
            let id = id.clone();
            async move { read(&app, &election, id.as_deref(), encoding).await }
        }
    };
    let mut first: Option<SelfState> = None;
    let done = |(_, state): &(Value, SelfState), index: i64| {
        let initial = *first.get_or_insert(*state);
        block.moved(index) || *state != initial || *state == SelfState::Suspended
    };
    blocking::until(app, &filter, block.deadline(false), load, done).await
}

/// `GET /v1/elections/{election}/self`: 200 when this sidecar's candidate leads, 503
/// otherwise (a readiness probe for active/passive Services).
pub async fn am_i_leader(
    State(app): State<Arc<App>>,
    Names(election): Names<String>,
    params: Params,
) -> Result<Response, ApiError> {
    names::name("election name", &election)?;
    let block = Block::from_params(&params.0)?;
    let id = check_id(&params)?;
    let ((doc, state), index) = wait(&app, &election, id, Encoding::Utf8, block).await?;
    let self_id = doc.pointer("/self/id").cloned().unwrap_or(Value::Null);
    match state {
        SelfState::Leader { token } => {
            let mut response = axum::Json(SelfLeader {
                leader: true,
                election,
                id: self_id.as_str().unwrap_or_default().to_string(),
                state: CandidateState::Leader,
                fencing_token: token,
                index,
            })
            .into_response();
            blocking::index_header(response.headers_mut(), index);
            Ok(response)
        }
        other => {
            let why = match other {
                SelfState::None => "this sidecar is not a candidate in this election",
                SelfState::Suspended => {
                    "the session is suspended: this sidecar cannot know whether it leads"
                }
                _ => "another candidate leads",
            };
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not the leader: {why}"),
            )
            .with_detail(json!({
                "leader": false,
                "election": election,
                "id": self_id,
                "state": other.name(),
                "currentLeader": doc.get("leader").cloned().unwrap_or(Value::Null),
                "fencingToken": doc.get("fencingToken").cloned().unwrap_or(Value::Null),
                "session": doc.get("session").cloned().unwrap_or(Value::Null),
            }));
            if other == SelfState::Suspended {
                e = e.retry_after(1);
            }
            let mut response = e.into_response();
            blocking::index_header(response.headers_mut(), index);
            Ok(response)
        }
    }
}

/// `GET /v1/elections/{election}/events`: SSE of `state` documents.
pub async fn events(
    State(app): State<Arc<App>>,
    Names(election): Names<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    names::name("election name", &election)?;
    let encoding = params.encoding()?;
    let id = check_id(&params)?;
    let resume = crate::api::extract::last_event_id(&headers)?;
    let heartbeat = params
        .duration("heartbeat")?
        .unwrap_or(app.settings.heartbeat);
    let source = Source::Election {
        name: election,
        id,
        encoding,
    };
    Ok(sse::stream(app, source, resume, heartbeat).into_response())
}
