//! Locks: grants this sidecar holds for its app, by fencing token, and how anyone's lock
//! looks.
//!
//! A grant lives as long as the session that won it: it is released by its token, and
//! lost (never silently re-acquired) if the session expires. Each grant is one task
//! owning the client recipe's [`LockGuard`].
//!
//! Asking again for a lock one already holds (same lock, same owner, through this
//! sidecar) returns the same grant: acquire is idempotent for its owner. A grant may
//! carry a TTL: unless renewed (or asked for again) within it, the sidecar releases it,
//! so that a lock does not outlive an app that died while its sidecar lives on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_client::recipe::{Hold, LockGuard};
use paddock_client::{Client, Error as ZkError, ErrorCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::app::App;
use crate::error::ApiError;
use crate::layout::{Layout, sequence_of};

/// The shortest time an acquire is given (see [`Locks::acquire`]).
pub const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// The shortest TTL: a renewal needs a round trip to the sidecar, and anything
/// shorter would expire grants of healthy apps.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// How many ended grants are remembered, so that releasing one says "lost" or
/// "expired", not "unknown".
const ENDED_MEMORY: usize = 1024;

/// How a grant ended other than by release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Lost with its session.
    Lost,
    /// Its TTL passed without a renewal.
    Expired,
}

/// A grant held by this sidecar.
pub struct Grant {
    pub lock: String,
    pub token: i64,
    pub owner: String,
    hold: watch::Receiver<Hold>,
    release: mpsc::Sender<oneshot::Sender<Result<(), ApiError>>>,
    /// The TTL and when it runs out (`None`: held until released).
    lease: watch::Sender<Option<Lease>>,
}

/// A TTL and its current deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ttl: Duration,
    pub expires: Instant,
}

impl Lease {
    fn starting_now(ttl: Duration) -> Lease {
        Lease {
            ttl,
            expires: Instant::now() + ttl,
        }
    }
}

impl Grant {
    pub fn hold(&self) -> Hold {
        *self.hold.borrow()
    }

    pub fn lease(&self) -> Option<Lease> {
        *self.lease.borrow()
    }

    /// Restarts the TTL (with `ttl` if given, else the grant's own): a renewal.
    fn renew(&self, ttl: Option<Duration>) {
        let ttl = ttl.or_else(|| self.lease().map(|l| l.ttl));
        if let Some(ttl) = ttl {
            self.lease.send_replace(Some(Lease::starting_now(ttl)));
        }
    }
}

/// One acquire at a time per (lock, owner): a second ask of the same owner while the
/// first still waits queues behind it and then gets the same grant, instead of
/// queueing a node of its own behind its own grant.
type Turns = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

#[derive(Default)]
pub struct Locks {
    grants: Mutex<BTreeMap<i64, Arc<Grant>>>,
    ended: Mutex<VecDeque<(i64, String, Ended)>>,
    turns: Mutex<Turns>,
}

/// What releasing or renewing a token found.
pub enum Found {
    Grant(Arc<Grant>),
    /// The token is of another lock than the one named.
    WrongLock(String),
    /// The grant ended without a release.
    Ended(Ended),
    Unknown,
}

/// What an acquire got.
pub struct Acquired {
    pub grant: Arc<Grant>,
    /// The owner held this lock already: the same grant, renewed.
    pub again: bool,
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

    fn ended(&self, token: i64) -> Option<(String, Ended)> {
        self.ended.lock().ok().and_then(|l| {
            l.iter()
                .find(|(t, _, _)| *t == token)
                .map(|(_, n, e)| (n.clone(), *e))
        })
    }

    /// The grant `token` of `lock`, or what became of it.
    pub fn find(&self, lock: &str, token: i64) -> Found {
        let grant = self.grants.lock().ok().and_then(|m| m.get(&token).cloned());
        match grant {
            Some(g) if g.lock != lock => Found::WrongLock(g.lock.clone()),
            Some(g) => Found::Grant(g),
            None => match self.ended(token) {
                Some((name, how)) if name == lock => Found::Ended(how),
                _ => Found::Unknown,
            },
        }
    }

