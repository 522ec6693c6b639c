//! `/v1/groups/{group}...`: join, leave, list, events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::extract::{Body, Names, Params};
use crate::api::types::{GroupJoin, ValueBody};
use crate::app::App;
use crate::blocking::{self, Block};
use crate::error::ApiError;
use crate::groups::{self, Groups, Joined};
use crate::hub::Filter;
use crate::names;
use crate::sse::{self, Source};
use crate::value::{self, Encoding};

async fn read(
    app: &Arc<App>,
    group: &str,
    encoding: Encoding,
) -> Result<(serde_json::Value, i64), ApiError> {
    let client = app.sessions.client()?;
    let (members, index) = groups::load(&client, &app.layout, group).await?;
    Ok((
        groups::members_json(app, group, &members, index, encoding),
        index,
    ))
}

/// `PUT /v1/groups/{group}/members/{id}` `{"value"}`: join (idempotent).
pub async fn join(
    State(app): State<Arc<App>>,
    Names((group, id)): Names<(String, String)>,
    params: Params,
    Body(body): Body<ValueBody>,
) -> Result<Response, ApiError> {
    names::name("group name", &group)?;
    names::name("member id", &id)?;
    let encoding = params.encoding()?;
    let raw = body.unwrap_or_default().value;
    let value = value::decode("value", &raw, encoding)?;
    if app.shutting_down() {
        return Err(crate::session::unavailable(crate::session::Link::Closed));
    }
    let (member, joined) = Groups::join(&app, &group, &id, value, false).await?;
    let status = match joined {
        Joined::Created => StatusCode::CREATED,
        Joined::Existing => StatusCode::OK,
        Joined::Pending => StatusCode::ACCEPTED,
    };
    let doc = GroupJoin {
        group,
        id,
        state: member.state(&app),
        detail: (joined == Joined::Pending).then(|| {
            "the member node is not in place yet: a node of this id may be held by another session (often this pod's previous incarnation, until its session expires); the sidecar keeps trying".to_string()
        }),
    };
    Ok((status, axum::Json(doc)).into_response())
}

/// `DELETE /v1/groups/{group}/members/{id}`: leave.
pub async fn leave(
    State(app): State<Arc<App>>,
    Names((group, id)): Names<(String, String)>,
) -> Result<Response, ApiError> {
    names::name("group name", &group)?;
    names::name("member id", &id)?;
    if Groups::leave(&app, &group, &id).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "{id:?} is not a member of group {group:?} through this sidecar"
        )))
    }
}

/// `GET /v1/groups/{group}/members`: the members (blocking with index/wait).
pub async fn list(
    State(app): State<Arc<App>>,
    Names(group): Names<String>,
    params: Params,
) -> Result<Response, ApiError> {
    names::name("group name", &group)?;
    let encoding = params.encoding()?;
    let block = Block::from_params(&params.0)?;
    app.sessions.client()?;
    let filter = Filter::Subtree(app.layout.group(&group));
    let load = {
        let app = app.clone();
        let group = group.clone();
        move || {
            let app = app.clone();
            let group = group.clone();
            async move { read(&app, &group, encoding).await }
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

/// `GET /v1/groups/{group}/events`: SSE of `members` documents.
pub async fn events(
    State(app): State<Arc<App>>,
    Names(group): Names<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    names::name("group name", &group)?;
    let encoding = params.encoding()?;
    let resume = crate::api::extract::last_event_id(&headers)?;
    let heartbeat = params
        .duration("heartbeat")?
        .unwrap_or(app.settings.heartbeat);
    Ok(sse::stream(
        app,
        Source::Group {
            name: group,
            encoding,
        },
        resume,
        heartbeat,
    )
    .into_response())
}
