//! A distributed mutex (ZooKeeper's lock recipe, Curator's InterProcessMutex layout).
//!
//! Each contender creates an ephemeral-sequential node under the lock directory; the
//! lowest holds the lock. A waiter watches only the node just before its own, so a
//! release wakes one waiter, not all of them. A create whose reply was lost is
//! recovered by finding our own node (see `queue`).
//!
//! A grant comes with a fencing token: the czxid of the holder's node. Every later
//! grant comes from a node created later, so tokens strictly increase; hand the token
//! to whatever the lock protects and have it refuse smaller ones.
//!
//! A held lock is only as good as the session: while the session is Suspended the
//! holder must stop acting (it may be expired on the servers without knowing it yet),
//! and once Expired the lock is lost. [`LockGuard::state`] tracks exactly that.

use std::time::Duration;

use paddock_proto::ErrorCode;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::Error;
use crate::recipe::queue::{Cleanup, Queue, Ticket};
use crate::recipe::support::{AbortOnDrop, new_guid, retry};
use crate::session::SessionState;

/// A lock over the directory `dir`.
#[derive(Debug, Clone)]
pub struct Lock {
    queue: Queue,
    data: Vec<u8>,
}

/// The current holder of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's node.
    pub node: String,
    /// What the holder wrote into it (see [`Lock::with_data`]).
    pub data: Vec<u8>,
    /// The holder's fencing token.
    pub token: i64,
}

/// Whether a granted lock can still be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Held, and the session is connected.
    Held,
    /// The session is disconnected: the lock may be lost without us knowing. Stop
    /// acting as the holder until it is `Held` again.
    Suspended,
    /// Lost for good (session expired or closed, or the node was deleted). Terminal.
    Lost,
}

impl Lock {
    /// A lock whose nodes live under `dir` (created as a container when needed).
    pub fn new(client: &Client, dir: &str) -> Result<Lock, Error> {
        Ok(Lock {
            queue: Queue::new(client, dir, "lock")?,
            data: Vec::new(),
        })
    }

    /// Data stored in our lock node while we wait and hold, e.g. who we are; others
    /// see it in [`holder`](Self::holder).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Lock {
        self.data = data.into();
        self
    }

    /// Waits as long as it takes (while the session lives) for the lock.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        match self.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Protocol("lock wait ended without a deadline".into())),
        }
    }

    /// Waits up to `wait` for the lock; `Ok(None)` if it was not granted in time (our
    /// place in the queue is given up).
    pub async fn try_acquire(&self, wait: Duration) -> Result<Option<LockGuard>, Error> {
        self.acquire_until(Some(Instant::now() + wait)).await
    }

    /// Who holds the lock now, if anyone.
    pub async fn holder(&self) -> Result<Option<LockHolder>, Error> {
        Ok(self
            .queue
            .head()
            .await?
            .map(|(node, data, token)| LockHolder { node, data, token }))
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<LockGuard>, Error> {
        let guid = new_guid();
        // If this future is dropped half-way (deadline, error, cancellation by the
        // caller), the guard removes our node.
        let mut cleanup = Cleanup::new(&self.queue, guid);
        // The deadline bounds only the waiting for predecessors: joining the queue and
        // looking at our position always complete, so a zero wait means "take it if
        // free" rather than "never".
        let granted = async {
            loop {
                cleanup.node = None; // while creating, the guid finds our node
                let ticket = self.queue.join(&cleanup.guid, &self.data).await?;
                cleanup.node = Some(ticket.path.clone());
                match self.wait_turn(&cleanup.guid, &ticket, deadline).await? {
                    Turn::Ours(connection) => return Ok::<_, Error>(Some((ticket, connection))),
                    Turn::TimedOut => return Ok(None),
                    // Our node was deleted by someone else while the session lives: queue again.
                    Turn::NodeGone => {}
                }
            }
        }
        .await;
        match granted {
            Ok(Some((ticket, connection))) => {
                cleanup.disarm();
                Ok(Some(LockGuard::new(&self.queue.client, ticket, connection)))
            }
            Err(e) => Err(e),
            Ok(None) => Ok(None),
        }
    }

    /// Waits (until `deadline`) for our node to be first: `Ours` with the connection it
    /// was seen first on, `NodeGone`, or `TimedOut`. Only reads and watches: safe to cancel.
    async fn wait_turn(
        &self,
        guid: &str,
        ticket: &Ticket,
        deadline: Option<Instant>,
    ) -> Result<Turn, Error> {
        let client = &self.queue.client;
        loop {
            let connection = client.status().borrow().connection;
            let entries = self.queue.entries().await?;
            self.queue.prune_strays(&entries, guid, ticket);
            let Some(pos) = entries.iter().position(|e| e.name == ticket.name) else {
                // Our node is gone. If the session expired, the next request says so.
                retry(client, || client.exists("/")).await?;
                return Ok(Turn::NodeGone);
            };
            if pos == 0 {
                return Ok(Turn::Ours(connection));
            }
            let predecessor = self.queue.path_of(&entries[pos - 1].name);
            let mut watch = match client.exists_watch(&predecessor).await {
                Ok((Some(_), watch)) => watch,
                Ok((None, _)) => continue,
                Err(e) if e.is_connection_loss() => {
                    client.wait_connected().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // The watch survives reconnects (setWatches) and ends if the session does.
            if until(deadline, watch.next()).await.is_none() {
                return Ok(Turn::TimedOut);
            }
        }
    }
}

/// How waiting for our turn ended.
enum Turn {
    Ours(u64),
    NodeGone,
    TimedOut,
}

/// Runs `fut` until `deadline` (if any); `None` if the deadline came first.
async fn until<T>(
    deadline: Option<Instant>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// A granted lock. Release it with [`release`](Self::release); dropping it releases
/// too (without waiting for the server).
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    ticket: Ticket,
    tenure: watch::Receiver<Tenure>,
    released: bool,
    _monitor: AbortOnDrop,
}

/// What the monitor publishes: the current [`Hold`] and how many times it stopped
/// being `Held` (so that a brief suspension cannot go unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tenure {
    hold: Hold,
    interruptions: u64,
}

impl LockGuard {
    fn new(client: &Client, ticket: Ticket, connection: u64) -> LockGuard {
        let (tx, tenure) = watch::channel(Tenure {
            hold: Hold::Held,
            interruptions: 0,
        });
        let monitor = tokio::spawn(monitor(client.clone(), ticket.path.clone(), connection, tx));
        LockGuard {
            client: client.clone(),
            ticket,
            tenure,
            released: false,
            _monitor: AbortOnDrop(monitor),
        }
    }

    /// The fencing token: the czxid of our lock node.
    pub fn token(&self) -> i64 {
        self.ticket.czxid
    }

    /// Our lock node.
    pub fn node(&self) -> &str {
        &self.ticket.path
    }

    /// Whether the lock can be relied on right now.
    pub fn state(&self) -> Hold {
        self.tenure.borrow().hold
    }

    pub fn is_held(&self) -> bool {
        self.state() == Hold::Held
    }

    /// Resolves as soon as the lock stopped being reliable at least once since it was
    /// granted: the session was suspended (however briefly) or the lock was lost.
    /// Returns the state now, which is `Held` again if the session came back in time.
    pub async fn interrupted(&mut self) -> Hold {
        match self
            .tenure
            .wait_for(|t| t.interruptions > 0 || t.hold != Hold::Held)
            .await
        {
            Ok(t) => t.hold,
            Err(_) => Hold::Lost,
        }
    }

    /// Waits for the next change of state and returns the new state (`Lost` once no
    /// change can come any more).
    pub async fn changed(&mut self) -> Hold {
        match self.tenure.changed().await {
            Ok(()) => self.tenure.borrow_and_update().hold,
            Err(_) => Hold::Lost,
        }
    }

    /// Releases the lock. If the connection is down, the delete is queued for the next
    /// connection (or made moot by the session's expiry).
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        match self.client.delete(&self.ticket.path, None).await {
            Ok(())
            | Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => Ok(()),
            Err(e) if e.is_connection_loss() => {
                self.client.delete_detached(&self.ticket.path);
                Ok(())
            }
            Err(e) if e.is_session_over() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            self.client.delete_detached(&self.ticket.path);
        }
    }
}

