//! Server-sent event streams of elections, groups and config subtrees.
//!
//! Every stream follows the same contract:
//! * the first event is the full state (`state`, `members` or `snapshot`); later events
//!   are changes (`state`/`members` carry the full document again, config streams send
//!   `put` and `delete` per node);
//! * `id:` is the index (a zxid) of the state the event brings the reader to, and is
//!   set only on a consistent read, so a reader that reconnects with `Last-Event-ID`
//!   gets exactly what it missed: nothing if nothing changed, else the current state;
//! * `heartbeat` events (default every 15 s, `?heartbeat=` to change) carry the session
//!   state, so a stream never goes quiet while looking alive;
//! * when the session drops, a `suspended` event comes at once; after the session comes
//!   back (or a new one replaces an expired one), a `resync` event carries the full
//!   state, because changes may have been missed in between.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::app::App;
use crate::config::{self, Tree};
use crate::elections;
use crate::error::ApiError;
use crate::groups;
use crate::hub::{Filter, load_consistent};
use crate::session::Link;
use crate::value::Encoding;

/// The shortest heartbeat interval a reader may ask for.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(200);

/// What a stream follows.
#[derive(Debug, Clone)]
pub enum Source {
    Election {
        name: String,
        id: Option<String>,
        encoding: Encoding,
    },
    Group {
        name: String,
        encoding: Encoding,
    },
    Config {
        rel: String,
        recursive: bool,
        encoding: Encoding,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Doc(Value),
    Tree(Tree),
}

impl Source {
    fn filter(&self, app: &App) -> Filter {
        match self {
            Source::Election { name, .. } => Filter::Subtree(app.layout.election(name)),
            Source::Group { name, .. } => Filter::Subtree(app.layout.group(name)),
            Source::Config { rel, .. } => Filter::Subtree(app.layout.config(rel)),
        }
    }

    async fn load(&self, app: Arc<App>) -> Result<(State, i64), ApiError> {
        let client = app.sessions.client()?;
        match self {
            Source::Election { name, id, encoding } => {
                let me = app
                    .elections
                    .pick(name, id.as_deref(), app.settings.id.as_deref());
                let (view, index) =
                    elections::load_settled(&app, &client, name, me.as_ref()).await?;
                let (doc, _) =
                    elections::state_json(&app, name, Some(&view), index, me.as_ref(), *encoding);
                Ok((State::Doc(doc), index))
            }
            Source::Group { name, encoding } => {
                let (members, index) = groups::load(&client, &app.layout, name).await?;
                let doc = groups::members_json(&app, name, &members, index, *encoding);
                Ok((State::Doc(doc), index))
            }
            Source::Config { rel, recursive, .. } => {
                if *recursive {
                    let (tree, index) = config::read_tree(&client, &app.layout, rel).await?;
                    Ok((State::Tree(tree), index))
                } else {
                    let (node, index) = config::read(&client, &app.layout.config(rel)).await?;
                    let tree = node.map(|n| (rel.clone(), n)).into_iter().collect();
                    Ok((State::Tree(tree), index))
                }
            }
        }
    }

    /// The name of the full-state event.
    fn full_event(&self) -> &'static str {
        match self {
            Source::Election { .. } => "state",
            Source::Group { .. } => "members",
            Source::Config { .. } => "snapshot",
        }
    }

    fn full_data(&self, state: &State, index: i64) -> Value {
        match (self, state) {
            (_, State::Doc(doc)) => doc.clone(),
            (Source::Config { rel, encoding, .. }, State::Tree(tree)) => {
                config::tree_json(rel, tree, index, *encoding)
            }
            (_, State::Tree(_)) => Value::Null,
        }
    }

    /// Events that take a reader from `old` to `new`.
    fn diff(&self, old: &State, new: &State, index: i64) -> Vec<(&'static str, Value)> {
        match (old, new) {
            (State::Doc(a), State::Doc(b)) => {
                if without_index(a) == without_index(b) {
                    Vec::new()
                } else {
                    vec![(self.full_event(), b.clone())]
                }
            }
            (State::Tree(a), State::Tree(b)) => {
                let encoding = match self {
                    Source::Config { encoding, .. } => *encoding,
                    _ => Encoding::Utf8,
                };
                let mut out = Vec::new();
                let same = |x: &config::Node, y: &config::Node| {
                    x.data == y.data
                        && x.stat.version == y.stat.version
                        && x.stat.czxid == y.stat.czxid
                };
                for (path, node) in b {
                    if !a.get(path).is_some_and(|old| same(old, node)) {
                        let mut data = config::node_json(path, node, encoding);
                        if let Some(obj) = data.as_object_mut() {
                            obj.insert("index".into(), json!(index));
                        }
                        out.push(("put", data));
                    }
                }
                for path in a.keys().filter(|p| !b.contains_key(*p)) {
                    out.push(("delete", json!({ "path": path, "index": index })));
                }
                out
            }
            _ => vec![(self.full_event(), self.full_data(new, index))],
        }
    }

    /// Whether a resumed stream resends the state even if the index did not move (an
    /// election's `self` can change without the tree changing).
    fn always_full_on_resume(&self) -> bool {
        matches!(self, Source::Election { .. })
    }
}

fn without_index(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("index");
    }
    v
}

