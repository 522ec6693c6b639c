//! ZAB, ZooKeeper's atomic broadcast, as a sans-IO state machine.
//!
//! `Zab` is fed with peer messages, link up/down events, ticks, "disk is durable up to
//! zxid Z" and proposals, and answers with [`Output`]s: messages to send, log appends,
//! epoch files to persist, commits to apply, and role changes. It owns no clock, socket,
//! file or random source: the tokio shell and the deterministic simulator both drive it,
//! and the same inputs always give the same outputs.
//!
//! Phases, as in the ZAB paper and ZooKeeper: fast leader election on (epoch, zxid, id)
//! votes (`election.rs`); discovery (FOLLOWERINFO → LEADERINFO → ACKEPOCH), sync (DIFF,
//! TRUNC or SNAP, then NEWLEADER → ACK → UPTODATE) and broadcast (PROPOSAL → ACK →
//! COMMIT) in `leader.rs` and `learner.rs`.
//!
//! Durability order (ZOOKEEPER-3911/4643/4646/4785): a learner logs every synced txn and
//! waits until it is durable before it persists the new currentEpoch and ACKs NEWLEADER;
//! an ACK always means "on disk"; proposals must be contiguous or the learner drops the
//! leader.
//!
//! Its own crate so that purity is checked by the compiler rather than kept by
//! convention: the only dependencies are `paddock-proto` (the jute encoding of the
//! messages) and `tracing`, so nothing here can name tokio or anything of
//! `paddock-server` (which re-exports this crate as `paddock_server::zab`). The standard
//! library's I/O and clocks are not fenced off by Cargo, so
//! `grep -rnE 'std::(fs|net|io|time|process)|Instant|SystemTime' zab/src` must find this
//! line and nothing else: time arrives as the `now` of each input. The seeded simulation
//! that runs `Zab` under faults is the whole-node simulator (`paddock-server`'s
//! `src/sim`), which drives it inside the production server node.

mod election;
mod leader;
mod learner;
mod membership;
pub mod message;
pub mod quorum;
#[cfg(test)]
mod scripted;

use std::collections::{BTreeMap, VecDeque};

/// A txn's bytes. One buffer is shared by everything that holds the txn (the pending
/// map, the log append, each follower's PROPOSAL, the commit, the DIFF history): a clone
/// is a reference count, not a copy.
pub use bytes::Bytes;
use election::Election;
use leader::Leader;
use learner::Learner;
pub use membership::{ClientAddress, MemberAddresses, Membership, PeerAddress};
pub use message::{Message, Notification, PeerState, Vote};
pub use quorum::QuorumVerifier;

pub type Sid = u64;
pub type Zxid = i64;

pub fn epoch_of(zxid: Zxid) -> i64 {
    zxid >> 32
}

pub fn counter_of(zxid: Zxid) -> i64 {
    zxid & 0xffff_ffff
}

pub fn make_zxid(epoch: i64, counter: i64) -> Zxid {
    (epoch << 32) | (counter & 0xffff_ffff)
}

/// A leader whose counter gets this close to 2^32 steps down so that the next election
/// starts a new epoch instead of wrapping the counter into the epoch bits.
pub const COUNTER_LIMIT: i64 = 0xffff_ff00;

/// How much committed history is kept in memory for DIFF syncs; a learner further
/// behind gets a snapshot.
const HISTORY_MAX_TXNS: usize = 100_000;
const HISTORY_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Timing, in milliseconds of the tick clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long discovery and sync may take (ZooKeeper's initLimit × tickTime).
    pub init_limit_ms: u64,
    /// How long a leader and a learner may go without hearing each other (syncLimit × tickTime).
    pub sync_limit_ms: u64,
    /// How often the leader pings learners.
    pub ping_ms: u64,
    /// How long a vote that has a quorum waits for a better one (ZooKeeper's finalizeWait).
    pub finalize_wait_ms: u64,
    /// How often a looking server re-sends its vote.
    pub vote_resend_ms: u64,
    /// How often a learner re-sends FOLLOWERINFO until the leader answers: a leader
    /// still finishing its own election drops the first one.
    pub hello_resend_ms: u64,
}

impl Timing {
    pub fn from_ticks(tick_ms: u64, init_limit: u64, sync_limit: u64) -> Timing {
        Timing {
            init_limit_ms: tick_ms * init_limit.max(1),
            sync_limit_ms: tick_ms * sync_limit.max(1),
            ping_ms: (tick_ms / 2).max(1),
            finalize_wait_ms: 200,
            vote_resend_ms: 400,
            hello_resend_ms: 50,
        }
    }
}

