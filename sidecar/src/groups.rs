//! Group membership: the memberships this sidecar keeps, and how anyone's group looks.
//!
//! Like a candidacy, a membership is an intent kept by one task: joined once, it is
//! kept across reconnects and re-joined on a new session after an expiry, until left.
//! A member is an ephemeral node `<groups>/<group>/<id>` holding the member's value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_client::recipe::{Group, MemberState};
use paddock_client::{Client, Error as ZkError, ErrorCode, Stat};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::types::{self, GroupMembers, MembershipState, SelfMember};
use crate::app::App;
use crate::error::ApiError;
use crate::layout::Layout;
use crate::registry::{Cmd, Wait, keep_value, next_session};
use crate::session::Link;
use crate::value::{self, Encoding};

const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Term {
    generation: u64,
    states: watch::Receiver<MemberState>,
}

/// A membership of this sidecar.
pub struct Member {
    pub group: String,
    pub id: String,
    value: Mutex<Vec<u8>>,
    term: watch::Receiver<Option<Term>>,
    cmds: mpsc::Sender<Cmd>,
}

impl Member {
    /// `joined`, `joining` (node not in place yet), `suspended` (session disconnected).
    pub fn state(&self, app: &App) -> MembershipState {
        if app.sessions.link() != Link::Connected {
            return MembershipState::Suspended;
        }
        match self.term.borrow().as_ref() {
            Some(t) if t.generation == app.sessions.slot().generation => match *t.states.borrow() {
                MemberState::Joined => MembershipState::Joined,
                MemberState::Suspended => MembershipState::Suspended,
                MemberState::Left | MemberState::Lost => MembershipState::Joining,
            },
            _ => MembershipState::Joining,
        }
    }

