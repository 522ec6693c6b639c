//! The sidecar's ZooKeeper session, kept alive for as long as the process runs.
//!
//! A [`Client`] is one session; once the servers expire it, it is over. This module
//! establishes a session (retrying while the ensemble is unreachable), prepares it (the
//! base directories and the hub's watch), publishes it as a [`Slot`], and when it
//! expires starts a new one. Candidacies and memberships follow the slot and join
//! again on the new session by themselves; held locks are lost, as they must be.

use std::sync::Arc;
use std::time::Duration;

use paddock_client::{AddWatchMode, Client, CreateMode, Error as ZkError, SessionState};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::layout::Layout;
use crate::metrics::Metrics;

pub use crate::link::Link;

/// The current session as everyone sees it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub client: Option<Client>,
    /// Increases with every new session (0 before the first).
    pub generation: u64,
    pub link: Link,
    /// Increases with every (re)connection, so that a reconnect is visible even to
    /// someone who never saw the disconnection.
    pub connects: u64,
}

pub struct Sessions {
    servers: String,
    session_timeout: Duration,
    layout: Layout,
    slot: watch::Sender<Slot>,
}

/// Backoff between attempts to reach an unreachable ensemble.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a first connect may go unanswered before the sidecar warns that it cannot
/// reach the ensemble (later failed attempts warn as they give up).
const UNREACHABLE_WARNING: Duration = Duration::from_secs(2);