/// An SSE response following `source`, resuming after `resume` (Last-Event-ID).
pub fn stream(
    app: Arc<App>,
    source: Source,
    resume: Option<i64>,
    heartbeat: Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(drive(app, source, resume, heartbeat.max(MIN_HEARTBEAT), tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(body)
}

fn event(name: &str, data: &Value, id: Option<i64>) -> Event {
    let e = Event::default().event(name).data(data.to_string());
    match id {
        Some(id) => e.id(id.to_string()),
        None => e,
    }
}

/// Counts the stream in the metrics while it lives.
struct Open(Arc<App>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.sse_closed();
    }
}

/// What a stream says when the session goes down: `suspended`, and for an election the
/// state as this sidecar last knew it. Err when the client has gone.
async fn announce_down(
    app: &Arc<App>,
    source: &Source,
    link: Link,
    last_index: Option<i64>,
    tx: &mpsc::Sender<Event>,
) -> Result<(), mpsc::error::SendError<Event>> {
    tx.send(event("suspended", &json!({ "session": link.name() }), None))
        .await?;
    if let Source::Election { name, id, encoding } = source {
        let me = app
            .elections
            .pick(name, id.as_deref(), app.settings.id.as_deref());
        let (doc, _) = elections::state_json(
            app,
            name,
            None,
            last_index.unwrap_or(0),
            me.as_ref(),
            *encoding,
        );
        tx.send(event("state", &doc, None)).await?;
    }
    Ok(())
}

/// The events for a fresh read: the changes since `prev`; on a stream's first read, the
/// full state, unless the client resumed at this very index and the source allows it.
fn first_or_changed(
    source: &Source,
    prev: Option<&State>,
    resume: Option<i64>,
    value: &State,
    index: i64,
    consistent: bool,
) -> Vec<(&'static str, Value)> {
    match (prev, resume) {
        (Some(old), _) => source.diff(old, value, index),
        (None, Some(asked)) if asked == index && consistent && !source.always_full_on_resume() => {
            Vec::new()
        }
        (None, _) => vec![(source.full_event(), source.full_data(value, index))],
    }
}

async fn drive(
    app: Arc<App>,
    source: Source,
    resume: Option<i64>,
    heartbeat: Duration,
    tx: mpsc::Sender<Event>,
) {
    app.metrics.sse_opened();
    let _open = Open(app.clone());
    let filter = source.filter(&app);
    let mut slots = app.sessions.subscribe();
    let mut local = app.local_changes();
    let mut shutdown = app.shutdown_signal();
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.reset();
    let mut prev: Option<State> = None;
    let mut last_index: Option<i64> = resume;
    let mut announced_down = false;
    let mut needs_resync = false;
    let mut seen_connects: Option<(u64, u64)> = None;
    let send = |name: &str, data: &Value, id: Option<i64>| tx.send(event(name, data, id));
    loop {
        if app.shutting_down() {
            return;
        }
        slots.borrow_and_update();
        local.borrow_and_update();
        let link = app.sessions.link();
        if link != Link::Connected {
            if !announced_down {
                announced_down = true;
                needs_resync |= prev.is_some() || resume.is_some();
                if announce_down(&app, &source, link, last_index, &tx)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                _ = slots.changed() => {}
                _ = ticker.tick() => {
                    let beat = json!({ "session": app.sessions.link().name(), "index": last_index });
                    if send("heartbeat", &beat, None).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let slot = app.sessions.slot();
        let loaded = {
            let app = app.clone();
            let source = source.clone();
            load_consistent(&app.hub.clone(), &filter, move || {
                let app = app.clone();
                let source = source.clone();
                async move { source.load(app).await }
            })
            .await
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) if e.status == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
                // The session moved while reading: the top of the loop sorts it out.
                tokio::select! {
                    _ = slots.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = tx.closed() => return,
                }
                continue;
            }
            Err(e) => {
                let _ = send(
                    "error",
                    &json!({ "error": e.message, "detail": e.detail }),
                    None,
                )
                .await;
                return;
            }
        };
        let connects = (slot.generation, slot.connects);
        if seen_connects.is_some_and(|seen| seen != connects) && prev.is_some() {
            needs_resync = true;
        }
        seen_connects = Some(connects);
        let id = loaded.consistent.then_some(loaded.index);
        let value = loaded.value;
        let index = loaded.index;
        let mut sub = loaded.sub;
        let events = if needs_resync {
            vec![("resync", source.full_data(&value, index))]
        } else {
            first_or_changed(
                &source,
                prev.as_ref(),
                resume,
                &value,
                index,
                loaded.consistent,
            )
        };
        let had_events = !events.is_empty();
        for (name, data) in &events {
            if send(name, data, id).await.is_err() {
                return;
            }
        }
        if had_events && let Some(first) = sub.take_first_at() {
            app.metrics.watch_lag(first.elapsed());
        }
        if loaded.consistent {
            needs_resync = false;
            announced_down = false;
            last_index = Some(index);
        }
        prev = Some(value);
        if !loaded.consistent {
            // Changes keep arriving: read again shortly for a consistent id.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // Wait for something to look at.
        loop {
            tokio::select! {
                () = sub.next_relevant(&filter) => break,
                _ = slots.changed() => break,
                _ = local.changed(), if matches!(source, Source::Election { .. } | Source::Group { .. }) => break,
                _ = ticker.tick() => {
                    let beat = json!({ "session": app.sessions.link().name(), "index": last_index });
                    if send("heartbeat", &beat, None).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
                _ = shutdown.changed() => break,
            }
        }
    }
}