/// What the server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    /// Elected, establishing (discovery + sync); not serving writes yet.
    LeaderElect,
    Leader,
    /// Following or observing `leader`; `synced` once UPTODATE arrived.
    Follower {
        leader: Sid,
        synced: bool,
    },
    Observer {
        leader: Sid,
        synced: bool,
    },
}

impl Role {
    /// Whether clients may be served (reads locally, writes through the leader).
    pub fn is_serving(&self) -> bool {
        matches!(
            self,
            Role::Leader
                | Role::Follower { synced: true, .. }
                | Role::Observer { synced: true, .. }
        )
    }

    pub fn leader(&self, me: Sid) -> Option<Sid> {
        match self {
            Role::Leader | Role::LeaderElect => Some(me),
            Role::Follower { leader, .. } | Role::Observer { leader, .. } => Some(*leader),
            Role::Looking => None,
        }
    }
}

/// One thing ZAB asks of the shell ([`Zab::next_ready`]); the shell carries them out in
/// the order they come. Nothing after a `PersistEpochs` may happen before those epochs
/// are on disk, so a message that promises what the server wrote (a follower's ACKEPOCH,
/// its ACK of NEWLEADER) cannot leave before the write, whether the shell writes
/// synchronously or in the background. (Log records follow their own rule: they are
/// queued in order by [`Output::Append`], and ZAB acknowledges them only after
/// [`Zab::on_durable`].)
///
/// The items wait in one queue inside ZAB and are taken one at a time: a step allocates
/// nothing to hand them over, and a shell that calls back into ZAB while carrying one
/// out (a forwarded write proposed from an [`Output::App`]) still performs everything
/// in the order it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Make these durable; what comes after waits until they are.
    PersistEpochs(Epochs),
    Output(Output),
}

/// ZAB's acceptedEpoch and currentEpoch, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    pub accepted: i64,
    pub current: i64,
}

/// One thing the shell does (inside a [`Ready`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: Sid,
        msg: Message,
    },
    /// Append to the txn log; durability comes back as [`Zab::on_durable`].
    Append {
        zxid: Zxid,
        payload: Bytes,
    },
    /// The txn is committed: apply it.
    Commit {
        zxid: Zxid,
        payload: Bytes,
    },
    /// Drop log records after `zxid` (never committed: nothing applied changes).
    Truncate {
        zxid: Zxid,
    },
    /// Send `Message::Snap` with the applied state (which is at the last commit) to `to`.
    SendSnapshot {
        to: Sid,
    },
    /// Replace the whole state with this snapshot; the log restarts after `zxid`.
    InstallSnapshot {
        zxid: Zxid,
        payload: Vec<u8>,
    },
    /// An application message from a peer.
    App {
        from: Sid,
        payload: Vec<u8>,
    },
    /// The role changed (the shell reads the current one from [`Zab::role`]; `from`
    /// says what it leaves, e.g. whether the leader stays the same).
    RoleChanged {
        from: Role,
        to: Role,
    },
    /// A new configuration is active from now on (persist it; connect to new peers).
    ActivateConfig(Membership),
}

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposeError {
    NotLeader,
    /// The counter is exhausted; a new epoch is being started.
    EpochExhausted,
    /// Leadership is being handed off; the new leader takes writes in a moment.
    Transferring,
}

/// Why a reconfig was refused (ZooKeeper's error codes map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconfigError {
    NotLeader,
    /// Another reconfig is not committed yet (ReconfigInProgress).
    InProgress,
    /// The new config's voters that are synced now do not form its quorum (NewConfigNoQuorum).
    NoQuorum,
    Propose(ProposeError),
}

/// Why a leadership transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    NotLeader,
    /// No voter is synced with the leader.
    NoSyncedFollower,
    /// The requested server is not a synced voter.
    NotEligible(Sid),
    InProgress,
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::NotLeader => write!(f, "this server is not the leader"),
            TransferError::NoSyncedFollower => {
                write!(f, "no voting follower is synced with the leader")
            }
            TransferError::NotEligible(sid) => {
                write!(f, "server {sid} is not a synced voting follower")
            }
            TransferError::InProgress => write!(f, "a leadership transfer is already in progress"),
        }
    }
}