    /// The turn of `owner` on `lock`; forgotten once nobody holds or waits for it.
    fn turn(&self, lock: &str, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut turns) = self.turns.lock() else {
            return Arc::default();
        };
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns
            .entry((lock.to_string(), owner.to_string()))
            .or_default()
            .clone()
    }

    /// The grant `owner` holds on `lock` through this sidecar, if any.
    fn owned(&self, lock: &str, owner: &str) -> Option<Arc<Grant>> {
        self.held(lock)
            .into_iter()
            .find(|g| g.owner == owner && g.hold() == Hold::Held)
    }

    /// Waits up to `wait` for the lock; `Ok(None)` if it was not granted in time.
    /// An owner that holds the lock already gets its grant back, renewed (with `ttl`
    /// if given).
    ///
    /// An attempt needs a few round trips (create our node, list the queue) even when
    /// the lock is free, so the wait is at least [`MIN_ATTEMPT`]; with `wait` zero a
    /// lock that is visibly held is refused at once.
    pub async fn acquire(
        app: &Arc<App>,
        lock: &str,
        owner: &str,
        wait: Duration,
        ttl: Option<Duration>,
    ) -> Result<Option<Acquired>, ApiError> {
        let client = app.sessions.client()?;
        let turn = app.locks.turn(lock, owner);
        let started = std::time::Instant::now();
        let Ok(_turn) = tokio::time::timeout(wait.max(MIN_ATTEMPT), turn.lock()).await else {
            app.metrics.lock_outcome("timeout", started.elapsed());
            return Ok(None);
        };
        let wait = wait.saturating_sub(started.elapsed());
        if let Some(grant) = app.locks.owned(lock, owner) {
            grant.renew(ttl);
            app.metrics.lock_outcome("reentered", Duration::ZERO);
            return Ok(Some(Acquired { grant, again: true }));
        }
        let dir = app.layout.lock(lock);
        let data = serde_json::to_vec(&json!({
            "owner": owner,
            "sidecar": app.settings.id,
        }))
        .unwrap_or_default();
        let recipe = paddock_client::recipe::Lock::new(&client, &dir)
            .map_err(|e| ApiError::zk(&e, true))?
            .with_data(data);
        if wait.is_zero() {
            let ((holder, _), _) = load(&client, &app.layout, lock).await?;
            if holder.is_some() {
                app.metrics.lock_outcome("timeout", started.elapsed());
                return Ok(None);
            }
        }
        let waiting = app.metrics.lock_waiter();
        let attempt = recipe.try_acquire(wait.max(MIN_ATTEMPT)).await;
        drop(waiting);
        let guard = match attempt {
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
        let (lease, leases) = watch::channel(ttl.map(Lease::starting_now));
        let grant = Arc::new(Grant {
            lock: lock.to_string(),
            token,
            owner: owner.to_string(),
            hold: hold_rx,
            release: release_tx,
            lease,
        });
        if let Ok(mut grants) = app.locks.grants.lock() {
            grants.insert(token, grant.clone());
        }
        tracing::info!(lock, token, owner, ttl = ?ttl, "lock granted");
        tokio::spawn(keep(
            app.clone(),
            grant.clone(),
            guard,
            hold_tx,
            release_rx,
            leases,
        ));
        Ok(Some(Acquired {
            grant,
            again: false,
        }))
    }

    /// Restarts the TTL of the grant `token` of `lock` (with `ttl` if given).
    pub fn renew(app: &Arc<App>, lock: &str, token: i64, ttl: Option<Duration>) -> Found {
        let found = app.locks.find(lock, token);
        if let Found::Grant(grant) = &found {
            grant.renew(ttl);
        }
        found
    }

    /// Releases the grant `token` of `lock`; `Found::Grant` once it is released.
    pub async fn release(app: &Arc<App>, lock: &str, token: i64) -> Result<Found, ApiError> {
        let grant = match app.locks.find(lock, token) {
            Found::Grant(grant) => grant,
            other => return Ok(other),
        };
        let (tx, rx) = oneshot::channel();
        if grant.release.send(tx).await.is_err() {
            return Ok(Found::Ended(Ended::Lost));
        }
        match rx.await {
            Ok(r) => r.map(|()| Found::Grant(grant)),
            Err(_) => Ok(Found::Ended(Ended::Lost)),
        }
    }

    /// Releases every grant (shutdown).
    pub async fn release_all(app: &Arc<App>) {
        let all = app.locks.all();
        let releases = all.iter().map(|g| Locks::release(app, &g.lock, g.token));
        futures_util::future::join_all(releases).await;
    }
}

/// Resolves when the lease runs out; never without one.
async fn expiry(lease: Option<Lease>) {
    match lease {
        Some(l) => tokio::time::sleep_until(l.expires).await,
        None => std::future::pending().await,
    }
}

/// Holds a grant until released, lost or expired.
async fn keep(
    app: Arc<App>,
    grant: Arc<Grant>,
    mut guard: LockGuard,
    hold: watch::Sender<Hold>,
    mut release: mpsc::Receiver<oneshot::Sender<Result<(), ApiError>>>,
    mut leases: watch::Receiver<Option<Lease>>,
) {
    let forget = |ended: Option<Ended>| {
        if let Ok(mut grants) = app.locks.grants.lock() {
            grants.remove(&grant.token);
        }
        if let Some(how) = ended
            && let Ok(mut l) = app.locks.ended.lock()
        {
            l.push_back((grant.token, grant.lock.clone(), how));
            while l.len() > ENDED_MEMORY {
                l.pop_front();
            }
        }
        app.notify_local();
    };
    loop {
        let lease = *leases.borrow_and_update();
        tokio::select! {
            state = guard.changed() => {
                hold.send_replace(state);
                app.notify_local();
                if state == Hold::Lost {
                    tracing::warn!(lock = %grant.lock, token = grant.token, "lock lost with its session");
                    app.metrics.lock_lost();
                    forget(Some(Ended::Lost));
                    return;
                }
            }
            // A renewal: look at the new deadline.
            _ = leases.changed() => {}
            () = expiry(lease) => {
                let r = guard.release().await;
                tracing::warn!(lock = %grant.lock, token = grant.token, ttl = ?lease.map(|l| l.ttl),
                    released = r.is_ok(), "lock expired: its TTL passed without a renewal");
                app.metrics.lock_expired();
                forget(Some(Ended::Expired));
                return;
            }
            // A release request (or, should every handle go, an implicit one).
            reply = release.recv() => {
                let r = guard.release().await.map_err(|e| ApiError::zk(&e, true));
                tracing::info!(lock = %grant.lock, token = grant.token, "lock released");
                forget(None);
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
