//! A config cache: a local copy of one node, or of a whole subtree, kept current by a
//! persistent (recursive) watch plus re-reads.
//!
//! Why it never misses an update: the watch is in place before the first read, every
//! event leads to a fresh read of the node it names (so coalesced or reordered events
//! cannot leave an old value behind), and after every reconnect the whole tree is read
//! again, because ZooKeeper does not replay what persistent watches missed while we
//! were away. Intermediate versions can be skipped, as with any ZooKeeper watch; the
//! latest one always arrives.
//!
//! While the session is suspended the cache says it is `Stale`; once the session is
//! over it says `Lost` and stops changing.

use std::collections::BTreeMap;
use std::sync::Arc;

use paddock_proto::{AddWatchMode, ErrorCode, EventType, Stat};
use tokio::sync::{broadcast, watch};

use crate::client::Client;
use crate::error::Error;
use crate::path;
use crate::recipe::support::AbortOnDrop;
use crate::session::SessionState;
use crate::watch::WatchedEvent;

pub use crate::recipe::group::ViewState as CacheState;

/// A node's data and Stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub data: Vec<u8>,
    pub stat: Stat,
}

/// The cached tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// Every cached node by path (the root, and with `recursive` its descendants).
    pub nodes: BTreeMap<String, Versioned>,
    pub state: CacheState,
    /// Increases with every change of `nodes` or `state`.
    pub generation: u64,
}

/// A change to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEvent {
    /// A node appeared or changed.
    Changed {
        path: String,
        node: Versioned,
    },
    Deleted {
        path: String,
    },
    /// The session is disconnected: the cache may be out of date.
    Stale,
    /// Reconnected and re-read: the cache is current again.
    Resynced,
    /// The session is over; no more events.
    Lost,
}

/// A self-updating copy of a node or subtree ([`ConfigCache::start`]).
#[derive(Debug)]
pub struct ConfigCache {
    root: String,
    view: watch::Receiver<Arc<ConfigView>>,
    events: broadcast::Sender<ConfigEvent>,
    _task: AbortOnDrop,
}

