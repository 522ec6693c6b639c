//! The leader: discovery (pick a new epoch from a quorum's acceptedEpochs), sync of each
//! learner (DIFF when it has a prefix of our log, TRUNC when it has txns we do not, SNAP
//! when it is too far behind our in-memory history), establishment (a quorum ACKed
//! NEWLEADER), then broadcast: PROPOSAL → quorum of durable ACKs → COMMIT, in zxid order.

use std::collections::{BTreeMap, BTreeSet};

use super::message::Message;
use super::{
    Bytes, COUNTER_LIMIT, Membership, Output, ProposeError, ReconfigError, Role, Sid, State,
    TransferError, Zab, Zxid, make_zxid,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting FOLLOWERINFO from a quorum to choose the epoch.
    Discovery,
    /// Epoch chosen; syncing learners until a quorum ACKs NEWLEADER.
    Sync,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Sent FOLLOWERINFO; waits for LEADERINFO.
    Info,
    /// Sent ACKEPOCH; waits to be synced.
    EpochAcked,
    /// Sync data and NEWLEADER sent; waits for the NEWLEADER ACK.
    Syncing,
    /// NEWLEADER ACKed: receives the broadcast.
    Synced,
}

#[derive(Debug, Clone)]
pub(super) struct LearnerLink {
    observer: bool,
    stage: Stage,
    accepted_epoch: i64,
    current_epoch: i64,
    last_zxid: Zxid,
    /// Highest zxid it reported durable.
    acked: Zxid,
    /// What our log held when its sync was sent (its NEWLEADER ACK covers that much).
    synced_to: Zxid,
    /// When its FOLLOWERINFO arrived: until it is synced, it counts as alive for
    /// initLimit from then (ZooKeeper's first ack deadline), however often it talks.
    hello_at: u64,
    last_heard: u64,
}

#[derive(Debug)]
pub(super) struct Leader {
    phase: Phase,
    epoch: i64,
    started: u64,
    pub(super) learners: BTreeMap<Sid, LearnerLink>,
    newleader_acks: BTreeSet<Sid>,
    next_counter: i64,
    /// Application messages held until everything proposed before them is committed.
    deferred: Vec<(Zxid, Sid, Vec<u8>)>,
    last_ping: u64,
    /// A handoff in progress: to whom, since when.
    transfer: Option<(Sid, u64)>,
}

impl Leader {
    pub(super) fn new(now: u64) -> Leader {
        Leader {
            phase: Phase::Discovery,
            epoch: 0,
            started: now,
            learners: BTreeMap::new(),
            newleader_acks: BTreeSet::new(),
            next_counter: 1,
            deferred: Vec::new(),
            last_ping: now,
            transfer: None,
        }
    }
}

