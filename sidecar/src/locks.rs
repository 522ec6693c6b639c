//! Locks: grants this sidecar holds for its app, by fencing token, and how anyone's lock
//! looks.
//!
//! A grant lives as long as the session that won it: it is released by its token, and
//! lost (never silently re-acquired) if the session expires. Each grant is one task
//! owning the client recipe's [`LockGuard`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_client::recipe::{Hold, LockGuard};
use paddock_client::{Client, Error as ZkError, ErrorCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::app::App;
use crate::error::ApiError;
use crate::layout::{Layout, sequence_of};

/// The shortest time an acquire is given (see [`Locks::acquire`]).
pub const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// How many lost grants are remembered, so that releasing one says "lost", not "unknown".
const LOST_MEMORY: usize = 1024;

/// A grant held by this sidecar.
pub struct Grant {
    pub lock: String,
    pub token: i64,
    pub owner: String,
    hold: watch::Receiver<Hold>,
    release: mpsc::Sender<oneshot::Sender<Result<(), ApiError>>>,
}

impl Grant {
    pub fn hold(&self) -> Hold {
        *self.hold.borrow()
    }
}

#[derive(Default)]
pub struct Locks {
    grants: Mutex<BTreeMap<i64, Arc<Grant>>>,
    lost: Mutex<VecDeque<(i64, String)>>,
}

/// What releasing a token found.
pub enum Released {
    Released,
    /// The token is of another lock than the one named.
    WrongLock(String),
    /// The grant was lost with its session.
    Lost,
    Unknown,
}

impl Locks {
    pub fn held(&self, lock: &str) -> Vec<Arc<Grant>> {
        self.grants
            .lock()
            .map(|m| m.values().filter(|g| g.lock == lock).cloned().collect())
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<Arc<Grant>> {
        self.grants
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn was_lost(&self, token: i64) -> Option<String> {
        self.lost
            .lock()
            .ok()
            .and_then(|l| l.iter().find(|(t, _)| *t == token).map(|(_, n)| n.clone()))
    }

    /// Waits up to `wait` for the lock; `Ok(None)` if it was not granted in time.
    ///
    /// An attempt needs a few round trips (create our node, list the queue) even when
    /// the lock is free, so the wait is at least [`MIN_ATTEMPT`]; with `wait` zero a
    /// lock that is visibly held is refused at once.
    pub async fn acquire(
        app: &Arc<App>,
        lock: &str,
        owner: &str,
        wait: Duration,
    ) -> Result<Option<Arc<Grant>>, ApiError> {
        let client = app.sessions.client()?;
        let dir = app.layout.lock(lock);
        let data = serde_json::to_vec(&json!({
            "owner": owner,
            "sidecar": app.settings.id,
        }))
        .unwrap_or_default();
        let recipe = paddock_client::recipe::Lock::new(&client, &dir)
            .map_err(|e| ApiError::zk(&e, true))?
            .with_data(data);
        let started = std::time::Instant::now();
        if wait.is_zero() {
            let ((holder, _), _) = load(&client, &app.layout, lock).await?;
            if holder.is_some() {
                app.metrics.lock_outcome("timeout", started.elapsed());
                return Ok(None);
            }
        }
        let guard = match recipe.try_acquire(wait.max(MIN_ATTEMPT)).await {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                app.metrics.lock_outcome("timeout", started.elapsed());
                return Ok(None);
            }
            Err(e) => {
                app.metrics.lock_outcome("error", started.elapsed());
                return Err(ApiError::zk(&e, true));
            }
        };
        app.metrics.lock_outcome("acquired", started.elapsed());
        let token = guard.token();
        let (hold_tx, hold_rx) = watch::channel(guard.state());
        let (release_tx, release_rx) = mpsc::channel(1);
        let grant = Arc::new(Grant {
            lock: lock.to_string(),
            token,
            owner: owner.to_string(),
            hold: hold_rx,
            release: release_tx,
        });
        if let Ok(mut grants) = app.locks.grants.lock() {
            grants.insert(token, grant.clone());
        }
        tracing::info!(lock, token, owner, "lock granted");
        tokio::spawn(keep(app.clone(), grant.clone(), guard, hold_tx, release_rx));
        Ok(Some(grant))
    }

    /// Releases the grant `token` of `lock`.
    pub async fn release(app: &Arc<App>, lock: &str, token: i64) -> Result<Released, ApiError> {
        let grant = app
            .locks
            .grants
            .lock()
            .ok()
            .and_then(|m| m.get(&token).cloned());
        let Some(grant) = grant else {
            return Ok(match app.locks.was_lost(token) {
                Some(name) if name == lock => Released::Lost,
                _ => Released::Unknown,
            });
        };
        if grant.lock != lock {
            return Ok(Released::WrongLock(grant.lock.clone()));
        }
        let (tx, rx) = oneshot::channel();
        if grant.release.send(tx).await.is_err() {
            return Ok(Released::Lost);
        }
        match rx.await {
            Ok(r) => r.map(|()| Released::Released),
            Err(_) => Ok(Released::Lost),
        }
    }

    /// Releases every grant (shutdown).
    pub async fn release_all(app: &Arc<App>) {
        let all = app.locks.all();
        let releases = all.iter().map(|g| Locks::release(app, &g.lock, g.token));
        futures_util::future::join_all(releases).await;
    }
}

/// Holds a grant until released or lost.
async fn keep(
    app: Arc<App>,
    grant: Arc<Grant>,
    mut guard: LockGuard,
    hold: watch::Sender<Hold>,
    mut release: mpsc::Receiver<oneshot::Sender<Result<(), ApiError>>>,
) {
    let forget = |lost: bool| {
        if let Ok(mut grants) = app.locks.grants.lock() {
            grants.remove(&grant.token);
        }
        if lost && let Ok(mut l) = app.locks.lost.lock() {
            l.push_back((grant.token, grant.lock.clone()));
            while l.len() > LOST_MEMORY {
                l.pop_front();
            }
        }
        app.notify_local();
    };
    loop {
        tokio::select! {
            state = guard.changed() => {
                hold.send_replace(state);
                app.notify_local();
                if state == Hold::Lost {
                    tracing::warn!(lock = %grant.lock, token = grant.token, "lock lost with its session");
                    app.metrics.lock_lost();
                    forget(true);
                    return;
                }
            }
            // A release request (or, should every handle go, an implicit one).
            reply = release.recv() => {
                let r = guard.release().await.map_err(|e| ApiError::zk(&e, true));
                tracing::info!(lock = %grant.lock, token = grant.token, "lock released");
                forget(false);
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
                return;
            }
        }
    }
}

/// The holder of a lock as read from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub token: i64,
    pub owner: Value,
    pub sidecar: Value,
}

/// Reads a lock: its holder and how many wait; the index is the directory's pzxid.
pub async fn load(
    client: &Client,
    layout: &Layout,
    lock: &str,
) -> Result<((Option<Holder>, usize), i64), ApiError> {
    let dir = layout.lock(lock);
    let (children, stat) = match client.get_children_stat(&dir).await {
        Ok(found) => found,
        Err(ZkError::Server {
            code: ErrorCode::NoNode,
            ..
        }) => {
            let index = match client.exists(&layout.locks()).await {
                Ok(Some(stat)) => stat.pzxid,
                Ok(None) => 0,
                Err(e) => return Err(ApiError::zk(&e, false)),
            };
            return Ok(((None, 0), index));
        }
        Err(e) => return Err(ApiError::zk(&e, false)),
    };
    let mut queue: Vec<(u64, String)> = children
        .into_iter()
        .filter_map(|name| sequence_of(&name).map(|seq| (seq, name)))
        .collect();
    queue.sort();
    let contenders = queue.len();
    for (_, name) in queue {
        match client.get_data(&format!("{dir}/{name}")).await {
            Ok((data, node)) => {
                let parsed: Value = serde_json::from_slice(&data).unwrap_or(Value::Null);
                let owner = match parsed.get("owner") {
                    Some(o) => o.clone(),
                    None => match std::str::from_utf8(&data) {
                        Ok(text) if !text.is_empty() => Value::String(text.to_string()),
                        _ => Value::Null,
                    },
                };
                let sidecar = parsed.get("sidecar").cloned().unwrap_or(Value::Null);
                return Ok((
                    (
                        Some(Holder {
                            token: node.czxid,
                            owner,
                            sidecar,
                        }),
                        contenders.saturating_sub(1),
                    ),
                    stat.pzxid,
                ));
            }
            Err(ZkError::Server {
                code: ErrorCode::NoNode,
                ..
            }) => continue,
            Err(e) => return Err(ApiError::zk(&e, false)),
        }
    }
    Ok(((None, 0), stat.pzxid))
}

pub fn hold_name(h: Hold) -> &'static str {
    match h {
        Hold::Held => "held",
        Hold::Suspended => "suspended",
        Hold::Lost => "lost",
    }
}
