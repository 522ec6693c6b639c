//! Elections: the candidacies this sidecar keeps, and how anyone's election looks.
//!
//! A candidacy is an intent: once joined (by an API call or by `--election`), the
//! sidecar keeps campaigning until told to resign, across reconnects and across
//! expired sessions (a new session campaigns again, with a new node and so a new
//! fencing token). Each candidacy is one task owning the client recipe's
//! [`Candidacy`]; the registry keeps a handle to it.
//!
//! "Leader" is answered only when the recipe says we lead on a connected session, the
//! candidacy is not resigning, the sidecar is not shutting down, and (for answers that
//! read the election) the lowest node read is ours. Anything less is "follower",
//! "suspended" or "none".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_client::recipe::{Election, Role};
use paddock_client::{Client, Error as ZkError, ErrorCode};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::types::{CandidateState, ElectionState, Leader, SelfCandidate};
use crate::app::App;
use crate::error::ApiError;
use crate::layout::{Layout, sequence_of};
use crate::registry::{Cmd, Wait, keep_value, next_session};
use crate::session::Link;
use crate::value::{self, Encoding};

/// How long a resign waits for its delete before giving up (the session's end deletes
/// the node anyway).
const RESIGN_TIMEOUT: Duration = Duration::from_secs(5);

/// One term of a candidacy: our node on one session.
#[derive(Debug, Clone)]
pub struct Term {
    pub generation: u64,
    pub node: String,
    pub roles: watch::Receiver<Role>,
}

/// A candidacy of this sidecar.
pub struct Candidate {
    pub election: String,
    pub id: String,
    /// Campaigned by `--election` (its leadership drives `--leader-label`).
    pub flag: bool,
    value: Mutex<Vec<u8>>,
    resigning: AtomicBool,
    term: watch::Receiver<Option<Term>>,
    cmds: mpsc::Sender<Cmd>,
}

/// Where one of our candidates stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfState {
    Leader { token: i64 },
    Follower,
    Suspended,
    None,
}

impl SelfState {
    pub fn kind(self) -> CandidateState {
        match self {
            SelfState::Leader { .. } => CandidateState::Leader,
            SelfState::Follower => CandidateState::Follower,
            SelfState::Suspended => CandidateState::Suspended,
            SelfState::None => CandidateState::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SelfState::Leader { .. } => "leader",
            SelfState::Follower => "follower",
            SelfState::Suspended => "suspended",
            SelfState::None => "none",
        }
    }
}

impl Candidate {
    /// Our state from the recipe and the session alone (no read).
    pub fn state(&self, app: &App) -> SelfState {
        if app.shutting_down() || self.resigning.load(Ordering::SeqCst) {
            return SelfState::None;
        }
        let link = app.sessions.link();
        let term = self.term.borrow();
        let Some(term) = term.as_ref() else {
            return if link == Link::Connected {
                SelfState::Follower
            } else {
                SelfState::Suspended
            };
        };
        if link != Link::Connected {
            return SelfState::Suspended;
        }
        if term.generation != app.sessions.slot().generation {
            // Campaigning again on a new session.
            return SelfState::Follower;
        }
        let role = *term.roles.borrow();
        match role {
            Role::Leader { token } => SelfState::Leader { token },
            Role::Joining | Role::Follower => SelfState::Follower,
            Role::Suspended | Role::Lost => SelfState::Suspended,
            Role::Resigned => SelfState::None,
        }
    }

    /// Our state, confirmed against a fresh read of the election: we lead only if the
    /// lowest node read is ours too.
    pub fn confirmed_state(&self, app: &App, view: &View) -> SelfState {
        match self.state(app) {
            SelfState::Leader { token } => {
                let ours = self.node();
                match &view.leader {
                    Some(l) if Some(&l.node) == ours.as_ref() => SelfState::Leader { token },
                    _ => SelfState::Follower,
                }
            }
            other => other,
        }
    }

    pub fn node(&self) -> Option<String> {
        self.term.borrow().as_ref().map(|t| t.node.clone())
    }

