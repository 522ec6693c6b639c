//! Group membership: each member is an ephemeral node `<dir>/<id>` holding the
//! member's data, so a member disappears when its session ends, and anyone can list or
//! follow the group.
//!
//! Joining is idempotent and survives a lost create reply: a NodeExists for our own
//! session is our node. A node of the same id owned by another session (say, our
//! previous incarnation whose session has not expired yet) is waited out. While the
//! session lives, a member whose node is deleted by hand re-creates it.

use std::sync::Arc;

use paddock_proto::{CreateMode, ErrorCode, Stat};
use tokio::sync::watch;

use crate::client::Client;
use crate::error::Error;
use crate::path;
use crate::recipe::support::{AbortOnDrop, retry};
use crate::session::SessionState;
use crate::watch::WatchStream;

/// A group whose members live under `dir`.
#[derive(Debug, Clone)]
pub struct Group {
    client: Client,
    dir: String,
}

/// One member as seen by anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub data: Vec<u8>,
    pub stat: Stat,
}

/// Where our membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Our node exists and the session is connected.
    Joined,
    /// The session is disconnected; our node lives until the session expires.
    Suspended,
    /// We left. Terminal.
    Left,
    /// The session is over; our node is gone. Terminal.
    Lost,
}

impl Group {
    pub fn new(client: &Client, dir: &str) -> Result<Group, Error> {
        path::check(dir, false)?;
        Ok(Group {
            client: client.clone(),
            dir: dir.to_string(),
        })
    }

    /// Joins the group as `id` (a valid node name) with `data`. Waits while another
    /// session still owns a node of that id.
    pub async fn join(&self, id: &str, data: &[u8]) -> Result<Membership, Error> {
        let node = path::join(&self.dir, id);
        if id.contains('/') || path::check(&node, false).is_err() {
            return Err(Error::BadArguments(format!("invalid member id {id:?}")));
        }
        create_member(&self.client, &self.dir, &node, data).await?;
        let (tx, state) = watch::channel(MemberState::Joined);
        let task = tokio::spawn(maintain(self.clone(), node.clone(), data.to_vec(), tx));
        Ok(Membership {
            client: self.client.clone(),
            node,
            state,
            left: false,
            _task: AbortOnDrop(task),
        })
    }

    /// The members now, sorted by id.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        let children = match retry(&self.client, || self.client.get_children(&self.dir)).await {
            Ok(children) => children,
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        read_members(&self.client, &self.dir, children).await
    }

    /// Follows the membership: a fresh list after every change, re-read after every
    /// reconnect, marked stale while the session is suspended.
    pub async fn watch(&self) -> Result<GroupWatch, Error> {
        let (tx, rx) = watch::channel(Arc::new(GroupView::default()));
        let task = tokio::spawn(follow(self.clone(), tx));
        let mut watch = GroupWatch {
            view: rx,
            _task: AbortOnDrop(task),
        };
        // Return once the first list is in (or the session is over).
        let _ = watch
            .view
            .wait_for(|v| v.generation > 0 || v.state != ViewState::Live)
            .await;
        Ok(watch)
    }
}

