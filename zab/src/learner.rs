//! A follower or observer: FOLLOWERINFO → LEADERINFO (persist acceptedEpoch) → ACKEPOCH
//! → sync (DIFF / TRUNC / SNAP, proposals and commits) → NEWLEADER (wait until every
//! synced txn is durable, persist currentEpoch, then ACK) → UPTODATE → broadcast.

use super::message::Message;
use super::{Output, Role, Sid, State, Zab, Zxid, counter_of, epoch_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// FOLLOWERINFO sent; waits for LEADERINFO.
    Hello,
    /// ACKEPOCH sent; receiving sync data.
    Syncing,
    /// NEWLEADER received; waits for the synced txns to be durable before ACKing it.
    /// `synced_to` is what the sync covered (our log when NEWLEADER arrived): the
    /// leader credits the NEWLEADER ACK with exactly that much.
    NewLeaderPending {
        zxid: Zxid,
        synced_to: Zxid,
    },
    /// NEWLEADER ACKed; waits for UPTODATE.
    Synced,
    Broadcast,
}

#[derive(Debug)]
pub(super) struct Learner {
    pub(super) leader: Sid,
    observer: bool,
    stage: Stage,
    new_epoch: i64,
    started: u64,
    last_heard: u64,
    /// Highest zxid ACKed to the leader.
    acked: Zxid,
}

impl Learner {
    pub(super) fn is_observer(&self) -> bool {
        self.observer
    }

    pub(super) fn new(leader: Sid, observer: bool, now: u64) -> Learner {
        Learner {
            leader,
            observer,
            stage: Stage::Hello,
            new_epoch: 0,
            started: now,
            last_heard: now,
            acked: 0,
        }
    }
}

impl Zab {
    fn learner(&mut self) -> Option<&mut Learner> {
        match &mut self.state {
            State::Learning(l) => Some(l),
            _ => None,
        }
    }

