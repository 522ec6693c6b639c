//! `/v1/config/{path}`: get (one node or `?recursive=true` a subtree; blocking with
//! index/wait or If-None-Match + wait), put (upsert, If-Match compare-and-set,
//! If-None-Match: * create-only), delete (If-Match, `?recursive=true`), and
//! `/v1/config/{path}/events`.
//!
//! ETag = the node's version. Because `{path}/events` names the event stream, a config
//! node cannot be called `events` (writes refuse it; recursive reads still show nodes
//! by that name written by other clients).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::extract::{Body, Names, Params};
use crate::api::types::{ConfigValueBody, ConfigWrite};
use crate::app::App;
use crate::blocking::{self, Block};
use crate::config::{self, Node, Precondition};
use crate::error::ApiError;
use crate::hub::Filter;
use crate::names::{self, RESERVED_EVENTS};
use crate::sse::{self, Source};
use crate::value;

fn precondition(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Result<Option<Precondition>, ApiError> {
    let display = if name == header::IF_MATCH {
        "If-Match"
    } else {
        "If-None-Match"
    };
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("{display} is not valid text")))?;
            config::parse_precondition(display, text).map(Some)
        }
    }
}

fn set_etag(response: &mut Response, version: i32) {
    if let Ok(v) = HeaderValue::from_str(&config::etag(version)) {
        response.headers_mut().insert(header::ETAG, v);
    }
}

/// Whether the node differs from what If-None-Match names.
fn differs(node: &Option<Node>, pre: Precondition) -> bool {
    match (node, pre) {
        (None, _) => true,
        (Some(_), Precondition::Any) => false,
        (Some(n), Precondition::Version(v)) => n.stat.version != v,
    }
}

/// `GET /v1/config`: the whole config tree.
pub async fn get_root(
    state: State<Arc<App>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read(state, String::new(), params, headers, true).await
}

/// `GET /v1/config/{path}` and `GET /v1/config/{path}/events`.
pub async fn get(
    state: State<Arc<App>>,
    Names(path): Names<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if path == RESERVED_EVENTS {
        return events(state, String::new(), params, headers).await;
    }
    if let Some(base) = path.strip_suffix(&format!("/{RESERVED_EVENTS}")) {
        return events(state, base.to_string(), params, headers).await;
    }
    read(state, path, params, headers, false).await
}

async fn read(
    State(app): State<Arc<App>>,
    path: String,
    params: Params,
    headers: HeaderMap,
    root: bool,
) -> Result<Response, ApiError> {
    let rel = names::config_path(&path)?;
    let recursive = root || params.flag("recursive")?;
    let encoding = params.encoding()?;
    let block = Block::from_params(&params.0)?;
    let if_none_match = precondition(&headers, header::IF_NONE_MATCH)?;
    app.sessions.client()?;
    let filter = Filter::Subtree(app.layout.config(&rel));
    if recursive {
        if if_none_match.is_some() {
            return Err(ApiError::bad_request(
                "If-None-Match applies to one node; use index + wait to block on a subtree",
            ));
        }
        let load = {
            let app = app.clone();
            let rel = rel.clone();
            move || {
                let app = app.clone();
                let rel = rel.clone();
                async move {
                    let client = app.sessions.client()?;
                    config::read_tree(&client, &app.layout, &rel).await
                }
            }
        };
        let (tree, index) =
            blocking::until(&app, &filter, block.deadline(false), load, |_, index| {
                block.moved(index)
            })
            .await?;
        if tree.is_empty() {
            let mut response = ApiError::not_found(format!("no config at {rel:?}"))
                .with_detail(json!({ "path": rel, "index": index }))
                .into_response();
            blocking::index_header(response.headers_mut(), index);
            return Ok(response);
        }
        let mut response =
            axum::Json(config::tree_json(&rel, &tree, index, encoding)).into_response();
        blocking::index_header(response.headers_mut(), index);
        return Ok(response);
    }
    let znode = app.layout.config(&rel);
    let load = {
        let app = app.clone();
        move || {
            let app = app.clone();
            let znode = znode.clone();
            async move {
                let client = app.sessions.client()?;
                config::read(&client, &znode).await
            }
        }
    };
    // If-None-Match without index blocks only when `wait` is given.
    let blocks = if_none_match.is_some() && block.wait.is_some();
    let done = |node: &Option<Node>, index: i64| {
        (block.index.is_some() && block.moved(index))
            || if_none_match.is_some_and(|pre| differs(node, pre))
    };
    let (node, index) = blocking::until(&app, &filter, block.deadline(blocks), load, done).await?;
    let mut response = match &node {
        None => ApiError::not_found(format!("no config node at {rel:?}"))
            .with_detail(json!({ "path": rel, "index": index }))
            .into_response(),
        Some(n) if if_none_match.is_some_and(|pre| !differs(&node, pre)) => {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            set_etag(&mut r, n.stat.version);
            r
        }
        Some(n) => {
            let mut r = axum::Json(config::node_json(&rel, n, encoding)).into_response();
            set_etag(&mut r, n.stat.version);
            r
        }
    };
    blocking::index_header(response.headers_mut(), index);
    Ok(response)
}