impl Sessions {
    pub fn new(servers: &str, session_timeout: Duration, layout: Layout) -> Arc<Sessions> {
        let (slot, _) = watch::channel(Slot {
            client: None,
            generation: 0,
            link: Link::Connecting,
            connects: 0,
        });
        Arc::new(Sessions {
            servers: servers.to_string(),
            session_timeout,
            layout,
            slot,
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Slot> {
        self.slot.subscribe()
    }

    pub fn slot(&self) -> Slot {
        self.slot.borrow().clone()
    }

    /// The link right now: the client's own state, which changes the moment the
    /// connection drops (the published slot follows a moment later).
    pub fn link(&self) -> Link {
        let slot = self.slot.borrow();
        match &slot.client {
            Some(client) => Link::of(client.state()),
            None => slot.link,
        }
    }

    /// The client, if the session is connected now; otherwise a 503 that says why.
    pub fn client(&self) -> Result<Client, ApiError> {
        let slot = self.slot.borrow();
        let link = match &slot.client {
            Some(client) => Link::of(client.state()),
            None => slot.link,
        };
        match (&slot.client, link) {
            (Some(client), Link::Connected) => Ok(client.clone()),
            (_, link) => Err(unavailable(link)),
        }
    }

    /// The generation of the current session, with its client, if connected.
    pub fn connected(&self) -> Option<(Client, u64)> {
        let slot = self.slot.borrow();
        match &slot.client {
            Some(client) if client.state() == SessionState::Connected => {
                Some((client.clone(), slot.generation))
            }
            _ => None,
        }
    }

    /// Ends the current session (its ephemeral nodes go at once).
    pub async fn close(&self) {
        let client = self.slot.borrow().client.clone();
        if let Some(client) = client {
            client.close().await;
        }
    }

    /// Keeps a session alive until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        let mut generation = 0u64;
        let mut failures = 0u64;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let builder = Client::builder(self.servers.clone())
                .session_timeout(self.session_timeout)
                .connect_timeout(self.session_timeout.max(Duration::from_secs(2)))
                .request_timeout(self.session_timeout.max(Duration::from_secs(2)));
            let connect = builder.connect();
            tokio::pin!(connect);
            let mut warned = false;
            let connected = loop {
                tokio::select! {
                    r = &mut connect => break r,
                    // A connect attempt may take the whole connect timeout: say early
                    // that nothing answers, not only when the attempt gives up.
                    _ = tokio::time::sleep(UNREACHABLE_WARNING), if !warned && failures == 0 => {
                        warned = true;
                        tracing::warn!(servers = %self.servers, waited = ?UNREACHABLE_WARNING, "cannot reach the ensemble yet; still trying");
                    }
                    _ = shutdown.changed() => return,
                }
            };
            let client = match connected {
                Ok(client) => client,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(error = %e, servers = %self.servers, attempts = failures, "cannot reach the ensemble; retrying");
                    }
                    self.set_link(Link::Connecting);
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            failures = 0;
            backoff = Duration::from_millis(100);
            let mut states = client.state_changes();
            let hub_states = client.state_changes();
            let watch = match self.prepare(&client).await {
                Ok(watch) => watch,
                Err(e) => {
                    tracing::warn!(error = %e, root = %self.layout.root(), "cannot prepare the session; starting over");
                    client.close().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            generation += 1;
            hub.attach(watch, hub_states, generation);
            let info = client.session();
            tracing::info!(
                session = %format!("{:#x}", info.id),
                timeout_ms = info.timeout.as_millis() as u64,
                server = ?info.server,
                generation,
                "session established"
            );
            metrics.session_established();
            self.slot.send_modify(|s| {
                s.client = Some(client.clone());
                s.generation = generation;
                s.link = Link::of(client.state());
                s.connects += 1;
            });
            metrics.set_link(self.link());
            while let Some(state) = states.next().await {
                let link = Link::of(state);
                match link {
                    Link::Suspended => {
                        tracing::warn!("disconnected from the ensemble; session suspended")
                    }
                    Link::Connected => tracing::info!("reconnected; session resumed"),
                    _ => {}
                }
                self.slot.send_modify(|s| {
                    s.link = link;
                    if link == Link::Connected {
                        s.connects += 1;
                    }
                });
                metrics.set_link(link);
                if state.is_terminal() {
                    break;
                }
            }
            hub.detach();
            let state = client.state();
            self.slot.send_modify(|s| {
                s.client = None;
                s.link = Link::of(state);
            });
            metrics.set_link(Link::of(state));
            if *shutdown.borrow() || state == SessionState::Closed {
                if *shutdown.borrow() {
                    return;
                }
                tracing::warn!("session closed; establishing a new one");
            } else {
                metrics.session_expired();
                tracing::warn!(
                    ?state,
                    "session over: leadership, memberships and locks of this session are gone; establishing a new session"
                );
            }
        }
    }

    fn set_link(&self, link: Link) {
        self.slot.send_if_modified(|s| {
            if s.link == link {
                return false;
            }
            s.link = link;
            true
        });
    }

    /// The base directories and the hub's watch. Connection losses are retried; a
    /// failure that retrying cannot fix is returned.
    async fn prepare(&self, client: &Client) -> Result<paddock_client::WatchStream, ZkError> {
        for dir in self.layout.base_dirs() {
            retry(client, || client.ensure_path(&dir, CreateMode::Persistent)).await?;
        }
        let root = self.layout.root().to_string();
        retry(client, || {
            client.add_watch(&root, AddWatchMode::PersistentRecursive)
        })
        .await
    }
}

/// Runs an idempotent operation until it gets an answer, waiting out connection losses.
async fn retry<T, F, Fut>(client: &Client, mut op: F) -> Result<T, ZkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZkError>>,
{
    loop {
        match op().await {
            Err(e) if e.is_connection_loss() => client.wait_connected().await?,
            other => return other,
        }
    }
}

/// The 503 for a request that needs the session while `link` says it cannot be used.
pub fn unavailable(link: Link) -> ApiError {
    let (message, retry) = match link {
        Link::Connecting => ("the ensemble is unreachable: no session yet", 2),
        Link::Suspended => (
            "disconnected from the ensemble (session suspended); nothing can be read or written until it reconnects",
            1,
        ),
        Link::Expired => ("the session expired; a new one is being established", 1),
        Link::Closed => ("the sidecar is shutting down", 5),
        Link::Connected => ("the session changed while answering; try again", 1),
    };
    ApiError::unavailable(message)
        .retry_after(retry)
        .with_detail(serde_json::json!({ "session": link.name() }))
}