    fn value(&self) -> Vec<u8> {
        self.value.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub type Groups = crate::registry::Registry<Member>;

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Created,
    Existing,
    /// Not in place yet, e.g. a node of the same id from another session (often our own
    /// previous incarnation) has to expire first; the sidecar keeps trying.
    Pending,
}

impl crate::registry::Registry<Member> {
    /// Joins `group` as `id` (idempotent: an existing membership gets the new value).
    pub async fn join(
        app: &Arc<App>,
        group: &str,
        id: &str,
        value: Vec<u8>,
        flag: bool,
    ) -> Result<(Arc<Member>, Joined), ApiError> {
        let _op = app.groups.serialize().await;
        if let Some(existing) = app.groups.get(group, id) {
            if existing.value() != value {
                crate::registry::ask(&existing.cmds, |tx| Cmd::SetValue(value, tx), "membership")
                    .await?;
            }
            return Ok((existing, Joined::Existing));
        }
        if !flag {
            app.sessions.client()?;
        }
        let (term_tx, term_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (joined_tx, joined_rx) = oneshot::channel();
        let member = Arc::new(Member {
            group: group.to_string(),
            id: id.to_string(),
            value: Mutex::new(value.clone()),
            term: term_rx,
            cmds: cmd_tx,
        });
        app.groups.insert(group, id, member.clone());
        tokio::spawn(run(
            app.clone(),
            member.clone(),
            value,
            term_tx,
            cmd_rx,
            joined_tx,
        ));
        match tokio::time::timeout(app.settings.join_timeout, joined_rx).await {
            Ok(Ok(Ok(()))) => Ok((member, Joined::Created)),
            Ok(Ok(Err(e))) => {
                app.groups.remove(group, id);
                Err(e)
            }
            Ok(Err(_)) => Err(ApiError::internal("the membership task ended")),
            Err(_) => Ok((member, Joined::Pending)),
        }
    }

    /// Leaves; `false` if we were not a member.
    pub async fn leave(app: &Arc<App>, group: &str, id: &str) -> bool {
        let _op = app.groups.serialize().await;
        let Some(member) = app.groups.get(group, id) else {
            return false;
        };
        leave_member(&member).await;
        app.groups.remove(group, id);
        app.notify_local();
        true
    }

    /// Leaves every group (shutdown).
    pub async fn leave_all(app: &Arc<App>) {
        let all = app.groups.all();
        futures_util::future::join_all(all.iter().map(|m| leave_member(m))).await;
    }
}

async fn leave_member(member: &Member) {
    let (tx, rx) = oneshot::channel();
    if member.cmds.send(Cmd::Stop(tx)).await.is_ok() {
        let _ = tokio::time::timeout(LEAVE_TIMEOUT + Duration::from_secs(1), rx).await;
    }
}

/// One member as read from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: String,
    /// `None`: the member node's data is null (written so by another client).
    pub value: Option<Vec<u8>>,
    pub stat: Stat,
}

/// Reads a group; the index is the directory's pzxid or the latest member mzxid.
pub async fn load(
    client: &Client,
    layout: &Layout,
    group: &str,
) -> Result<(Vec<MemberInfo>, i64), ApiError> {
    let dir = layout.group(group);
    let (mut children, stat) = match client.get_children_stat(&dir).await {
        Ok(found) => found,
        Err(ZkError::Server {
            code: ErrorCode::NoNode,
            ..
        }) => {
            let index = match client.exists(&layout.groups()).await {
                Ok(Some(stat)) => stat.pzxid,
                Ok(None) => 0,
                Err(e) => return Err(ApiError::zk(&e, false)),
            };
            return Ok((Vec::new(), index));
        }
        Err(e) => return Err(ApiError::zk(&e, false)),
    };
    children.sort();
    let reads = children.iter().map(|id| {
        let node = format!("{dir}/{id}");
        async move { (id, client.get_data_nullable(&node).await) }
    });
    let mut index = stat.pzxid;
    let mut members = Vec::with_capacity(children.len());
    for (id, read) in futures_util::future::join_all(reads).await {
        match read {
            Ok((value, stat)) => {
                index = index.max(stat.mzxid);
                members.push(MemberInfo {
                    id: id.clone(),
                    value,
                    stat,
                });
            }
            Err(ZkError::Server {
                code: ErrorCode::NoNode,
                ..
            }) => {}
            Err(e) => return Err(ApiError::zk(&e, false)),
        }
    }
    Ok((members, index))
}

/// The document of `GET /v1/groups/{g}/members` (and of `members` events).
pub fn members_json(
    app: &App,
    group: &str,
    members: &[MemberInfo],
    index: i64,
    encoding: Encoding,
) -> Value {
    let doc = GroupMembers {
        group: group.to_string(),
        members: members
            .iter()
            .map(|m| types::Member {
                id: m.id.clone(),
                value: value::encoded(m.value.as_deref(), encoding),
                since: m.stat.czxid,
            })
            .collect(),
        self_: app
            .groups
            .named(group)
            .iter()
            .map(|m| SelfMember {
                id: m.id.clone(),
                state: m.state(app),
            })
            .collect(),
        index,
        session: app.sessions.link().into(),
    };
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The membership task.
async fn run(
    app: Arc<App>,
    me: Arc<Member>,
    mut data: Vec<u8>,
    term: watch::Sender<Option<Term>>,
    mut cmds: mpsc::Receiver<Cmd>,
    joined: oneshot::Sender<Result<(), ApiError>>,
) {
    let dir = app.layout.group(&me.group);
    let mut slots = app.sessions.subscribe();
    let mut joined = Some(joined);
    let mut last_generation = 0u64;
    'session: loop {
        let (client, generation) = match next_session(
            &app.sessions,
            &mut slots,
            &mut cmds,
            last_generation,
            &mut data,
            &me.value,
        )
        .await
        {
            Wait::Session(client, generation) => (client, generation),
            Wait::Stop(done) => {
                if let Some(done) = done {
                    term.send_replace(None);
                    let _ = done.send(());
                }
                return;
            }
        };
        let group = match Group::new(&client, &dir) {
            Ok(g) => g,
            Err(e) => {
                if let Some(j) = joined.take() {
                    let _ = j.send(Err(ApiError::zk(&e, true)));
                }
                return;
            }
        };
        let outcome = tokio::select! {
            r = group.join(&me.id, &data) => Some(r),
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Stop(done)) => {
                    // The join is dropped; a node it created is ours and goes with a delete.
                    let node = format!("{dir}/{}", me.id);
                    if let Ok(Some(stat)) = client.exists(&node).await
                        && stat.ephemeral_owner == client.session().id
                    {
                        let _ = client.delete(&node, None).await;
                    }
                    term.send_replace(None);
                    let _ = done.send(());
                    return;
                }
                Some(Cmd::SetValue(v, reply)) => {
                    keep_value(&mut data, &me.value, v, reply);
                    None
                }
                None => return,
            },
        };
        let membership = match outcome {
            None => continue 'session,
            Some(Ok(m)) => m,
            Some(Err(e)) if e.is_session_over() => {
                last_generation = generation;
                continue 'session;
            }
            Some(Err(e)) if e.is_connection_loss() => continue 'session,
            Some(Err(e)) => {
                tracing::warn!(group = %me.group, id = %me.id, error = %e, "join failed");
                if let Some(j) = joined.take() {
                    let _ = j.send(Err(ApiError::zk(&e, true)));
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue 'session;
            }
        };
        last_generation = generation;
        let mut states = membership.states();
        term.send_replace(Some(Term {
            generation,
            states: states.clone(),
        }));
        tracing::info!(group = %me.group, id = %me.id, "joined");
        if let Some(j) = joined.take() {
            let _ = j.send(Ok(()));
        }
        app.notify_local();
        loop {
            let state = *states.borrow_and_update();
            if matches!(state, MemberState::Lost | MemberState::Left) {
                app.notify_local();
                continue 'session;
            }
            tokio::select! {
                changed = states.changed() => {
                    if changed.is_err() {
                        continue 'session;
                    }
                    app.notify_local();
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::SetValue(v, reply)) => {
                        let r = client
                            .set_data(membership.node(), &v, None)
                            .await
                            .map(|_| ())
                            .map_err(|e| ApiError::zk(&e, true));
                        if r.is_ok() {
                            data = v.clone();
                            if let Ok(mut value) = me.value.lock() {
                                *value = v;
                            }
                        }
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Stop(done)) => {
                        let _ = tokio::time::timeout(LEAVE_TIMEOUT, membership.leave()).await;
                        tracing::info!(group = %me.group, id = %me.id, "left");
                        term.send_replace(None);
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }
}