async fn read_members(
    client: &Client,
    dir: &str,
    mut ids: Vec<String>,
) -> Result<Vec<Member>, Error> {
    ids.sort();
    // All reads go out at once (pipelined on the connection).
    let reads = ids.iter().map(|id| {
        let node = path::join(dir, id);
        async move { (id, retry(client, || client.get_data(&node)).await) }
    });
    let mut members = Vec::with_capacity(ids.len());
    for (id, result) in futures_util::future::join_all(reads).await {
        match result {
            Ok((data, stat)) => members.push(Member {
                id: id.clone(),
                data,
                stat,
            }),
            // Left between the listing and the read.
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(members)
}

/// Creates our member node, recovering from a lost reply and waiting out a stale node
/// of another session.
async fn create_member(client: &Client, dir: &str, node: &str, data: &[u8]) -> Result<(), Error> {
    loop {
        match client.create(node, data, CreateMode::Ephemeral).await {
            Ok(_) => return Ok(()),
            Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => retry(client, || client.ensure_path(dir, CreateMode::Container)).await?,
            Err(Error::Server {
                code: ErrorCode::NodeExists,
                ..
            }) => {
                let (stat, mut watch) = retry(client, || client.exists_watch(node)).await?;
                match stat {
                    Some(stat) if stat.ephemeral_owner == client.session().id => return Ok(()),
                    Some(_) => {
                        tracing::info!(%node, "member id taken by another session; waiting for it to go");
                        // Ends on NodeDeleted (or when our session ends: the next create says so).
                        let _ = watch.next().await;
                    }
                    None => {}
                }
            }
            Err(e) if e.is_connection_loss() => client.wait_connected().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Keeps our member node in place and reports where the membership stands. Every wait
/// on the server also watches the session, so Suspended is reported at once.
async fn maintain(group: Group, node: String, data: Vec<u8>, state: watch::Sender<MemberState>) {
    let client = &group.client;
    let mut status = client.status();
    loop {
        let start = *status.borrow_and_update();
        if start.state.is_terminal() {
            state.send_replace(MemberState::Lost);
            return;
        }
        if start.state != SessionState::Connected {
            state.send_replace(MemberState::Suspended);
            if status.changed().await.is_err() {
                state.send_replace(MemberState::Lost);
                return;
            }
            continue;
        }
        let checked = tokio::select! {
            checked = async {
                match client.exists_watch(&node).await? {
                    (Some(_), watch) => Ok(Some(watch)),
                    // Deleted while our session lives: join again, then look again.
                    (None, _) => create_member(client, &group.dir, &node, &data).await.map(|()| None),
                }
            } => checked,
            _ = status.changed() => continue, // the session moved on: look again
        };
        let mut watch = match checked {
            Ok(Some(watch)) => watch,
            Ok(None) => continue,
            Err(e) if e.is_connection_loss() => continue,
            Err(_) => {
                state.send_replace(MemberState::Lost);
                return;
            }
        };
        state.send_if_modified(|s| {
            if *status.borrow() != start || *s == MemberState::Joined {
                return false;
            }
            *s = MemberState::Joined;
            true
        });
        tokio::select! {
            _ = status.changed() => {}
            _ = watch.next() => {}
        }
    }
}

/// Our membership. Leave with [`leave`](Self::leave); dropping it leaves too (without
/// waiting for the server).
#[derive(Debug)]
pub struct Membership {
    client: Client,
    node: String,
    state: watch::Receiver<MemberState>,
    left: bool,
    _task: AbortOnDrop,
}

impl Membership {
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn state(&self) -> MemberState {
        *self.state.borrow()
    }

    /// A receiver of state changes, for select loops.
    pub fn states(&self) -> watch::Receiver<MemberState> {
        self.state.clone()
    }

    /// Deletes our node (queued for the next connection if disconnected).
    pub async fn leave(mut self) -> Result<(), Error> {
        self.left = true;
        // Stop the keeper first, or it would put the node back.
        self._task.0.abort();
        match self.client.delete(&self.node, None).await {
            Ok(())
            | Err(Error::Server {
                code: ErrorCode::NoNode,
                ..
            }) => Ok(()),
            Err(e) if e.is_connection_loss() => {
                self.client.delete_detached(&self.node);
                Ok(())
            }
            Err(e) if e.is_session_over() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self._task.0.abort();
        if !self.left {
            self.client.delete_detached(&self.node);
        }
    }
}

/// Whether a view can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewState {
    /// Up to date as far as the session knows.
    #[default]
    Live,
    /// The session is disconnected: the view may be out of date.
    Stale,
    /// The session is over: the view will not change again.
    Lost,
}

/// The membership as last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    pub members: Vec<Member>,
    pub state: ViewState,
    /// Increases with every new list (0 before the first).
    pub generation: u64,
}

/// A followed group ([`Group::watch`]).
#[derive(Debug)]
pub struct GroupWatch {
    view: watch::Receiver<Arc<GroupView>>,
    _task: AbortOnDrop,
}

impl GroupWatch {
    /// The latest view.
    pub fn current(&self) -> Arc<GroupView> {
        self.view.borrow().clone()
    }

    /// Waits for the next view.
    pub async fn changed(&mut self) -> Arc<GroupView> {
        let _ = self.view.changed().await;
        self.view.borrow_and_update().clone()
    }

    /// A receiver of views, for select loops.
    pub fn views(&self) -> watch::Receiver<Arc<GroupView>> {
        self.view.clone()
    }
}

/// The members and a watch for the next change; `None` to look again at once.
async fn list_members(
    client: &Client,
    dir: &str,
) -> Result<Option<(Vec<Member>, WatchStream)>, Error> {
    let (children, watch) = match client.get_children_watch(dir).await {
        Ok((children, _, watch)) => (children, watch),
        Err(Error::Server {
            code: ErrorCode::NoNode,
            ..
        }) => match client.exists_watch(dir).await? {
            (None, watch) => (Vec::new(), watch),
            (Some(_), _) => return Ok(None), // created meanwhile
        },
        Err(e) => return Err(e),
    };
    let members = read_members(client, dir, children).await?;
    Ok(Some((members, watch)))
}

/// Re-reads the group after every child event and every reconnect.
async fn follow(group: Group, view: watch::Sender<Arc<GroupView>>) {
    let client = &group.client;
    let mut status = client.status();
    let mut generation = 0u64;
    let mark = |state: ViewState| {
        view.send_if_modified(|v| {
            if v.state == state {
                return false;
            }
            let mut next = (**v).clone();
            next.state = state;
            *v = Arc::new(next);
            true
        });
    };
    loop {
        let current = *status.borrow_and_update();
        if current.state.is_terminal() {
            mark(ViewState::Lost);
            return;
        }
        if current.state != SessionState::Connected {
            mark(ViewState::Stale);
            if status.changed().await.is_err() {
                mark(ViewState::Lost);
                return;
            }
            continue;
        }
        // The members with a watch on the directory (or, while it is missing, a watch
        // for its creation). A change of session abandons the read: look again.
        let listed = tokio::select! {
            listed = list_members(client, &group.dir) => listed,
            _ = status.changed() => continue,
        };
        let (members, mut watch) = match listed {
            Ok(Some(listed)) => listed,
            Ok(None) => continue,
            Err(e) if e.is_connection_loss() => continue,
            Err(_) => {
                mark(ViewState::Lost);
                return;
            }
        };
        generation += 1;
        view.send_replace(Arc::new(GroupView {
            members,
            state: ViewState::Live,
            generation,
        }));
        tokio::select! {
            _ = watch.next() => {}
            _ = status.changed() => {}
            _ = view.closed() => return,
        }
    }
}