    /// Whether the recipe's role and a read of the election disagree about us (one says
    /// we lead, the other not): a moment during which the recipe has not yet caught up
    /// with a change the read already shows, or the other way round.
    fn disagrees(&self, app: &App, view: &View) -> bool {
        let first_is_ours = match (&view.leader, self.node()) {
            (Some(l), Some(ours)) => l.node == ours,
            _ => false,
        };
        match self.state(app) {
            SelfState::Leader { .. } => !first_is_ours,
            SelfState::Follower => first_is_ours,
            _ => false,
        }
    }

    /// Waits (at most `limit`) for the recipe's role to change.
    async fn role_changed(&self, limit: Duration) {
        let roles = self.term.borrow().as_ref().map(|t| t.roles.clone());
        let mut term = self.term.clone();
        match roles {
            Some(mut roles) => {
                let _ = tokio::time::timeout(limit, async {
                    tokio::select! {
                        _ = roles.changed() => {}
                        _ = term.changed() => {}
                    }
                })
                .await;
            }
            None => {
                let _ = tokio::time::timeout(limit, term.changed()).await;
            }
        }
    }

    pub fn value(&self) -> Vec<u8> {
        self.value.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The registry of our candidacies, by (election, id).
pub type Elections = crate::registry::Registry<Candidate>;

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new candidacy, with its node in place.
    Created,
    /// Already a candidate (the value was updated if it differed).
    Existing,
    /// A new candidacy whose node is not in place yet (the sidecar keeps trying).
    Pending,
}

impl crate::registry::Registry<Candidate> {
    /// Our candidate in `election`: the one named `id`, else the one campaigning under
    /// the sidecar's own id, else the first.
    pub fn pick(
        &self,
        election: &str,
        id: Option<&str>,
        own: Option<&str>,
    ) -> Option<Arc<Candidate>> {
        if let Some(id) = id {
            return self.get(election, id);
        }
        if let Some(own) = own
            && let Some(c) = self.get(election, own)
        {
            return Some(c);
        }
        self.named(election).into_iter().next()
    }