async fn events(
    State(app): State<Arc<App>>,
    path: String,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rel = names::config_path(&path)?;
    let recursive = params.flag("recursive")?;
    let encoding = params.encoding()?;
    let resume = crate::api::extract::last_event_id(&headers)?;
    let heartbeat = params
        .duration("heartbeat")?
        .unwrap_or(app.settings.heartbeat);
    let source = Source::Config {
        rel,
        recursive,
        encoding,
    };
    Ok(sse::stream(app, source, resume, heartbeat).into_response())
}

fn writable(rel: &str) -> Result<(), ApiError> {
    if rel.is_empty() {
        return Err(
            ApiError::bad_request("config path is empty").with_detail(json!({ "field": "path" }))
        );
    }
    // Not only the last segment: writing app/events/x would create app/events, which
    // GET /v1/config/app/events can never read (it is app's event stream).
    if rel.split('/').any(|seg| seg == RESERVED_EVENTS) {
        return Err(ApiError::bad_request(format!(
            "a config path cannot have a segment named {RESERVED_EVENTS:?} (reserved: {{path}}/{RESERVED_EVENTS} is the event stream of {{path}}, so such a node could not be read back)"
        ))
        .with_detail(json!({ "field": "path", "value": rel, "rule": "reserved-segment", "reserved": [RESERVED_EVENTS] })));
    }
    Ok(())
}

/// `PUT /v1/config/{path}` `{"value"}`.
pub async fn put(
    State(app): State<Arc<App>>,
    Names(path): Names<String>,
    params: Params,
    headers: HeaderMap,
    Body(body): Body<ConfigValueBody>,
) -> Result<Response, ApiError> {
    let rel = names::config_path(&path)?;
    writable(&rel)?;
    let encoding = params.encoding()?;
    let raw = body.map(|b| b.value).ok_or_else(|| {
        ApiError::bad_request("the body must be {\"value\": \"...\"}")
            .with_detail(json!({ "field": "value" }))
    })?;
    // `"value": null` writes null data.
    let data = raw
        .map(|raw| value::decode("value", &raw, encoding))
        .transpose()?;
    let if_match = precondition(&headers, header::IF_MATCH)?;
    let if_none_match = precondition(&headers, header::IF_NONE_MATCH)?;
    let client = app.sessions.client()?;
    let written = config::put(
        &client,
        &app.layout.config(&rel),
        data.as_deref(),
        if_match,
        if_none_match,
    )
    .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        axum::Json(ConfigWrite {
            path: rel,
            version: written.stat.version,
            modified: written.stat.mzxid,
            index: written.stat.mzxid,
        }),
    )
        .into_response();
    set_etag(&mut response, written.stat.version);
    blocking::index_header(response.headers_mut(), written.stat.mzxid);
    Ok(response)
}

/// `DELETE /v1/config/{path}`.
pub async fn delete(
    State(app): State<Arc<App>>,
    Names(path): Names<String>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rel = names::config_path(&path)?;
    if rel.is_empty() {
        return Err(ApiError::bad_request("config path is empty"));
    }
    let recursive = params.flag("recursive")?;
    let if_match = precondition(&headers, header::IF_MATCH)?;
    let client = app.sessions.client()?;
    config::delete(&client, &app.layout.config(&rel), if_match, recursive).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