/// Tracks whether a granted lock still holds: Suspended the moment the session is (or
/// has reconnected since we last looked), Held again once reconnected with the node
/// still ours, Lost for good otherwise. Requests never delay the Suspended: every wait
/// on the server also watches the session.
async fn monitor(client: Client, node: String, granted_on: u64, tenure: watch::Sender<Tenure>) {
    let mut status = client.status();
    let publish = |hold: Hold| {
        tenure.send_if_modified(|t| {
            if t.hold == hold {
                return false;
            }
            if t.hold == Hold::Held {
                t.interruptions += 1;
            }
            t.hold = hold;
            true
        });
    };
    let mut confirmed = granted_on;
    loop {
        let start = *status.borrow_and_update();
        if start.state.is_terminal() {
            return publish(Hold::Lost);
        }
        if start.state != SessionState::Connected || start.connection != confirmed {
            publish(Hold::Suspended);
        }
        if start.state != SessionState::Connected {
            if status.changed().await.is_err() {
                return publish(Hold::Lost);
            }
            continue;
        }
        let checked = tokio::select! {
            checked = client.exists_watch(&node) => checked,
            changed = status.changed() => {
                if changed.is_err() {
                    return publish(Hold::Lost);
                }
                continue; // the session moved on while we asked: look again
            }
        };
        let mut watch = match checked {
            Ok((Some(stat), watch)) if stat.ephemeral_owner == client.session().id => watch,
            Ok(_) => return publish(Hold::Lost), // deleted: the lock is gone
            Err(e) if e.is_connection_loss() => continue,
            Err(_) => return publish(Hold::Lost),
        };
        // Held only if the session is still where it was when we checked; the check
        // sits inside the send so that a concurrent suspension cannot be overwritten.
        tenure.send_if_modified(|t| {
            if *status.borrow() != start || t.hold == Hold::Held {
                return false;
            }
            t.hold = Hold::Held;
            true
        });
        if *status.borrow() != start {
            continue;
        }
        confirmed = start.connection;
        tokio::select! {
            _ = status.changed() => {}
            _ = watch.next() => {}
        }
    }
}