    /// Joins `election` as `id` (idempotent: an existing candidacy gets the new value).
    pub async fn join(
        app: &Arc<App>,
        election: &str,
        id: &str,
        value: Vec<u8>,
        flag: bool,
    ) -> Result<(Arc<Candidate>, Joined), ApiError> {
        let _op = app.elections.serialize().await;
        if let Some(existing) = app.elections.get(election, id) {
            if existing.value() != value {
                crate::registry::ask(&existing.cmds, |tx| Cmd::SetValue(value, tx), "candidacy")
                    .await?;
            }
            return Ok((existing, Joined::Existing));
        }
        if !flag {
            // Writes need a connected session (a flag candidacy waits for one instead).
            app.sessions.client()?;
        }
        let (term_tx, term_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (joined_tx, joined_rx) = oneshot::channel();
        let candidate = Arc::new(Candidate {
            election: election.to_string(),
            id: id.to_string(),
            flag,
            value: Mutex::new(value.clone()),
            resigning: AtomicBool::new(false),
            term: term_rx,
            cmds: cmd_tx,
        });
        app.elections.insert(election, id, candidate.clone());
        tokio::spawn(run(
            app.clone(),
            candidate.clone(),
            value,
            term_tx,
            cmd_rx,
            joined_tx,
        ));
        let outcome = tokio::time::timeout(app.settings.join_timeout, joined_rx).await;
        match outcome {
            Ok(Ok(Ok(()))) => Ok((candidate, Joined::Created)),
            Ok(Ok(Err(e))) => {
                // Refused for good: forget the intent.
                app.elections.remove(election, id);
                Err(e)
            }
            Ok(Err(_)) => Err(ApiError::internal("the candidacy task ended")),
            Err(_) => Ok((candidate, Joined::Pending)),
        }
    }

    /// Resigns: from this moment our state is "none"; the node is deleted before this
    /// returns (or once the session ends). `false` if we were not a candidate.
    pub async fn resign(app: &Arc<App>, election: &str, id: &str) -> bool {
        let _op = app.elections.serialize().await;
        let Some(candidate) = app.elections.get(election, id) else {
            return false;
        };
        resign_candidate(app, &candidate).await;
        app.elections.remove(election, id);
        true
    }

    /// Resigns every candidacy (shutdown).
    pub async fn resign_all(app: &Arc<App>) {
        let all = app.elections.all();
        for c in &all {
            c.resigning.store(true, Ordering::SeqCst);
        }
        let resigns = all.iter().map(|c| resign_candidate(app, c));
        futures_util::future::join_all(resigns).await;
    }
}

async fn resign_candidate(app: &Arc<App>, candidate: &Arc<Candidate>) {
    // Not leader from this instant, before the node goes.
    candidate.resigning.store(true, Ordering::SeqCst);
    if candidate.flag {
        app.leading.send_replace(false);
    }
    app.notify_local();
    let (tx, rx) = oneshot::channel();
    if candidate.cmds.send(Cmd::Stop(tx)).await.is_ok() {
        let _ = tokio::time::timeout(RESIGN_TIMEOUT + Duration::from_secs(1), rx).await;
    }
    app.metrics
        .forget_candidate(&candidate.election, &candidate.id);
}

/// The data of a candidate node: `{"id","value"}`, the value base64 (with
/// `"encoding":"base64"`) when it is not UTF-8.
pub fn candidate_data(id: &str, value: &[u8]) -> Vec<u8> {
    let mut obj = Map::new();
    obj.insert("id".into(), Value::String(id.to_string()));
    value::insert(&mut obj, value, Encoding::Utf8);
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
}

/// The id and value of a candidate node. Nodes written by others (Curator's LeaderLatch
/// stores the participant id as plain bytes) are read as: id = the data if it is
/// UTF-8, else the node name.
pub fn parse_candidate(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(data)
        && let Some(Value::String(id)) = obj.get("id")
    {
        let raw = match obj.get("value") {
            Some(Value::String(v)) => v.clone(),
            _ => String::new(),
        };
        let bytes = if obj.get("encoding").and_then(Value::as_str) == Some("base64") {
            value::decode("value", &raw, Encoding::Base64).unwrap_or_else(|_| raw.into_bytes())
        } else {
            raw.into_bytes()
        };
        return (id.clone(), bytes);
    }
    match std::str::from_utf8(data) {
        Ok(text) if !text.is_empty() => (text.to_string(), Vec::new()),
        _ => (name.to_string(), data.to_vec()),
    }
}

/// The leader as read from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub node: String,
    pub id: String,
    pub value: Vec<u8>,
    /// The czxid of the leader's node.
    pub token: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    pub leader: Option<LeaderInfo>,
    pub candidates: usize,
}

/// Reads an election; the index is the directory's pzxid (any candidate joining or
/// leaving) or the leader node's mzxid (its value changing), whichever is later.
pub async fn load(
    client: &Client,
    layout: &Layout,
    election: &str,
) -> Result<(View, i64), ApiError> {
    let dir = layout.election(election);
    let (children, stat) = match client.get_children_stat(&dir).await {
        Ok(found) => found,
        Err(ZkError::Server {
            code: ErrorCode::NoNode,
            ..
        }) => {
            let index = match client.exists(&layout.elections()).await {
                Ok(Some(stat)) => stat.pzxid,
                Ok(None) => 0,
                Err(e) => return Err(ApiError::zk(&e, false)),
            };
            return Ok((View::default(), index));
        }
        Err(e) => return Err(ApiError::zk(&e, false)),
    };
    let mut queue: Vec<(u64, String)> = children
        .into_iter()
        .filter_map(|name| sequence_of(&name).map(|seq| (seq, name)))
        .collect();
    queue.sort();
    let mut index = stat.pzxid;
    let candidates = queue.len();
    for (_, name) in queue {
        let node = format!("{dir}/{name}");
        match client.get_data(&node).await {
            Ok((data, node_stat)) => {
                let (id, value) = parse_candidate(&name, &data);
                index = index.max(node_stat.mzxid);
                return Ok((
                    View {
                        leader: Some(LeaderInfo {
                            node,
                            id,
                            value,
                            token: node_stat.czxid,
                        }),
                        candidates,
                    },
                    index,
                ));
            }
            Err(ZkError::Server {
                code: ErrorCode::NoNode,
                ..
            }) => continue,
            Err(e) => return Err(ApiError::zk(&e, false)),
        }
    }
    Ok((
        View {
            leader: None,
            candidates,
        },
        index,
    ))
}

/// [`load`], then, if our candidate's role and the read disagree, gives the recipe a
/// moment to catch up and reads again, so that an answer right after a change is
/// consistent ("leader" with our node first) rather than transitional.
pub async fn load_settled(
    app: &App,
    client: &Client,
    election: &str,
    me: Option<&Arc<Candidate>>,
) -> Result<(View, i64), ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (view, index) = load(client, &app.layout, election).await?;
        match me {
            Some(c) if attempt < 3 && c.disagrees(app, &view) => {
                c.role_changed(Duration::from_millis(500)).await;
            }
            _ => return Ok((view, index)),
        }
    }
}