impl ConfigCache {
    /// Caches `root` (and, if `recursive`, every node under it). Returns once the first
    /// read is complete. A missing root is fine: it shows up once created.
    pub async fn start(client: &Client, root: &str, recursive: bool) -> Result<ConfigCache, Error> {
        path::check(root, false)?;
        let mode = if recursive {
            AddWatchMode::PersistentRecursive
        } else {
            AddWatchMode::Persistent
        };
        // The watch first, then the read: nothing can fall in between.
        let watch = client.add_watch(root, mode).await?;
        let nodes = load(client, root, recursive).await?;
        let (view_tx, view) = watch::channel(Arc::new(ConfigView {
            nodes,
            state: CacheState::Live,
            generation: 1,
        }));
        let (events, _) = broadcast::channel(1024);
        let task = Updater {
            client: client.clone(),
            root: root.to_string(),
            recursive,
            view: view_tx,
            events: events.clone(),
        };
        let task = tokio::spawn(task.run(watch));
        Ok(ConfigCache {
            root: root.to_string(),
            view,
            events,
            _task: AbortOnDrop(task),
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// The whole cache as of now.
    pub fn view(&self) -> Arc<ConfigView> {
        self.view.borrow().clone()
    }

    /// One cached node.
    pub fn get(&self, path: &str) -> Option<Versioned> {
        self.view.borrow().nodes.get(path).cloned()
    }

    /// Waits for the next change (of data or of state) and returns the new view.
    pub async fn changed(&mut self) -> Arc<ConfigView> {
        let _ = self.view.changed().await;
        self.view.borrow_and_update().clone()
    }

    /// A receiver of views, for select loops (always the latest; never misses the end
    /// state).
    pub fn views(&self) -> watch::Receiver<Arc<ConfigView>> {
        self.view.clone()
    }

    /// Every change from now on, in order. A receiver that falls more than 1024 events
    /// behind gets `Lagged` and should re-read [`view`](Self::view).
    pub fn events(&self) -> broadcast::Receiver<ConfigEvent> {
        self.events.subscribe()
    }
}

/// Reads `root` (and its subtree if `recursive`); missing nodes are simply absent.
async fn load(
    client: &Client,
    root: &str,
    recursive: bool,
) -> Result<BTreeMap<String, Versioned>, Error> {
    let mut nodes = BTreeMap::new();
    let mut pending = vec![root.to_string()];
    while let Some(node) = pending.pop() {
        match client.get_data(&node).await {
            Ok((data, stat)) => {
                let has_children = stat.num_children > 0;
                nodes.insert(node.clone(), Versioned { data, stat });
                if recursive && has_children {
                    match client.get_children(&node).await {
                        Ok(children) => {
                            pending.extend(children.iter().map(|c| path::join(&node, c)));
                        }
                        Err(Error::Server {
                            code: ErrorCode::NoNode,
                            ..
                        }) => {
                            nodes.remove(&node);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(nodes)
}

struct Updater {
    client: Client,
    root: String,
    recursive: bool,
    view: watch::Sender<Arc<ConfigView>>,
    events: broadcast::Sender<ConfigEvent>,
}

impl Updater {
    async fn run(self, mut watch: crate::watch::WatchStream) {
        let mut status = self.client.status();
        let mut seen = *status.borrow_and_update();
        // Set when a read failed or the connection changed: re-read everything once
        // connected.
        let mut resync = false;
        loop {
            let now = *status.borrow();
            if now.state.is_terminal() {
                return self.lost();
            }
            if now != seen {
                // Observe the session first: a read of ours must never hide a suspension.
                status.borrow_and_update();
                if now.state != SessionState::Connected {
                    self.stale();
                }
                if now.connection != seen.connection {
                    resync = true;
                }
                seen = now;
            }
            if resync && now.state == SessionState::Connected {
                let loaded = tokio::select! {
                    loaded = load(&self.client, &self.root, self.recursive) => Some(loaded),
                    _ = status.changed() => None,
                };
                match loaded {
                    Some(Ok(nodes)) => {
                        resync = false;
                        self.replace(nodes);
                    }
                    Some(Err(e)) if !e.is_connection_loss() => return self.lost(),
                    _ => {}
                }
                continue;
            }
            tokio::select! {
                event = watch.next() => match event {
                    Some(event) => {
                        let applied = tokio::select! {
                            applied = self.apply(event) => Some(applied),
                            _ = status.changed() => None,
                        };
                        match applied {
                            Some(Ok(())) => {}
                            Some(Err(e)) if !e.is_connection_loss() => return self.lost(),
                            // Interrupted: the resync after the reconnect covers it.
                            _ => resync = true,
                        }
                    }
                    // The watch ends only with the session.
                    None => return self.lost(),
                },
                changed = status.changed() => {
                    if changed.is_err() {
                        return self.lost();
                    }
                }
            }
        }
    }

    fn stale(&self) {
        if self.view.borrow().state == CacheState::Live {
            self.set_state(CacheState::Stale);
            let _ = self.events.send(ConfigEvent::Stale);
        }
    }

    /// Re-reads the node an event names.
    async fn apply(&self, event: WatchedEvent) -> Result<(), Error> {
        if event.event_type == EventType::NodeChildrenChanged {
            return Ok(()); // children report themselves (recursive) or are not cached
        }
        if event.event_type == EventType::NodeDeleted {
            self.remove(&event.path);
            return Ok(());
        }
        match self.client.get_data(&event.path).await {
            Ok((data, stat)) => self.upsert(&event.path, Versioned { data, stat }),
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => self.remove(&event.path),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn upsert(&self, path: &str, node: Versioned) {
        let changed = self.view.send_if_modified(|v| {
            let newer = match v.nodes.get(path) {
                // Same node, not older than what we have: a read after a later event
                // can come back before the reply to an earlier one is handled.
                Some(old) => old.stat.czxid != node.stat.czxid || old.stat.mzxid < node.stat.mzxid,
                None => true,
            };
            if !newer {
                return false;
            }
            let mut next = (**v).clone();
            next.nodes.insert(path.to_string(), node.clone());
            next.generation += 1;
            *v = Arc::new(next);
            true
        });
        if changed {
            let _ = self.events.send(ConfigEvent::Changed {
                path: path.to_string(),
                node,
            });
        }
    }

    fn remove(&self, path: &str) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut removed = Vec::new();
        self.view.send_if_modified(|v| {
            let gone: Vec<String> = v
                .nodes
                .keys()
                .filter(|k| k.as_str() == path || k.starts_with(&prefix))
                .cloned()
                .collect();
            if gone.is_empty() {
                return false;
            }
            let mut next = (**v).clone();
            for k in &gone {
                next.nodes.remove(k);
            }
            next.generation += 1;
            *v = Arc::new(next);
            removed = gone;
            true
        });
        for path in removed {
            let _ = self.events.send(ConfigEvent::Deleted { path });
        }
    }

    /// Installs a full re-read, reporting the differences.
    fn replace(&self, nodes: BTreeMap<String, Versioned>) {
        let old = self.view.borrow().nodes.clone();
        let mut events = Vec::new();
        for (path, node) in &nodes {
            if old.get(path) != Some(node) {
                events.push(ConfigEvent::Changed {
                    path: path.clone(),
                    node: node.clone(),
                });
            }
        }
        for path in old.keys().filter(|p| !nodes.contains_key(*p)) {
            events.push(ConfigEvent::Deleted { path: path.clone() });
        }
        self.view.send_modify(|v| {
            let generation = v.generation + 1;
            *v = Arc::new(ConfigView {
                nodes,
                state: CacheState::Live,
                generation,
            });
        });
        for event in events {
            let _ = self.events.send(event);
        }
        let _ = self.events.send(ConfigEvent::Resynced);
    }

    fn set_state(&self, state: CacheState) {
        self.view.send_if_modified(|v| {
            if v.state == state {
                return false;
            }
            let mut next = (**v).clone();
            next.state = state;
            next.generation += 1;
            *v = Arc::new(next);
            true
        });
    }

    fn lost(&self) {
        self.set_state(CacheState::Lost);
        let _ = self.events.send(ConfigEvent::Lost);
    }
}
