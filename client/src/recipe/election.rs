//! Leader election (ZooKeeper's recipe; Curator's LeaderLatch layout, `latch` nodes).
//!
//! Each candidate creates an ephemeral-sequential node in the election directory; the
//! lowest leads. A follower watches only its predecessor, so a change of leader wakes
//! one candidate; the leader watches its own node. A create whose reply was lost is
//! recovered by finding our own node.
//!
//! Leadership is tied to the session: a leader whose session is Suspended reports
//! [`Role::Suspended`] at once and must stop acting as leader (the servers may be about
//! to expire it, and another candidate may then lead); it leads again, with the same
//! token, if it reconnects in time. Once the session is over the candidacy ends with
//! [`Role::Lost`].
//!
//! Every term of leadership carries a fencing token, the czxid of the leader's node:
//! later leaders have later nodes, so tokens strictly increase across terms.

use paddock_proto::ErrorCode;
use tokio::sync::{mpsc, watch};

use crate::client::Client;
use crate::error::Error;
use crate::recipe::group::ViewState;
use crate::recipe::queue::{Cleanup, Queue, Ticket, sequence_of};
use crate::recipe::support::{AbortOnDrop, new_guid};
use crate::session::{SessionState, Status};
use crate::watch::WatchStream;

/// An election held in the directory `dir`.
#[derive(Debug, Clone)]
pub struct Election {
    queue: Queue,
}

/// The leader as anyone can see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's candidate node.
    pub node: String,
    /// What the leader wrote into it when campaigning.
    pub data: Vec<u8>,
    /// The leader's fencing token.
    pub token: i64,
}

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Creating our candidate node.
    Joining,
    /// Another candidate leads.
    Follower,
    /// We lead; `token` is our fencing token.
    Leader { token: i64 },
    /// The session is disconnected: we might have lost leadership without knowing.
    /// Stop acting as leader.
    Suspended,
    /// We resigned. Terminal.
    Resigned,
    /// The session is over (expired or closed). Terminal.
    Lost,
}

impl Role {
    pub fn is_leader(self) -> bool {
        matches!(self, Role::Leader { .. })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Role::Resigned | Role::Lost)
    }
}

impl Election {
    pub fn new(client: &Client, dir: &str) -> Result<Election, Error> {
        Ok(Election {
            queue: Queue::new(client, dir, "latch")?,
        })
    }

    /// Joins the election with `data` (e.g. our id and address, for others to read in
    /// [`leader`](Self::leader)). Returns once our candidate node exists; follow
    /// [`Candidacy::role`] for the outcome.
    pub async fn campaign(&self, data: &[u8]) -> Result<Candidacy, Error> {
        // Should this future be dropped while creating, the node is removed.
        let mut cleanup = Cleanup::new(&self.queue, new_guid());
        let ticket = self.queue.join(&cleanup.guid, data).await?;
        cleanup.disarm();
        let (role_tx, role) = watch::channel(Role::Joining);
        let (node_tx, node) = watch::channel(ticket.path.clone());
        let (resign_tx, resign_rx) = mpsc::channel(1);
        let candidate = Candidate {
            queue: self.queue.clone(),
            guid: std::mem::take(&mut cleanup.guid),
            data: data.to_vec(),
            ticket,
            role: role_tx,
            node: node_tx,
        };
        // Not aborted on drop: when the Candidacy goes, the task sees the resign
        // channel close and deletes our node.
        tokio::spawn(candidate.run(resign_rx));
        Ok(Candidacy {
            role,
            node,
            resign: resign_tx,
        })
    }

    /// The current leader, if any.
    pub async fn leader(&self) -> Result<Option<Leader>, Error> {
        Ok(self
            .queue
            .head()
            .await?
            .map(|(node, data, token)| Leader { node, data, token }))
    }