/// The state document of `GET /v1/elections/{e}` (and of `state` events). `view` is
/// `None` when the session is not connected: then nobody is reported as leader.
pub fn state_json(
    app: &App,
    election: &str,
    view: Option<&View>,
    index: i64,
    me: Option<&Arc<Candidate>>,
    encoding: Encoding,
) -> (Value, SelfState) {
    let link = app.sessions.link();
    let own_state = match (me, view) {
        (Some(c), Some(view)) => c.confirmed_state(app, view),
        (Some(c), None) => match c.state(app) {
            SelfState::Leader { .. } => SelfState::Suspended,
            other => other,
        },
        (None, _) => SelfState::None,
    };
    let leader = view.and_then(|view| {
        view.leader.as_ref().map(|l| Leader {
            id: l.id.clone(),
            value: value::encoded(Some(&l.value), encoding),
            fencing_token: l.token,
        })
    });
    let doc = ElectionState {
        election: election.to_string(),
        leader,
        self_: SelfCandidate {
            id: me.map(|c| c.id.clone()).or_else(|| app.settings.id.clone()),
            state: own_state.kind(),
        },
        fencing_token: view.and_then(|v| v.leader.as_ref()).map(|l| l.token),
        index,
        candidates: view.map(|v| v.candidates),
        session: link.into(),
        stale: view.is_none().then_some(true),
        detail: view.is_none().then(|| {
            "the session is not connected: who leads cannot be known, and this sidecar does not lead"
                .to_string()
        }),
    };
    (serde_json::to_value(doc).unwrap_or(Value::Null), own_state)
}

/// Says whether this candidate leads now: the log line when that changes, the metric,
/// and the sidecar-wide leading flag if this is the flagged election.
fn publish_role(app: &App, me: &Candidate, role: Role, was_leader: &mut bool) {
    let leads = role.is_leader() && !me.resigning.load(Ordering::SeqCst);
    if leads != *was_leader {
        *was_leader = leads;
        match role {
            Role::Leader { token } if leads => {
                tracing::info!(election = %me.election, id = %me.id, token, "leading")
            }
            _ => {
                tracing::info!(election = %me.election, id = %me.id, ?role, "no longer leading")
            }
        }
    }
    app.metrics.set_leader(&me.election, &me.id, leads);
    if me.flag {
        app.leading.send_replace(leads);
    }
}

/// Writes a new value into the candidate's node; on success it is also what the next
/// campaign writes.
async fn set_candidate_value(
    client: &Client,
    node: &str,
    me: &Candidate,
    data: &mut Vec<u8>,
    v: Vec<u8>,
) -> Result<(), ApiError> {
    client
        .set_data(node, &candidate_data(&me.id, &v), None)
        .await
        .map_err(|e| ApiError::zk(&e, true))?;
    *data = v.clone();
    if let Ok(mut value) = me.value.lock() {
        *value = v;
    }
    Ok(())
}