/// The durable facts a server starts from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Durable {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    /// Last zxid in the log (or snapshot).
    pub last_zxid: Zxid,
    /// The last zxid known committed (persisted lazily: it may lag, never lead). The
    /// state is rebuilt up to it; later log records are only proposals until the leader
    /// commits them — a server never serves a txn that was not committed.
    pub last_committed: Zxid,
    /// The logged records after `last_committed`, in order.
    pub uncommitted: Vec<(Zxid, Bytes)>,
    /// The configs that uncommitted reconfig records activate when committed (the shell
    /// reads them out of the records).
    pub uncommitted_configs: Vec<(Zxid, Membership)>,
}

enum State {
    Looking,
    Leading(Box<Leader>),
    Learning(Box<Learner>),
}

/// One server's replication state machine.
pub struct Zab {
    me: Sid,
    membership: Membership,
    timing: Timing,
    now: u64,
    accepted_epoch: i64,
    current_epoch: i64,
    /// Last zxid handed to the log.
    last_logged: Zxid,
    /// Last zxid the log reported durable.
    last_durable: Zxid,
    /// TRUNCs and SNAPs handed to the disk that it has not reported done: until they
    /// are, a `Durable` report is of records before them and no longer holds (records
    /// a TRUNC cut, or a history a snapshot replaced), so it is not counted.
    log_resets_in_flight: u32,
    /// How far the history is durable once they are done: where the last one left it.
    durable_after_resets: Zxid,
    /// Last zxid committed (and handed out as `Output::Commit`).
    last_committed: Zxid,
    /// Logged but not yet committed txns (a learner's proposals, the leader's outstanding ones).
    pending: BTreeMap<Zxid, Bytes>,
    /// Recently committed txns, for syncing learners by DIFF (bounded).
    history: VecDeque<(Zxid, Bytes)>,
    history_bytes: usize,
    /// Configs proposed (or learned) but not active yet, by the zxid whose commit
    /// activates them.
    pending_configs: BTreeMap<Zxid, Membership>,
    election: Election,
    state: State,
    role: Role,
    /// Peers with a live connection, and when a message from each last arrived since
    /// (a connection alone proves nothing: a silent partition may accept and hold it).
    /// Election only counts on candidates it hears (see `reachable`).
    connected: BTreeMap<Sid, Option<u64>>,
    /// What the shell is to do, in order (see [`Ready`]).
    out: VecDeque<Ready>,
}

impl Zab {
    pub fn new(me: Sid, membership: Membership, timing: Timing, durable: Durable, now: u64) -> Zab {
        let mut zab = Zab {
            me,
            membership,
            timing,
            now,
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            last_logged: durable.last_zxid,
            last_durable: durable.last_zxid,
            log_resets_in_flight: 0,
            durable_after_resets: 0,
            last_committed: durable.last_committed.min(durable.last_zxid),
            pending: durable.uncommitted.into_iter().collect(),
            history: VecDeque::new(),
            history_bytes: 0,
            pending_configs: durable
                .uncommitted_configs
                .into_iter()
                .filter(|(z, _)| *z > durable.last_committed)
                .collect(),
            election: Election::default(),
            state: State::Looking,
            role: Role::Looking,
            connected: BTreeMap::new(),
            out: VecDeque::new(),
        };
        zab.start_looking();
        zab
    }

    pub fn me(&self) -> Sid {
        self.me
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn last_committed(&self) -> Zxid {
        self.last_committed
    }

    pub fn last_logged(&self) -> Zxid {
        self.last_logged
    }

    pub fn current_epoch(&self) -> i64 {
        self.current_epoch
    }

    pub fn accepted_epoch(&self) -> i64 {
        self.accepted_epoch
    }

    /// The next thing the shell must do, in order; `None` when there is nothing more.
    pub fn next_ready(&mut self) -> Option<Ready> {
        self.out.pop_front()
    }

    /// Everything the shell must do now, in order (for shells that do it all at once).
    pub fn take_ready(&mut self) -> Vec<Ready> {
        self.out.drain(..).collect()
    }

    /// Queues `out` after everything queued so far (behind the last durable write).
    fn emit(&mut self, out: Output) {
        self.out.push_back(Ready::Output(out));
    }

    fn send(&mut self, to: Sid, msg: Message) {
        if to != self.me {
            self.emit(Output::Send { to, msg });
        }
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            let from = std::mem::replace(&mut self.role, role);
            self.emit(Output::RoleChanged { from, to: role });
        }
    }