    /// Every candidate node, leader first.
    pub async fn candidates(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .queue
            .entries()
            .await?
            .into_iter()
            .map(|e| self.queue.path_of(&e.name))
            .collect())
    }

    /// Follows who leads, for anyone (candidate or not): a new view after every
    /// change of the candidate list, re-read after every reconnect, marked stale while
    /// the session is suspended. (Candidates themselves watch only their predecessor;
    /// this watches the directory, so use it for observers, not for every candidate.)
    pub async fn watch_leader(&self) -> Result<LeaderWatch, Error> {
        let (tx, mut view) = watch::channel(LeaderView::default());
        let task = tokio::spawn(follow_leader(self.clone(), tx));
        let _ = view
            .wait_for(|v| v.generation > 0 || v.state != ViewState::Live)
            .await;
        Ok(LeaderWatch {
            view,
            _task: AbortOnDrop(task),
        })
    }

    /// The leader and a watch on the candidate list; `None` to look again at once.
    async fn leader_and_watch(&self) -> Result<Option<(Option<Leader>, WatchStream)>, Error> {
        let client = &self.queue.client;
        let (children, watch) = match client.get_children_watch(&self.queue.dir).await {
            Ok((children, _, watch)) => (children, watch),
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => match client.exists_watch(&self.queue.dir).await? {
                (None, watch) => (Vec::new(), watch),
                (Some(_), _) => return Ok(None),
            },
            Err(e) => return Err(e),
        };
        let first = children
            .iter()
            .filter_map(|name| sequence_of(name).map(|seq| (seq, name)))
            .min();
        let Some((_, name)) = first else {
            return Ok(Some((None, watch)));
        };
        let node = self.queue.path_of(name);
        match client.get_data(&node).await {
            Ok((data, stat)) => Ok(Some((
                Some(Leader {
                    node,
                    data,
                    token: stat.czxid,
                }),
                watch,
            ))),
            // Gone since the listing: the watch has fired already; look again.
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Who leads, as last read ([`Election::watch_leader`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderView {
    pub leader: Option<Leader>,
    pub state: ViewState,
    /// Increases with every change (0 before the first read).
    pub generation: u64,
}

/// A followed election.
#[derive(Debug)]
pub struct LeaderWatch {
    view: watch::Receiver<LeaderView>,
    _task: AbortOnDrop,
}

impl LeaderWatch {
    pub fn current(&self) -> LeaderView {
        self.view.borrow().clone()
    }

    /// Waits for the next change and returns the new view.
    pub async fn changed(&mut self) -> LeaderView {
        let _ = self.view.changed().await;
        self.view.borrow_and_update().clone()
    }
}

async fn follow_leader(election: Election, view: watch::Sender<LeaderView>) {
    let mut status = election.queue.client.status();
    loop {
        let start = *status.borrow_and_update();
        if start.state.is_terminal() {
            return mark(&view, ViewState::Lost);
        }
        if start.state != SessionState::Connected {
            mark(&view, ViewState::Stale);
            if status.changed().await.is_err() {
                return mark(&view, ViewState::Lost);
            }
            continue;
        }
        let read = tokio::select! {
            read = election.leader_and_watch() => read,
            _ = status.changed() => continue,
        };
        let mut watch = match read {
            Ok(Some((leader, watch))) => {
                view.send_if_modified(|v| {
                    if v.leader == leader && v.state == ViewState::Live && v.generation > 0 {
                        return false;
                    }
                    v.leader = leader;
                    v.state = ViewState::Live;
                    v.generation += 1;
                    true
                });
                watch
            }
            Ok(None) => continue,
            Err(e) if e.is_connection_loss() => continue,
            Err(_) => return mark(&view, ViewState::Lost),
        };
        tokio::select! {
            _ = watch.next() => {}
            _ = status.changed() => {}
            _ = view.closed() => return,
        }
    }
}

fn mark(view: &watch::Sender<LeaderView>, state: ViewState) {
    view.send_if_modified(|v| {
        if v.state == state {
            return false;
        }
        v.state = state;
        v.generation += 1;
        true
    });
}

/// Our candidacy. Dropping it resigns (the delete is sent without waiting).
#[derive(Debug)]
pub struct Candidacy {
    role: watch::Receiver<Role>,
    node: watch::Receiver<String>,
    resign: mpsc::Sender<oneshot_done::Done>,
}

impl Candidacy {
    /// Our role right now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Our candidate node (a new one if it had to be re-created).
    pub fn node(&self) -> String {
        self.node.borrow().clone()
    }

    /// A receiver of role changes, for select loops.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Waits for the next role change and returns the new role.
    pub async fn changed(&mut self) -> Role {
        match self.role.changed().await {
            Ok(()) => *self.role.borrow_and_update(),
            Err(_) => Role::Lost,
        }
    }

    /// Waits until we lead and returns our fencing token; fails if the candidacy ends
    /// first.
    pub async fn leadership(&mut self) -> Result<i64, Error> {
        let role = self
            .role
            .wait_for(|r| r.is_leader() || r.is_terminal())
            .await
            .map(|r| *r)
            .unwrap_or(Role::Lost);
        match role {
            Role::Leader { token } => Ok(token),
            Role::Resigned => Err(Error::BadArguments("the candidate resigned".into())),
            _ => Err(Error::SessionExpired { path: None }),
        }
    }

    /// Leaves the election: our node is deleted (at once if connected, else on the next
    /// connection) and the role becomes Resigned.
    pub async fn resign(mut self) -> Result<(), Error> {
        let (done, wait) = oneshot_done::pair();
        if self.resign.send(done).await.is_ok() {
            wait.await;
        }
        let _ = self.role.wait_for(|r| r.is_terminal()).await;
        Ok(())
    }
}

/// The background half of a candidacy.
struct Candidate {
    queue: Queue,
    guid: String,
    data: Vec<u8>,
    ticket: Ticket,
    role: watch::Sender<Role>,
    node: watch::Sender<String>,
}

/// What ended a wait of the candidate loop.
enum Wake {
    /// Look again (a watch fired, or the session changed).
    Again,
    /// Resign; `None` when the Candidacy was dropped.
    Resign(Option<oneshot_done::Done>),
    /// The session task is gone.
    SessionGone,
}

impl Candidate {
    /// The candidate loop. Suspension is reported the moment the session leaves
    /// Connected, even while a request of ours is still waiting for its reply: every
    /// wait also watches the session.
    async fn run(mut self, mut resign: mpsc::Receiver<oneshot_done::Done>) {
        let client = self.queue.client.clone();
        let mut status = client.status();
        loop {
            let start = *status.borrow_and_update();
            if start.state.is_terminal() {
                return self.set(Role::Lost);
            }
            if start.state != SessionState::Connected {
                self.suspend();
                let wake = tokio::select! {
                    changed = status.changed() => if changed.is_ok() { Wake::Again } else { Wake::SessionGone },
                    done = resign.recv() => Wake::Resign(done),
                };
                match wake {
                    Wake::Again => continue,
                    Wake::Resign(done) => return self.resign(done).await,
                    Wake::SessionGone => return self.set(Role::Lost),
                }
            }
            let role = self.role.clone();
            let (outcome, wake) = {
                let evaluation = self.evaluate();
                tokio::pin!(evaluation);
                loop {
                    tokio::select! {
                        outcome = &mut evaluation => break (Some(outcome), Wake::Again),
                        changed = status.changed() => {
                            if changed.is_err() {
                                break (None, Wake::SessionGone);
                            }
                            if *status.borrow() != start {
                                suspend(&role);
                            }
                        }
                        done = resign.recv() => break (None, Wake::Resign(done)),
                    }
                }
            };
            let mut watch = match (outcome, wake) {
                (_, Wake::Resign(done)) => return self.resign(done).await,
                (_, Wake::SessionGone) => return self.set(Role::Lost),
                (None, Wake::Again) => continue,
                (Some(Ok(Some((role, watch)))), Wake::Again) => {
                    if !self.publish_if_current(role, &status, start) {
                        continue; // the session moved on meanwhile: look again
                    }
                    watch
                }
                (Some(Ok(None)), Wake::Again) => continue,
                (Some(Err(e)), Wake::Again) if e.is_connection_loss() => continue,
                (Some(Err(e)), Wake::Again) if e.is_session_over() => return self.set(Role::Lost),
                (Some(Err(e)), Wake::Again) => {
                    // Unexpected (e.g. NoAuth on the directory): report and stop.
                    tracing::warn!(error = %e, dir = %self.queue.dir, "election failed");
                    return self.set(Role::Lost);
                }
            };
            let wake = tokio::select! {
                _ = watch.next() => Wake::Again,
                changed = status.changed() => if changed.is_ok() { Wake::Again } else { Wake::SessionGone },
                done = resign.recv() => Wake::Resign(done),
            };
            match wake {
                Wake::Again => {}
                Wake::Resign(done) => return self.resign(done).await,
                Wake::SessionGone => return self.set(Role::Lost),
            }
        }
    }

    /// Our role now and the watch that tells when it may change; `None` to look again
    /// at once (the node we meant to watch is already gone).
    async fn evaluate(&mut self) -> Result<Option<(Role, crate::watch::WatchStream)>, Error> {
        let client = &self.queue.client;
        let entries = self.queue.entries().await?;
        self.queue.prune_strays(&entries, &self.guid, &self.ticket);
        let Some(pos) = entries.iter().position(|e| e.name == self.ticket.name) else {
            // Our node is gone while the session lives (deleted by hand): run again.
            let ticket = self.queue.join(&self.guid, &self.data).await?;
            tracing::info!(old = %self.ticket.path, new = %ticket.path, "candidate node re-created");
            self.node.send_replace(ticket.path.clone());
            self.ticket = ticket;
            return Ok(None);
        };
        // The leader watches its own node (deleted by hand → run again); a follower
        // watches its predecessor only.
        let (role, watched) = if pos == 0 {
            (
                Role::Leader {
                    token: self.ticket.czxid,
                },
                self.ticket.path.clone(),
            )
        } else {
            (Role::Follower, self.queue.path_of(&entries[pos - 1].name))
        };
        match client.exists_watch(&watched).await? {
            (Some(_), watch) => Ok(Some((role, watch))),
            (None, _) => Ok(None),
        }
    }

    /// Publishes `role` only if the session is still as it was when the evaluation
    /// started. The check sits inside the send, so a concurrent suspension is never
    /// overwritten by a stale Leader.
    fn publish_if_current(
        &self,
        role: Role,
        status: &watch::Receiver<Status>,
        start: Status,
    ) -> bool {
        let mut current = true;
        self.role.send_if_modified(|r| {
            if *status.borrow() != start {
                current = false;
                return false;
            }
            if *r == role {
                return false;
            }
            tracing::debug!(node = %self.ticket.path, ?role, "election role");
            *r = role;
            true
        });
        current
    }

    fn suspend(&self) {
        suspend(&self.role);
    }

    fn set(&self, role: Role) {
        self.role.send_if_modified(|r| {
            if *r == role {
                return false;
            }
            *r = role;
            true
        });
    }

    /// Deletes our node and ends the candidacy. `done` is `None` when the Candidacy
    /// was dropped: then nobody waits, and the delete is only queued.
    async fn resign(self, done: Option<oneshot_done::Done>) {
        let client = &self.queue.client;
        if done.is_some() {
            match client.delete(&self.ticket.path, None).await {
                Ok(()) => {}
                Err(e) if e.is_session_over() => {}
                Err(Error::Server {
                    code: ErrorCode::NoNode,
                    ..
                }) => {}
                Err(_) => client.delete_detached(&self.ticket.path),
            }
        } else {
            client.delete_detached(&self.ticket.path);
        }
        self.set(Role::Resigned);
        drop(done);
    }
}

/// Leader or follower becomes Suspended (a Joining candidate too).
fn suspend(role: &watch::Sender<Role>) {
    role.send_if_modified(|r| match r {
        Role::Joining | Role::Follower | Role::Leader { .. } => {
            *r = Role::Suspended;
            true
        }
        _ => false,
    });
}

/// A one-shot "finished" signal that also fires when dropped.
mod oneshot_done {
    use tokio::sync::oneshot;

    #[derive(Debug)]
    pub struct Done(#[allow(dead_code)] oneshot::Sender<()>);

    pub fn pair() -> (Done, impl std::future::Future<Output = ()>) {
        let (tx, rx) = oneshot::channel();
        (Done(tx), async move {
            let _ = rx.await;
        })
    }
}