    /// (Re)sends FOLLOWERINFO while waiting for the leader to answer.
    pub(super) fn learner_hello(&mut self) {
        let (accepted_epoch, last_zxid) = (self.accepted_epoch, self.last_logged);
        let Some(l) = self.learner() else { return };
        if l.stage != Stage::Hello {
            return;
        }
        let (leader, observer) = (l.leader, l.observer);
        self.send(
            leader,
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            },
        );
    }

    /// A proposal must extend the log by exactly one: the next counter in the same epoch,
    /// or counter 1 of a later epoch. Anything else means a lost or reordered message.
    fn continues_log(&self, zxid: Zxid) -> bool {
        let last = self.last_logged;
        if zxid <= last {
            return false;
        }
        if epoch_of(zxid) == epoch_of(last) {
            counter_of(zxid) == counter_of(last) + 1
        } else {
            counter_of(zxid) == 1
        }
    }

    fn learner_fail(&mut self, why: &str) {
        tracing::warn!(me = self.me, why, "dropping the leader");
        self.start_looking();
    }

    pub(super) fn learner_on_message(&mut self, from: Sid, msg: Message) {
        let now = self.now;
        let Some(l) = self.learner() else { return };
        if from != l.leader {
            return;
        }
        l.last_heard = now;
        // Until the leader answers this handshake, whatever arrives belongs to the
        // stream of an earlier one (the link outlived it) and must not be applied.
        if l.stage == Stage::Hello && !matches!(msg, Message::LeaderInfo { .. } | Message::Ping) {
            return;
        }
        match msg {
            Message::LeaderInfo { epoch } => {
                // Only the first answer to this handshake counts: a re-sent FOLLOWERINFO
                // may draw a second LEADERINFO, and a second ACKEPOCH would make the
                // leader sync us again, cutting back what we already committed.
                if l.stage != Stage::Hello {
                    return;
                }
                if epoch < self.accepted_epoch {
                    self.learner_fail("the leader's epoch is older than one we accepted");
                    return;
                }
                if epoch > self.accepted_epoch {
                    self.accepted_epoch = epoch;
                    self.persist_epochs();
                }
                let (current_epoch, last_zxid) = (self.current_epoch, self.last_logged);
                let Some(l) = self.learner() else { return };
                l.new_epoch = epoch;
                l.stage = Stage::Syncing;
                self.send(
                    from,
                    Message::AckEpoch {
                        current_epoch,
                        last_zxid,
                    },
                );
            }
            Message::Diff { .. } => {}
            Message::Trunc { zxid } => {
                if zxid < self.last_committed {
                    // A committed txn is in every later leader's log: never cut.
                    self.learner_fail("TRUNC below our last commit");
                    return;
                }
                self.pending.retain(|z, _| *z <= zxid);
                self.pending_configs.retain(|z, _| *z <= zxid);
                self.last_logged = zxid;
                self.reset_log(zxid, Output::Truncate { zxid });
            }
            Message::Snap { zxid, payload } => {
                self.pending.clear();
                self.pending_configs.clear();
                self.history.clear();
                self.history_bytes = 0;
                self.last_logged = zxid;
                self.last_committed = zxid;
                self.reset_log(zxid, Output::InstallSnapshot { zxid, payload });
            }
            Message::Proposal {
                zxid,
                payload,
                config,
            } => {
                if !self.continues_log(zxid) {
                    self.learner_fail("discontinuous proposal");
                    return;
                }
                self.pending.insert(zxid, payload.clone());
                self.append(zxid, payload);
                if let Some(config) = config {
                    self.learn_pending_config(zxid, config);
                }
            }
            Message::Commit { zxid } => {
                if zxid > self.last_logged {
                    self.learner_fail("commit of a txn we never received");
                    return;
                }
                self.commit_pending_through(zxid);
            }
            Message::Inform {
                zxid,
                payload,
                config,
            } => {
                if zxid <= self.last_committed {
                    return;
                }
                if !self.continues_log(zxid) {
                    self.learner_fail("discontinuous inform");
                    return;
                }
                // Commits are in order: whatever we kept from before is committed too.
                self.commit_pending_through(zxid);
                if let Some(config) = config {
                    self.pending_configs.insert(zxid, config);
                }
                self.append(zxid, payload.clone());
                self.commit(zxid, payload);
            }
            Message::NewLeader { zxid } => {
                let synced_to = self.last_logged;
                let Some(l) = self.learner() else { return };
                l.stage = Stage::NewLeaderPending { zxid, synced_to };
                self.learner_on_durable();
            }
            Message::UpToDate => {
                let Some(l) = self.learner() else { return };
                l.stage = Stage::Broadcast;
                let (leader, observer) = (l.leader, l.observer);
                self.set_role(if observer {
                    Role::Observer {
                        leader,
                        synced: true,
                    }
                } else {
                    Role::Follower {
                        leader,
                        synced: true,
                    }
                });
                self.learner_on_durable();
            }
            Message::Ping => self.send(from, Message::Ping),
            Message::Config { zxid, config } => {
                if zxid == 0 {
                    // The leader's active config, at the start of a sync.
                    self.activate_from_leader(config);
                } else if zxid <= self.last_committed {
                    // Already past it: the active config we hold (or get at the next
                    // sync) accounts for it.
                } else {
                    self.learn_pending_config(zxid, config);
                }
            }
            Message::Transfer { to, zxid, epoch } => {
                tracing::info!(me = self.me, from, to, "the leader hands off");
                self.elect_forced(to, zxid, epoch);
            }
            _ => {}
        }
    }

    /// A reconfig we logged: its config activates at its commit.
    fn learn_pending_config(&mut self, zxid: Zxid, config: super::Membership) {
        self.pending_configs.insert(zxid, config);
        // Promoted by a pending reconfig: its commit needs our ACK, which observers
        // never send. Rejoin as a follower now.
        if self.learner().is_some_and(|l| l.is_observer()) && self.must_follow() {
            self.start_looking();
        }
    }

    fn activate_from_leader(&mut self, config: super::Membership) {
        self.activate(config);
    }

    /// Commits, in order, every pending txn up to `zxid`.
    fn commit_pending_through(&mut self, zxid: Zxid) {
        while let Some(first) = self.pending.first_entry()
            && *first.key() <= zxid
        {
            let (z, p) = first.remove_entry();
            self.commit(z, p);
        }
    }

    /// ACKs what became durable: NEWLEADER once every synced txn is on disk (after the
    /// new currentEpoch is persisted), then proposals.
    pub(super) fn learner_on_durable(&mut self) {
        // A TRUNC or SNAP not yet done on disk: the log is not yet the history it acks.
        if self.log_resets_in_flight > 0 {
            return;
        }
        let (durable, logged) = (self.last_durable, self.last_logged);
        let Some(l) = self.learner() else { return };
        match l.stage {
            Stage::NewLeaderPending { zxid, synced_to } if durable >= logged => {
                let (leader, new_epoch, observer) = (l.leader, l.new_epoch, l.observer);
                l.stage = Stage::Synced;
                // The NEWLEADER ACK covers only the sync. Proposals that arrived after
                // NEWLEADER are durable now too, but the leader learns that only from
                // an ACK of their own: without it they would wait for the next proposal.
                l.acked = synced_to;
                self.current_epoch = new_epoch;
                self.persist_epochs();
                self.send(leader, Message::Ack { zxid });
                if !observer && durable > synced_to {
                    if let Some(l) = self.learner() {
                        l.acked = durable;
                    }
                    self.send(leader, Message::Ack { zxid: durable });
                }
            }
            Stage::Synced | Stage::Broadcast if !l.observer && durable > l.acked => {
                l.acked = durable;
                let leader = l.leader;
                self.send(leader, Message::Ack { zxid: durable });
            }
            _ => {}
        }
    }

    pub(super) fn learner_tick(&mut self) {
        let (now, timing) = (self.now, self.timing);
        let Some(l) = self.learner() else { return };
        let expired = match l.stage {
            Stage::Broadcast => now.saturating_sub(l.last_heard) > timing.sync_limit_ms,
            _ => now.saturating_sub(l.started) > timing.init_limit_ms,
        };
        let hello =
            l.stage == Stage::Hello && now.saturating_sub(l.last_heard) >= timing.hello_resend_ms;
        if expired {
            self.learner_fail("the leader went silent");
        } else if hello {
            if let Some(l) = self.learner() {
                l.last_heard = now;
            }
            self.learner_hello();
        }
    }
}