/// The candidacy task.
async fn run(
    app: Arc<App>,
    me: Arc<Candidate>,
    mut data: Vec<u8>,
    term: watch::Sender<Option<Term>>,
    mut cmds: mpsc::Receiver<Cmd>,
    joined: oneshot::Sender<Result<(), ApiError>>,
) {
    let dir = app.layout.election(&me.election);
    let mut slots = app.sessions.subscribe();
    let mut joined = Some(joined);
    let mut last_generation = 0u64;
    let mut was_leader = false;
    'session: loop {
        // A connected session newer than the one we last campaigned on.
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
        let election = match Election::new(&client, &dir) {
            Ok(e) => e,
            Err(e) => {
                if let Some(j) = joined.take() {
                    let _ = j.send(Err(ApiError::zk(&e, true)));
                }
                return;
            }
        };
        let node_data = candidate_data(&me.id, &data);
        let campaign = election.campaign(&node_data);
        let outcome = tokio::select! {
            r = campaign => Some(r),
            cmd = cmds.recv() => match cmd {
                // Dropping the campaign removes the node it was creating.
                Some(Cmd::Stop(done)) => {
                    term.send_replace(None);
                    let _ = done.send(());
                    return;
                }
                Some(Cmd::SetValue(v, reply)) => {
                    keep_value(&mut data, &me.value, v, reply);
                    None // campaign again with the new value
                }
                None => return,
            },
        };
        let candidacy = match outcome {
            None => continue 'session,
            Some(Ok(c)) => c,
            Some(Err(e)) if e.is_session_over() => {
                last_generation = generation;
                continue 'session;
            }
            Some(Err(e)) if e.is_connection_loss() => continue 'session,
            Some(Err(e)) => {
                tracing::warn!(election = %me.election, id = %me.id, error = %e, "campaign failed");
                if let Some(j) = joined.take() {
                    let _ = j.send(Err(ApiError::zk(&e, true)));
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue 'session;
            }
        };
        last_generation = generation;
        let mut roles = candidacy.roles();
        term.send_replace(Some(Term {
            generation,
            node: candidacy.node(),
            roles: roles.clone(),
        }));
        tracing::info!(election = %me.election, id = %me.id, node = %candidacy.node(), "campaigning");
        if let Some(j) = joined.take() {
            let _ = j.send(Ok(()));
        }
        app.notify_local();
        loop {
            let role = *roles.borrow_and_update();
            publish_role(&app, &me, role, &mut was_leader);
            if role.is_terminal() {
                // The session is over: campaign again on the next one.
                app.notify_local();
                continue 'session;
            }
            tokio::select! {
                changed = roles.changed() => {
                    if changed.is_err() {
                        continue 'session;
                    }
                    let node = candidacy.node();
                    term.send_if_modified(|t| match t {
                        Some(t) if t.node != node => {
                            t.node = node;
                            true
                        }
                        _ => false,
                    });
                    app.notify_local();
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::SetValue(v, reply)) => {
                        let r = set_candidate_value(&client, &candidacy.node(), &me, &mut data, v).await;
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Stop(done)) => {
                        let node = candidacy.node();
                        let _ = tokio::time::timeout(RESIGN_TIMEOUT, candidacy.resign()).await;
                        tracing::info!(election = %me.election, id = %me.id, %node, "resigned");
                        term.send_replace(None);
                        app.metrics.set_leader(&me.election, &me.id, false);
                        app.notify_local();
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_data_round_trips() {
        let data = candidate_data("pod-0", b"10.0.0.1:8080");
        assert_eq!(
            serde_json::from_slice::<Value>(&data).unwrap(),
            serde_json::json!({"id": "pod-0", "value": "10.0.0.1:8080"})
        );
        assert_eq!(
            parse_candidate("_c_x-latch-0000000001", &data),
            ("pod-0".to_string(), b"10.0.0.1:8080".to_vec())
        );
        let binary = candidate_data("b", &[0xff, 0x01]);
        assert_eq!(
            parse_candidate("n", &binary),
            ("b".to_string(), vec![0xff, 0x01])
        );
        // Curator's LeaderLatch: the participant id as plain bytes.
        assert_eq!(
            parse_candidate("n", b"curator-1"),
            ("curator-1".to_string(), Vec::new())
        );
        assert_eq!(parse_candidate("n", b""), ("n".to_string(), Vec::new()));
    }
}