impl Zab {
    fn leader(&mut self) -> Option<&mut Leader> {
        match &mut self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    /// Called on election: our own FOLLOWERINFO counts at once.
    pub(super) fn leader_start(&mut self) {
        self.leader_try_choose_epoch();
    }

    /// Discovery: with a quorum of FOLLOWERINFOs (ours included), the new epoch is one
    /// above every acceptedEpoch seen, so no two leaders ever share an epoch.
    fn leader_try_choose_epoch(&mut self) {
        let me = self.me;
        let accepted = self.accepted_epoch;
        let Some(leader) = self.leader() else { return };
        if leader.phase != Phase::Discovery {
            return;
        }
        let mut who: BTreeSet<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| !l.observer)
            .map(|(s, _)| *s)
            .collect();
        who.insert(me);
        let max_seen = leader
            .learners
            .values()
            .map(|l| l.accepted_epoch)
            .fold(accepted, i64::max);
        if !self.membership.verifier.contains_quorum(&who) {
            return;
        }
        let epoch = max_seen + 1;
        self.accepted_epoch = epoch;
        self.persist_epochs();
        let Some(leader) = self.leader() else { return };
        leader.phase = Phase::Sync;
        leader.epoch = epoch;
        let waiting: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Info)
            .map(|(s, _)| *s)
            .collect();
        tracing::info!(me, epoch, "new epoch chosen");
        for sid in waiting {
            self.send(sid, Message::LeaderInfo { epoch });
        }
        self.leader_try_establish();
    }

    pub(super) fn leader_on_message(&mut self, from: Sid, msg: Message) {
        let now = self.now;
        if let Some(leader) = self.leader()
            && let Some(link) = leader.learners.get_mut(&from)
        {
            link.last_heard = now;
        }
        match msg {
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                let Some(leader) = self.leader() else { return };
                if leader.phase != Phase::Discovery && accepted_epoch > leader.epoch {
                    // It accepted a newer epoch than ours, so it will refuse our
                    // LEADERINFO: it is no learner of ours and must not count towards
                    // our quorum (a leader that established late, after its followers
                    // moved on to a newer leader, would otherwise stay leader forever
                    // on the credit of their retried handshakes). Answer so that it
                    // gives up on us at once.
                    leader.learners.remove(&from);
                    let epoch = leader.epoch;
                    self.send(from, Message::LeaderInfo { epoch });
                    // Nor can it ever join us: a candidate that never established
                    // made it promise that epoch (seed 135142 of the weighted soak: it
                    // stayed out for good). Step down, having taken the promise over
                    // (raising acceptedEpoch only ever refuses more), so that the next
                    // epoch chosen, by us or by a leader we tell it through our
                    // FOLLOWERINFO, is above it.
                    tracing::info!(
                        me = self.me,
                        learner = from,
                        accepted_epoch,
                        epoch,
                        "a learner accepted a newer epoch than ours; re-electing"
                    );
                    self.accepted_epoch = self.accepted_epoch.max(accepted_epoch);
                    self.persist_epochs();
                    self.start_looking();
                    return;
                }
                leader.learners.insert(
                    from,
                    LearnerLink {
                        observer,
                        stage: Stage::Info,
                        accepted_epoch,
                        current_epoch: 0,
                        last_zxid,
                        acked: 0,
                        synced_to: 0,
                        hello_at: now,
                        last_heard: now,
                    },
                );
                let (phase, epoch) = (leader.phase, leader.epoch);
                if phase == Phase::Discovery {
                    self.leader_try_choose_epoch();
                } else {
                    self.send(from, Message::LeaderInfo { epoch });
                }
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                let ahead = (current_epoch, last_zxid) > (self.current_epoch, self.last_logged);
                if ahead && !self.learner_is_observer(from) {
                    // Election should never pick a leader behind a quorum member; if it
                    // did, step aside rather than lose that member's txns.
                    tracing::warn!(
                        me = self.me,
                        follower = from,
                        "a follower is ahead of the leader; re-electing"
                    );
                    self.start_looking();
                    return;
                }
                let Some(leader) = self.leader() else { return };
                let Some(link) = leader.learners.get_mut(&from) else {
                    return;
                };
                link.stage = Stage::EpochAcked;
                link.current_epoch = current_epoch;
                link.last_zxid = last_zxid;
                self.sync_learner(from);
                self.leader_try_establish();
            }
            Message::Ack { zxid } => {
                let Some(leader) = self.leader() else { return };
                let newleader = make_zxid(leader.epoch, 0);
                let Some(link) = leader.learners.get_mut(&from) else {
                    return;
                };
                if link.stage == Stage::Syncing && zxid == newleader {
                    link.stage = Stage::Synced;
                    link.acked = link.acked.max(link.synced_to);
                    let observer = link.observer;
                    if !observer {
                        leader.newleader_acks.insert(from);
                    }
                    if leader.phase == Phase::Broadcast {
                        self.send(from, Message::UpToDate);
                    }
                    self.leader_try_establish();
                } else {
                    link.acked = link.acked.max(zxid);
                }
                self.leader_try_commit();
                self.leader_try_transfer();
            }
            Message::Ping => {}
            _ => {}
        }
    }

    fn learner_is_observer(&self, sid: Sid) -> bool {
        match &self.state {
            State::Leading(l) => l.learners.get(&sid).is_some_and(|l| l.observer),
            _ => false,
        }
    }

    /// Sends a learner what it lacks: DIFF, TRUNC (+ DIFF) or SNAP, then NEWLEADER.
    fn sync_learner(&mut self, sid: Sid) {
        let Some(leader) = self.leader() else { return };
        if leader.phase == Phase::Discovery {
            return;
        }
        let epoch = leader.epoch;
        let Some(link) = leader.learners.get(&sid) else {
            return;
        };
        let (peer, observer) = (link.last_zxid, link.observer);
        // Wait until a quorum accepted the epoch before syncing anyone during establishment.
        if leader.phase == Phase::Sync && !self.epoch_quorum() {
            return;
        }
        // The learner takes our active config first (it may have missed reconfigs).
        let active = self.membership.clone();
        self.send(
            sid,
            Message::Config {
                zxid: 0,
                config: active,
            },
        );
        let base = self.sync_base(peer);
        match base {
            Some(b) if b == peer => self.send(
                sid,
                Message::Diff {
                    zxid: self.last_logged,
                },
            ),
            Some(b) => self.send(sid, Message::Trunc { zxid: b }),
            None => {}
        }
        match base {
            Some(base) => {
                let committed: Vec<(Zxid, Bytes)> = self
                    .history
                    .iter()
                    .filter(|(z, _)| *z > base)
                    .cloned()
                    .collect();
                // Committed history: the config it led to is the active one, sent first.
                for (zxid, payload) in committed {
                    if observer {
                        self.send(
                            sid,
                            Message::Inform {
                                zxid,
                                payload,
                                config: None,
                            },
                        );
                    } else {
                        self.send(
                            sid,
                            Message::Proposal {
                                zxid,
                                payload,
                                config: None,
                            },
                        );
                        self.send(sid, Message::Commit { zxid });
                    }
                }
            }
            None => self.emit(Output::SendSnapshot { to: sid }),
        }
        // Whatever the learner kept from before (it applies only committed txns) is
        // committed up to here: say so, so it applies those too.
        let last_committed = self.last_committed;
        self.send(
            sid,
            Message::Commit {
                zxid: last_committed,
            },
        );
        let configs: Vec<(Zxid, Membership)> = self
            .pending_configs
            .iter()
            .map(|(z, m)| (*z, m.clone()))
            .collect();
        for (zxid, config) in configs {
            self.send(sid, Message::Config { zxid, config });
        }
        if !observer {
            let pending: Vec<(Zxid, Bytes)> = self
                .pending
                .iter()
                .filter(|(z, _)| base.is_none_or(|b| **z > b))
                .map(|(z, p)| (*z, p.clone()))
                .collect();
            for (zxid, payload) in pending {
                let config = self.pending_configs.get(&zxid).cloned();
                self.send(
                    sid,
                    Message::Proposal {
                        zxid,
                        payload,
                        config,
                    },
                );
            }
        }
        let last = if observer {
            self.last_committed
        } else {
            self.last_logged
        };
        if let Some(leader) = self.leader()
            && let Some(link) = leader.learners.get_mut(&sid)
        {
            link.stage = Stage::Syncing;
            link.synced_to = last;
        }
        self.send(
            sid,
            Message::NewLeader {
                zxid: make_zxid(epoch, 0),
            },
        );
    }

    /// Where a learner whose log ends at `peer` can continue from our log: `Some(peer)`
    /// (DIFF), `Some(earlier)` (TRUNC to it, then DIFF), or `None` (SNAP).
    ///
    /// Logs agree on every epoch they both hold entries of, up to the shorter one: all
    /// entries of an epoch come from its one leader, which synced both logs' earlier
    /// history first. So when our log holds entries of the peer's last epoch, cutting
    /// the peer back to min(peer, our last entry of that epoch) leaves a common prefix.
    /// Otherwise the peer's tail came from a leader we never followed, and only a
    /// snapshot is safe. Either way we need the txns after the base in memory.
    fn sync_base(&self, peer: Zxid) -> Option<Zxid> {
        // Whether we hold the payloads of everything after `z`.
        let have_after = |z: Zxid| {
            z >= self.last_committed || self.history.front().is_some_and(|(start, _)| *start <= z)
        };
        let is_ours = |z: Zxid| {
            z == self.last_committed
                || z == self.last_logged
                || self.pending.contains_key(&z)
                || self.history.iter().any(|(h, _)| *h == z)
        };
        if is_ours(peer) {
            return have_after(peer).then_some(peer);
        }
        let epoch = super::epoch_of(peer);
        let last_of_epoch = self
            .history
            .iter()
            .map(|(z, _)| *z)
            .chain(self.pending.keys().copied())
            .chain([self.last_committed, self.last_logged])
            .filter(|z| *z != 0 && super::epoch_of(*z) == epoch)
            .max()?;
        let base = last_of_epoch.min(peer);
        (is_ours(base) && have_after(base)).then_some(base)
    }

    fn epoch_quorum(&self) -> bool {
        let State::Leading(leader) = &self.state else {
            return false;
        };
        let mut who: BTreeSet<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| !l.observer && l.stage != Stage::Info)
            .map(|(s, _)| *s)
            .collect();
        who.insert(self.me);
        self.membership.verifier.contains_quorum(&who)
    }

    /// Establishment: a quorum (with ourselves, once our log is durable) ACKed
    /// NEWLEADER. Then our whole log is committed and broadcast begins.
    fn leader_try_establish(&mut self) {
        // Learners that acked the epoch before the quorum formed are synced now.
        let waiting: Vec<Sid> = match &self.state {
            State::Leading(l) if l.phase == Phase::Sync && self.epoch_quorum() => l
                .learners
                .iter()
                .filter(|(_, l)| l.stage == Stage::EpochAcked)
                .map(|(s, _)| *s)
                .collect(),
            _ => vec![],
        };
        for sid in waiting {
            self.sync_learner(sid);
        }
        let me = self.me;
        let durable = self.last_durable >= self.last_logged;
        let Some(leader) = self.leader() else { return };
        if leader.phase != Phase::Sync {
            return;
        }
        let mut acks = leader.newleader_acks.clone();
        if durable {
            acks.insert(me);
        }
        if !self.membership.verifier.contains_quorum(&acks) {
            return;
        }
        let Some(leader) = self.leader() else { return };
        leader.phase = Phase::Broadcast;
        let epoch = leader.epoch;
        let synced: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced)
            .map(|(s, _)| *s)
            .collect();
        self.current_epoch = epoch;
        self.persist_epochs();
        // Only configs whose txn is in our log can ever activate.
        let logged: Vec<Zxid> = self.pending.keys().copied().collect();
        self.pending_configs.retain(|z, _| logged.contains(z));
        // Everything in our log is now committed.
        let upto = self.last_logged;
        self.commit_through(upto);
        // Committing our log may have activated a config without us (we stepped down).
        if !matches!(self.state, State::Leading(_)) {
            return;
        }
        for sid in synced {
            self.send(sid, Message::UpToDate);
        }
        tracing::info!(
            me,
            epoch,
            zxid = format_args!("{:#x}", self.last_logged),
            "leading"
        );
        self.set_role(Role::Leader);
    }

    pub(super) fn leader_on_durable(&mut self) {
        self.leader_try_establish();
        self.leader_try_commit();
        self.leader_try_transfer();
    }

    /// Commits, in order, every outstanding proposal that a quorum holds durably.
    fn leader_try_commit(&mut self) {
        let me = self.me;
        let State::Leading(leader) = &self.state else {
            return;
        };
        if leader.phase != Phase::Broadcast {
            return;
        }
        // The voters holding a zxid only thin out as the zxid grows, and stay the same
        // up to the lowest of their acked zxids: the set is rebuilt only past that point
        // (at most once per voter), not for every pending txn.
        let holding = |zxid: Zxid| -> (BTreeSet<Sid>, Zxid) {
            let mut holders = BTreeSet::new();
            let mut same_through = Zxid::MAX;
            for (sid, l) in &leader.learners {
                if !l.observer && l.acked >= zxid {
                    holders.insert(*sid);
                    same_through = same_through.min(l.acked);
                }
            }
            if self.last_durable >= zxid {
                holders.insert(me);
                same_through = same_through.min(self.last_durable);
            }
            (holders, same_through)
        };
        let mut upto = None;
        let mut current: Option<(BTreeSet<Sid>, Zxid)> = None;
        for zxid in self.pending.keys() {
            if current
                .as_ref()
                .is_none_or(|(_, same_through)| zxid > same_through)
            {
                current = Some(holding(*zxid));
            }
            let Some((set, _)) = &current else { break };
            if self.commit_quorum(*zxid, set) {
                upto = Some(*zxid);
            } else {
                break;
            }
        }
        if let Some(upto) = upto {
            self.commit_through(upto);
        }
    }

    /// Commits pending txns up to `upto`, tells learners, and releases deferred messages.
    fn commit_through(&mut self, upto: Zxid) {
        // Observers learn a reconfig's config with its INFORM (committing activates it
        // here and drops it from pending_configs, so take it first).
        let activated: Vec<(Zxid, Membership)> = self
            .pending_configs
            .range(..=upto)
            .map(|(z, c)| (*z, c.clone()))
            .collect();
        // Followers learn a commit by its zxid alone; only observers need the txns kept
        // for their INFORMs (kept too when a config activates, which may change who
        // observes).
        let observed = !activated.is_empty()
            || matches!(&self.state, State::Leading(l) if l.learners.values().any(|l| l.observer));
        // Taken out of pending from the front (a split would allocate a new map for what
        // stays); the payloads are shared (Bytes), so handing each to the commit, the
        // DIFF history and the observers copies none of them.
        let mut committed: Vec<(Zxid, Bytes)> = Vec::new();
        let mut any = false;
        while let Some(first) = self.pending.first_entry()
            && *first.key() <= upto
        {
            let (zxid, payload) = first.remove_entry();
            if observed {
                committed.push((zxid, payload.clone()));
            }
            self.commit(zxid, payload);
            any = true;
        }
        if !any {
            return;
        }
        let State::Leading(leader) = &self.state else {
            return;
        };
        let links: Vec<(Sid, bool)> = leader
            .learners
            .iter()
            .filter(|(_, l)| matches!(l.stage, Stage::Syncing | Stage::Synced))
            .map(|(s, l)| (*s, l.observer))
            .collect();
        for (sid, observer) in links {
            if observer {
                for (zxid, payload) in &committed {
                    let config = activated
                        .iter()
                        .find(|(z, _)| z == zxid)
                        .map(|(_, c)| c.clone());
                    self.send(
                        sid,
                        Message::Inform {
                            zxid: *zxid,
                            payload: payload.clone(),
                            config,
                        },
                    );
                }
            } else {
                self.send(sid, Message::Commit { zxid: upto });
            }
        }
        let last_committed = self.last_committed;
        let Some(leader) = self.leader() else { return };
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut leader.deferred)
            .into_iter()
            .partition(|(after, _, _)| *after <= last_committed);
        leader.deferred = later;
        for (_, to, payload) in ready {
            self.send(to, Message::App(payload));
        }
    }

    /// A txn commits once a quorum holds it durably — of the active config and, while
    /// a reconfig is in flight, of every proposed config as well (so no two quorums of
    /// different configs can decide differently).
    fn commit_quorum(&self, zxid: Zxid, holders: &BTreeSet<Sid>) -> bool {
        self.membership.verifier.contains_quorum(holders)
            && self
                .pending_configs
                .range(..=zxid)
                .all(|(_, config)| config.verifier.contains_quorum(holders))
    }

    /// Whether a proposed config is not active yet (ZooKeeper: the last seen config is
    /// not the active one).
    pub fn reconfig_in_flight(&self) -> bool {
        !self.pending_configs.is_empty()
    }

    /// Whether a reconfig to `config` could be proposed now: this server leads, no
    /// other reconfig is in flight, and the new config's synced voters are a quorum.
    /// Changes nothing; [`Zab::propose_reconfig`] checks the same.
    pub fn check_reconfig(&self, config: &Membership) -> Result<(), ReconfigError> {
        if self.role != Role::Leader {
            return Err(ReconfigError::NotLeader);
        }
        if self.reconfig_in_flight() {
            return Err(ReconfigError::InProgress);
        }
        let State::Leading(leader) = &self.state else {
            return Err(ReconfigError::NotLeader);
        };
        let mut synced: BTreeSet<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced)
            .map(|(s, _)| *s)
            .collect();
        synced.insert(self.me);
        if !config.verifier.contains_quorum(&synced) {
            return Err(ReconfigError::NoQuorum);
        }
        Ok(())
    }

    /// Proposes a reconfig txn that activates `config` when it commits. Refused while
    /// another is in flight, or when the new config's synced voters are no quorum.
    pub fn propose_reconfig(
        &mut self,
        config: Membership,
        make: impl FnOnce(Zxid) -> Vec<u8>,
    ) -> Result<Zxid, ReconfigError> {
        self.check_reconfig(&config)?;
        let State::Leading(leader) = &self.state else {
            return Err(ReconfigError::NotLeader);
        };
        let receivers: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| matches!(l.stage, Stage::Syncing | Stage::Synced))
            .map(|(s, _)| *s)
            .collect();
        let zxid = self
            .leader_propose_config(make, Some(config))
            .map_err(ReconfigError::Propose)?;
        // Observers get no PROPOSAL; one promoted by this config must start ACKing now.
        if let Some(config) = self.pending_configs.get(&zxid).cloned() {
            for sid in receivers {
                self.send(
                    sid,
                    Message::Config {
                        zxid,
                        config: config.clone(),
                    },
                );
            }
        }
        Ok(zxid)
    }

    pub(super) fn leader_propose(
        &mut self,
        make: impl FnOnce(Zxid) -> Vec<u8>,
    ) -> Result<Zxid, ProposeError> {
        self.leader_propose_config(make, None)
    }

    /// Proposes a txn; a reconfig passes the config it activates (its version becomes
    /// the txn's zxid), which travels inside the PROPOSAL.
    fn leader_propose_config(
        &mut self,
        make: impl FnOnce(Zxid) -> Vec<u8>,
        config: Option<Membership>,
    ) -> Result<Zxid, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader);
        }
        let Some(leader) = self.leader() else {
            return Err(ProposeError::NotLeader);
        };
        if leader.transfer.is_some() {
            return Err(ProposeError::Transferring);
        }
        if leader.next_counter >= COUNTER_LIMIT {
            tracing::warn!("zxid counter exhausted; starting a new epoch");
            self.start_looking();
            return Err(ProposeError::EpochExhausted);
        }
        let zxid = make_zxid(leader.epoch, leader.next_counter);
        leader.next_counter += 1;
        let receivers: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| !l.observer && matches!(l.stage, Stage::Syncing | Stage::Synced))
            .map(|(s, _)| *s)
            .collect();
        let payload = Bytes::from(make(zxid));
        let config = config.map(|c| Membership { version: zxid, ..c });
        if let Some(c) = &config {
            self.pending_configs.insert(zxid, c.clone());
        }
        self.pending.insert(zxid, payload.clone());
        self.append(zxid, payload.clone());
        for sid in receivers {
            self.send(
                sid,
                Message::Proposal {
                    zxid,
                    payload: payload.clone(),
                    config: config.clone(),
                },
            );
        }
        Ok(zxid)
    }

    pub(super) fn leader_send_app(&mut self, to: Sid, payload: Vec<u8>, after_commits: bool) {
        let last_logged = self.last_logged;
        let nothing_pending = self.pending.is_empty();
        let Some(leader) = self.leader() else { return };
        if after_commits && !nothing_pending {
            leader.deferred.push((last_logged, to, payload));
        } else {
            self.send(to, Message::App(payload));
        }
    }

    /// Hands leadership to `to` (or the most caught-up synced voter): new proposals stop,
    /// and once the target holds everything and it is committed, every server is told to
    /// vote for it. Costs a short write pause instead of an election timeout.
    pub fn transfer_leadership(&mut self, to: Option<Sid>) -> Result<Sid, TransferError> {
        let target = self.begin_transfer(to)?;
        self.leader_try_transfer();
        Ok(target)
    }

    /// Picks the handoff target and stops new proposals; [`Self::leader_try_transfer`]
    /// completes the handoff.
    fn begin_transfer(&mut self, to: Option<Sid>) -> Result<Sid, TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader);
        }
        let now = self.now;
        let me = self.me;
        let candidates: Vec<(Sid, Zxid)> = match &self.state {
            State::Leading(l) => l
                .learners
                .iter()
                .filter(|(s, link)| {
                    link.stage == Stage::Synced && !link.observer && self.is_voter(**s) && **s != me
                })
                .map(|(s, link)| (*s, link.acked))
                .collect(),
            _ => return Err(TransferError::NotLeader),
        };
        let target = match to {
            Some(t) if candidates.iter().any(|(s, _)| *s == t) => t,
            Some(t) => return Err(TransferError::NotEligible(t)),
            None => candidates
                .iter()
                .max_by_key(|(s, acked)| (*acked, std::cmp::Reverse(*s)))
                .map(|(s, _)| *s)
                .ok_or(TransferError::NoSyncedFollower)?,
        };
        let Some(leader) = self.leader() else {
            return Err(TransferError::NotLeader);
        };
        if leader.transfer.is_some() {
            return Err(TransferError::InProgress);
        }
        leader.transfer = Some((target, now));
        tracing::info!(me, to = target, "handing off leadership");
        Ok(target)
    }

    /// Completes a handoff once the target holds and everyone committed all we proposed.
    fn leader_try_transfer(&mut self) {
        let (last_logged, epoch) = (self.last_logged, self.current_epoch);
        let nothing_pending = self.pending.is_empty();
        let State::Leading(leader) = &self.state else {
            return;
        };
        let Some((target, _)) = leader.transfer else {
            return;
        };
        let caught_up = leader
            .learners
            .get(&target)
            .is_some_and(|l| l.acked >= last_logged);
        if !(caught_up && nothing_pending) {
            return;
        }
        // Every learner hears of it, observers and non-members (joiners, removed
        // servers) too: otherwise they would forward to us until syncLimit told them.
        let mut peers: BTreeSet<Sid> = self.membership.peers(self.me).collect();
        peers.extend(leader.learners.keys().copied());
        peers.remove(&self.me);
        for p in peers {
            self.send(
                p,
                Message::Transfer {
                    to: target,
                    zxid: last_logged,
                    epoch,
                },
            );
        }
        self.elect_forced(target, last_logged, epoch);
    }

    /// The leader was removed from the config (or made an observer): hand off if a
    /// synced voter exists, else step down.
    pub(super) fn leader_removed(&mut self) {
        tracing::info!(
            me = self.me,
            "removed from the voting members; stepping down"
        );
        if let Some(leader) = self.leader() {
            leader.transfer = None;
        }
        // The removed leader is no voter any more: pick any synced voter. The handoff
        // completes after the reconfig's COMMIT went out (the callers of commit_through
        // try it next), so that learners apply the reconfig, and answer the client that
        // asked for it, before they hear of the handoff. (begin_transfer checks
        // role == Leader, which still holds here.)
        if self.begin_transfer(None).is_err() {
            self.start_looking();
        }
    }

    pub(super) fn leader_tick(&mut self) {
        let me = self.me;
        let (now_t, limit) = (self.now, self.timing.sync_limit_ms);
        if let Some(leader) = self.leader()
            && let Some((target, since)) = leader.transfer
            && now_t.saturating_sub(since) > limit
        {
            tracing::warn!(
                me,
                to = target,
                "leadership handoff timed out; keeping leadership"
            );
            leader.transfer = None;
            if !self.is_voter(me) {
                self.start_looking();
                return;
            }
        }
        self.leader_try_transfer();
        let (now, timing) = (self.now, self.timing);
        let Some(leader) = self.leader() else { return };
        if leader.phase != Phase::Broadcast {
            if now.saturating_sub(leader.started) > timing.init_limit_ms {
                tracing::info!(me, "no quorum joined in time (initLimit); re-electing");
                self.stand_down();
                self.start_looking();
            }
            return;
        }
        if now.saturating_sub(leader.last_ping) >= timing.ping_ms {
            leader.last_ping = now;
            let all: Vec<Sid> = leader.learners.keys().copied().collect();
            for sid in all {
                self.send(sid, Message::Ping);
            }
        }
        let Some(leader) = self.leader() else { return };
        // A voter still syncing with us counts until initLimit after its FOLLOWERINFO,
        // as a ZooKeeper LearnerHandler does while its sync is in progress: when a
        // server that was in our establishing quorum leaves (a stopping old leader right
        // after a handoff) while another is still syncing, stepping down would turn a
        // handoff into an election. Commits still need the ACKs of synced voters.
        let mut alive: BTreeSet<Sid> = leader
            .learners
            .iter()
            .filter(|(_, l)| {
                let heard = if l.stage == Stage::Synced {
                    now.saturating_sub(l.last_heard) <= timing.sync_limit_ms
                } else {
                    now.saturating_sub(l.hello_at) <= timing.init_limit_ms
                };
                !l.observer && heard
            })
            .map(|(s, _)| *s)
            .collect();
        alive.insert(me);
        if !self.membership.verifier.contains_quorum(&alive) {
            tracing::warn!(me, "lost the quorum (syncLimit); stepping down");
            self.start_looking();
        }
    }

    /// The epoch of the current leadership (0 before discovery chose one).
    pub fn leader_epoch(&self) -> Option<i64> {
        match &self.state {
            State::Leading(l) if l.phase != Phase::Discovery => Some(l.epoch),
            _ => None,
        }
    }

    /// (learner, last durable zxid it acked, synced) for `/status`.
    pub fn learner_report(&self) -> Vec<(Sid, Zxid, bool, bool)> {
        match &self.state {
            State::Leading(l) => l
                .learners
                .iter()
                .map(|(s, link)| (*s, link.acked, link.stage == Stage::Synced, link.observer))
                .collect(),
            _ => vec![],
        }
    }
}
