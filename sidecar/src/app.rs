//! What every handler and background task shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::elections::Elections;
use crate::groups::Groups;
use crate::hub::Hub;
use crate::layout::Layout;
use crate::locks::Locks;
use crate::metrics::Metrics;
use crate::session::Sessions;

/// Settings from the command line that handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This sidecar's id (`--id`, else the pod name): the default candidate and member
    /// id, and the default lock owner.
    pub id: Option<String>,
    /// The election campaigned by flag (`--election`).
    pub election: Option<String>,
    /// Default interval of SSE heartbeats.
    pub heartbeat: Duration,
    /// How long a join waits for its node before answering 202.
    pub join_timeout: Duration,
}

pub struct App {
    pub settings: Settings,
    pub layout: Layout,
    pub sessions: Arc<Sessions>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub elections: Elections,
    pub groups: Groups,
    pub locks: Locks,
    /// The bearer token every API call must carry (`--token-file`).
    pub token: Option<String>,
    /// Whether the candidate campaigning by flag leads (drives `--leader-label`).
    pub leading: watch::Sender<bool>,
    /// Bumped whenever local state changes (a role, a membership, shutdown), so that
    /// blocking reads and streams look again.
    local: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

impl App {
    pub fn new(
        settings: Settings,
        layout: Layout,
        sessions: Arc<Sessions>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        token: Option<String>,
    ) -> Arc<App> {
        Arc::new(App {
            settings,
            layout,
            sessions,
            hub,
            metrics,
            elections: Elections::default(),
            groups: Groups::default(),
            locks: Locks::default(),
            token,
            leading: watch::channel(false).0,
            local: watch::channel(0).0,
            shutdown: watch::channel(false).0,
        })
    }

    pub fn notify_local(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn local_changes(&self) -> watch::Receiver<u64> {
        self.local.subscribe()
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// From now on nothing claims leadership, readiness fails and streams end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.leading.send_replace(false);
        self.notify_local();
    }
}

/// Resolves once `shutdown` says so.
pub async fn shutdown_requested(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