    fn is_voter(&self, sid: Sid) -> bool {
        self.membership.verifier.is_voter(sid)
    }

    /// Whether this server must follow (propose-and-ACK) rather than observe: it votes
    /// now, or will once a pending reconfig commits (whose quorum needs its ACK).
    fn must_follow(&self) -> bool {
        self.is_voter(self.me)
            || self
                .pending_configs
                .values()
                .any(|c| c.verifier.is_voter(self.me))
    }

    /// The epochs as they are now, durable before whatever is emitted after this.
    fn persist_epochs(&mut self) {
        let epochs = Epochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        };
        self.out.push_back(Ready::PersistEpochs(epochs));
    }

    /// Hands a log record to the shell; the log must stay contiguous.
    fn append(&mut self, zxid: Zxid, payload: Bytes) {
        self.last_logged = zxid;
        self.emit(Output::Append { zxid, payload });
    }

    fn commit(&mut self, zxid: Zxid, payload: Bytes) {
        if zxid > self.last_committed {
            self.last_committed = zxid;
            self.remember_committed(zxid, payload.clone());
            self.emit(Output::Commit { zxid, payload });
            // Commits are in order: a config pending for an earlier zxid whose txn we
            // never logged (its proposal was lost with a link) is stale.
            self.pending_configs.retain(|z, _| *z >= zxid);
            if let Some(config) = self.pending_configs.remove(&zxid) {
                self.activate(config);
            }
            self.check_learner_kind();
        }
    }

    /// A learner whose kind no longer fits rejoins as the other kind: a follower that
    /// followed only because a pending config made it a voter, once that config turned
    /// out older than the active one (a server whose commit index lagged when it
    /// restarted, with the reconfig that had added it still uncommitted in its log,
    /// after a later one removed it: it stayed a participant outside the config).
    fn check_learner_kind(&mut self) {
        if let State::Learning(l) = &self.state
            && l.is_observer() == self.must_follow()
        {
            self.start_looking();
        }
    }

    /// Switches to a new configuration. Every member does this at the same point of the
    /// txn order (the reconfig's commit), so configs switch atomically.
    ///
    /// Only a newer version replaces the active config, as in ZooKeeper's
    /// `setQuorumVerifier`: a config of the same version is the same reconfig's (or the
    /// same static config, where each server may name its peers by addresses of its own,
    /// such as a proxy), so this server keeps its own copy and its own view of the
    /// addresses. Its role is still checked against it.
    fn activate(&mut self, config: Membership) {
        if config.version < self.membership.version {
            return;
        }
        let was_voter = self.is_voter(self.me);
        let changed = config.version > self.membership.version;
        if changed {
            self.membership = config.clone();
            tracing::info!(
                me = self.me,
                version = format_args!("{:#x}", config.version),
                "configuration activated"
            );
            self.emit(Output::ActivateConfig(config));
        }
        let is_voter = self.is_voter(self.me);
        match &self.state {
            State::Leading(_) if !is_voter => self.leader_removed(),
            // A learner whose kind changed (observer <-> participant) rejoins as the other.
            State::Learning(l)
                if was_voter != is_voter || l.is_observer() == self.must_follow() =>
            {
                self.start_looking()
            }
            _ => {}
        }
    }

    /// The newest proposed config that is not active yet.
    pub fn pending_config(&self) -> Option<&Membership> {
        self.pending_configs.values().next_back()
    }

    /// Keeps a committed txn for DIFF syncs. The history is contiguous and ends at the
    /// last commit, so "everything after z" is exactly its tail.
    fn remember_committed(&mut self, zxid: Zxid, payload: Bytes) {
        self.history_bytes += payload.len();
        self.history.push_back((zxid, payload));
        while self.history.len() > HISTORY_MAX_TXNS || self.history_bytes > HISTORY_MAX_BYTES {
            match self.history.pop_front() {
                Some((_, p)) => self.history_bytes -= p.len(),
                None => break,
            }
        }
    }

    // ---- inputs ----

    pub fn on_tick(&mut self, now: u64) {
        self.now = now;
        match &mut self.state {
            State::Looking => self.election_tick(),
            State::Leading(_) => self.leader_tick(),
            State::Learning(_) => self.learner_tick(),
        }
    }

    pub fn on_connected(&mut self, now: u64, peer: Sid) {
        self.now = now;
        self.connected.insert(peer, None);
        match &self.state {
            State::Looking => self.send_vote_to(peer),
            State::Learning(l) if l.leader == peer => self.learner_hello(),
            _ => {}
        }
    }

    pub fn on_disconnected(&mut self, now: u64, peer: Sid) {
        self.now = now;
        self.connected.remove(&peer);
        match &mut self.state {
            State::Leading(leader) => {
                leader.learners.remove(&peer);
            }
            State::Learning(l) if l.leader == peer => {
                tracing::info!(leader = peer, "lost the leader");
                self.start_looking();
            }
            _ => {}
        }
    }

    pub fn on_message(&mut self, now: u64, from: Sid, msg: Message) {
        self.now = now;
        if let Some(heard) = self.connected.get_mut(&from) {
            *heard = Some(now);
        }
        match msg {
            Message::Vote(n) => self.on_vote(from, n),
            Message::App(payload) => self.emit(Output::App { from, payload }),
            msg => match &self.state {
                State::Leading(_) => self.leader_on_message(from, msg),
                State::Learning(_) => self.learner_on_message(from, msg),
                State::Looking => {}
            },
        }
    }

    /// The log is durable up to `zxid`.
    pub fn on_durable(&mut self, now: u64, zxid: Zxid) {
        self.now = now;
        if self.log_resets_in_flight == 0 && zxid > self.last_durable {
            self.last_durable = zxid;
        }
        self.after_durable();
    }

    /// Whether a TRUNC or SNAP handed to the disk is not done yet.
    pub fn awaits_log_reset(&self) -> bool {
        self.log_resets_in_flight > 0
    }

    /// The disk carried out the oldest TRUNC or SNAP it was given (`Output::Truncate`,
    /// `Output::InstallSnapshot`), durably.
    pub fn on_log_reset(&mut self, now: u64) {
        self.now = now;
        self.log_resets_in_flight = self.log_resets_in_flight.saturating_sub(1);
        if self.log_resets_in_flight == 0 {
            self.last_durable = self.durable_after_resets;
        }
        self.after_durable();
    }

    /// Hands the disk a TRUNC or SNAP that leaves the history durable up to `zxid` once
    /// done; until then nothing past what is durable now counts.
    fn reset_log(&mut self, zxid: Zxid, output: Output) {
        self.last_durable = self.last_durable.min(zxid);
        self.log_resets_in_flight += 1;
        self.durable_after_resets = zxid;
        self.emit(output);
    }

    fn after_durable(&mut self) {
        match &self.state {
            State::Leading(_) => self.leader_on_durable(),
            State::Learning(_) => self.learner_on_durable(),
            State::Looking => {}
        }
    }

    /// Proposes a txn (leader only). `make` builds the payload for the assigned zxid.
    pub fn propose(&mut self, make: impl FnOnce(Zxid) -> Vec<u8>) -> Result<Zxid, ProposeError> {
        self.leader_propose(make)
    }

    /// Sends an application message to the leader (learners) — dropped when there is none.
    pub fn send_to_leader(&mut self, payload: Vec<u8>) -> bool {
        match self.role {
            Role::Follower { leader, .. } | Role::Observer { leader, .. } => {
                self.send(leader, Message::App(payload));
                true
            }
            _ => false,
        }
    }

    /// Leader: sends an application message to a learner once everything proposed so far
    /// is committed (so the learner applies those commits first), or at once.
    pub fn send_app(&mut self, to: Sid, payload: Vec<u8>, after_commits: bool) {
        self.leader_send_app(to, payload, after_commits);
    }

    /// Back to election (a fault the shell detected, e.g. a failed disk or a bad snapshot).
    pub fn restart_election(&mut self) {
        self.start_looking();
    }

    /// Whether this server hears `peer` now: connected, and heard from within a few
    /// vote rounds (every looking server broadcasts its vote each `vote_resend_ms`, and
    /// the ones that follow or lead answer it). A connection that the transport still
    /// believes up says nothing on its own when a network silently drops packets.
    pub(crate) fn reachable(&self, peer: Sid) -> bool {
        peer == self.me
            || self
                .connected
                .get(&peer)
                .copied()
                .flatten()
                .is_some_and(|heard| {
                    self.now.saturating_sub(heard) <= 3 * self.timing.vote_resend_ms
                })
    }

    fn start_looking(&mut self) {
        if !matches!(self.state, State::Looking) {
            tracing::info!(me = self.me, "looking for a leader");
        }
        self.state = State::Looking;
        self.set_role(Role::Looking);
        self.begin_election();
    }
}
