//! Fast leader election (ZooKeeper's FastLeaderElection, simplified but with the same
//! decisions): looking servers exchange votes for (epoch, last zxid, id); a server adopts
//! any better vote it hears; once a quorum shares its vote and no better vote arrived for
//! `finalize_wait_ms`, it decides. Servers already following or leading answer looking
//! ones with their settled vote, so a restarted server joins the current leader.

use std::collections::{BTreeMap, BTreeSet};

use super::leader::Leader;
use super::learner::Learner;
use super::message::{Message, Notification, PeerState, Vote};
use super::{Role, Sid, State, Zab};

#[derive(Debug, Default)]
pub(super) struct Election {
    pub(super) round: u64,
    vote: Option<Vote>,
    /// Votes of looking peers in the current round.
    received: BTreeMap<Sid, Vote>,
    /// Votes of peers that already follow or lead, with their state.
    settled: BTreeMap<Sid, (Vote, PeerState)>,
    /// When the current vote first had a quorum.
    quorum_since: Option<u64>,
    last_broadcast: u64,
    /// A leadership handoff: vote for this (and nothing better) until the deadline.
    forced: Option<(Vote, u64)>,
}

impl Zab {
    fn own_vote(&self) -> Option<Vote> {
        // Observers never stand for election.
        self.is_voter(self.me).then_some(Vote {
            leader: self.me,
            zxid: self.last_logged,
            epoch: self.current_epoch,
        })
    }

    /// The vote this server reports to others.
    fn current_vote(&self) -> Vote {
        match self.role.leader(self.me) {
            Some(leader) => Vote {
                leader,
                zxid: self.last_logged,
                epoch: self.current_epoch,
            },
            None => self.election.vote.unwrap_or(Vote {
                leader: self.me,
                zxid: self.last_logged,
                epoch: self.current_epoch,
            }),
        }
    }

    fn peer_state(&self) -> PeerState {
        match self.role {
            Role::Looking => PeerState::Looking,
            Role::Leader | Role::LeaderElect => PeerState::Leading,
            Role::Follower { .. } => PeerState::Following,
            Role::Observer { .. } => PeerState::Observing,
        }
    }

    pub(super) fn send_vote_to(&mut self, peer: Sid) {
        let n = Notification {
            vote: self.current_vote(),
            round: self.election.round,
            state: self.peer_state(),
            config: self.membership.clone(),
        };
        self.send(peer, Message::Vote(n));
    }

    fn broadcast_vote(&mut self) {
        self.election.last_broadcast = self.now;
        let peers: Vec<Sid> = self.membership.peers(self.me).collect();
        for p in peers {
            self.send_vote_to(p);
        }
    }

    /// Starts an election in which everyone votes for the handoff target.
    pub(super) fn elect_forced(&mut self, to: Sid, zxid: super::Zxid, epoch: i64) {
        let deadline = self.now + self.timing.sync_limit_ms;
        self.election.forced = Some((
            Vote {
                leader: to,
                zxid,
                epoch,
            },
            deadline,
        ));
        self.start_looking();
    }

    fn forced_vote(&self) -> Option<Vote> {
        self.election
            .forced
            .filter(|(_, until)| self.now <= *until)
            .map(|(v, _)| v)
            .filter(|v| self.is_voter(v.leader))
    }

    pub(super) fn begin_election(&mut self) {
        self.election.round += 1;
        self.election.vote = self.forced_vote().or_else(|| self.own_vote());
        self.election.received.clear();
        self.election.settled.clear();
        self.election.quorum_since = None;
        if let Some(v) = self.election.vote {
            self.election.received.insert(self.me, v);
        }
        self.broadcast_vote();
        self.check_decision();
    }

    pub(super) fn election_tick(&mut self) {
        if let Some((_, until)) = self.election.forced
            && self.now > until
        {
            // The handoff target never took over: fall back to a normal election.
            self.election.forced = None;
            self.election.vote = self.own_vote();
            self.election.received.clear();
            if let Some(v) = self.election.vote {
                self.election.received.insert(self.me, v);
            }
            self.broadcast_vote();
        }
        if self.now.saturating_sub(self.election.last_broadcast) >= self.timing.vote_resend_ms {
            self.broadcast_vote();
        }
        self.check_decision();
    }

    /// During a handoff, the target's own vote for itself replaces the one the handoff
    /// announced: the outgoing leader named the target with the (epoch, zxid) it knew,
    /// and the target may have logged more since, or moved to a new epoch by leading
    /// briefly. Votes only count when they are equal, so without this the servers that
    /// vote for the target as announced never agree with the target's own vote until
    /// the handoff's deadline (syncLimit) ends it.
    fn follow_forced_target(&mut self, from: Sid, vote: Vote) {
        let Some((forced, until)) = self.election.forced else {
            return;
        };
        if from != forced.leader || vote.leader != from || vote == forced || self.now > until {
            return;
        }
        self.election.forced = Some((vote, until));
        if self.election.vote == Some(forced) {
            self.election.vote = Some(vote);
            self.election.quorum_since = None;
            self.election.received.insert(self.me, vote);
            self.broadcast_vote();
        }
    }

    fn is_candidate(&self, v: &Vote) -> bool {
        self.is_voter(v.leader)
    }

    pub(super) fn on_vote(&mut self, from: Sid, n: Notification) {
        // Configs are only ever activated once committed, so a newer one is safe to adopt;
        // without it this server might wait for votes of servers that left.
        if n.config.version > self.membership.version {
            tracing::info!(
                me = self.me,
                from,
                version = format_args!("{:#x}", n.config.version),
                "adopting a newer config from a peer"
            );
            self.activate(n.config.clone());
            if matches!(self.state, State::Looking) {
                self.begin_election();
            }
        }
        if !matches!(self.state, State::Looking) {
            if n.state == PeerState::Looking {
                self.send_vote_to(from);
            }
            return;
        }
        match n.state {
            // A looking server that does not vote here (an observer, a joiner, a removed
            // server) cannot change the election: its round must not restart ours (it
            // would clear the votes a handoff's target is collecting, as often as it
            // restarts its own search), and its vote counts for nothing. It only needs
            // to hear ours, as ZooKeeper's FastLeaderElection answers non-voters.
            PeerState::Looking if !self.is_voter(from) => {
                if self.is_voter(self.me) {
                    self.send_vote_to(from);
                }
                return;
            }
            PeerState::Looking => {
                self.follow_forced_target(from, n.vote);
                if n.round > self.election.round {
                    self.election.round = n.round;
                    self.election.received.clear();
                    self.election.quorum_since = None;
                    let own = self.forced_vote().or_else(|| self.own_vote());
                    self.election.vote = match own {
                        Some(forced) if self.election.forced.is_some() => Some(forced),
                        Some(own) if !(self.is_candidate(&n.vote) && n.vote.beats(&own)) => {
                            Some(own)
                        }
                        _ if self.is_candidate(&n.vote) => Some(n.vote),
                        _ => own,
                    };
                    if let Some(v) = self.election.vote {
                        self.election.received.insert(self.me, v);
                    }
                    self.broadcast_vote();
                } else if n.round < self.election.round {
                    // The sender is behind: tell it where we are (a non-voter's word does
                    // not count, so it does not answer back: no endless exchange).
                    if self.is_voter(self.me) {
                        self.send_vote_to(from);
                    }
                    return;
                } else if self.election.forced.is_none()
                    && self.is_candidate(&n.vote)
                    && self.election.vote.is_none_or(|mine| n.vote.beats(&mine))
                {
                    self.election.vote = Some(n.vote);
                    self.election.quorum_since = None;
                    self.election.received.insert(self.me, n.vote);
                    self.broadcast_vote();
                }
                if self.is_voter(from) {
                    self.election.received.insert(from, n.vote);
                }
            }
            state => {
                self.election.settled.insert(from, (n.vote, state));
            }
        }
        self.check_decision();
    }

    /// Decides when the evidence allows: a settled leader backed by a quorum, or our own
    /// vote backed by a quorum for long enough (or by every voter).
    fn check_decision(&mut self) {
        if let Some(leader) = self.settled_leader() {
            self.decide(leader);
            return;
        }
        let Some(vote) = self.election.vote else {
            return;
        };
        let support: BTreeSet<Sid> = self
            .election
            .received
            .iter()
            .filter(|(_, v)| **v == vote)
            .map(|(s, _)| *s)
            .collect();
        if !self.membership.verifier.contains_quorum(&support) {
            self.election.quorum_since = None;
            return;
        }
        let since = *self.election.quorum_since.get_or_insert(self.now);
        let everyone = self
            .membership
            .verifier
            .voters()
            .iter()
            .all(|v| support.contains(v));
        if everyone || self.now.saturating_sub(since) >= self.timing.finalize_wait_ms {
            self.decide(vote.leader);
        }
    }

    /// A leader that a quorum of settled peers follows: one that says it leads, or this
    /// server itself. The latter is ZooKeeper's checkLeader for out-of-election votes: a
    /// handoff's target (or any winner) that missed the end of its own election finds a
    /// quorum already following it and must take over, or they wait for it until
    /// initLimit and the handoff turns into an election.
    fn settled_leader(&self) -> Option<Sid> {
        let mut candidates: Vec<Sid> = self
            .election
            .settled
            .iter()
            .filter(|(sid, (v, s))| *s == PeerState::Leading && v.leader == **sid)
            .map(|(sid, _)| *sid)
            .collect();
        // Followers report their own (epoch, last zxid): leading one that is ahead of us
        // would only end in "a follower is ahead of the leader" and a new election.
        let mine = (self.current_epoch, self.last_logged);
        let behind_a_follower = self.election.settled.values().any(|(v, s)| {
            v.leader == self.me && *s != PeerState::Looking && (v.epoch, v.zxid) > mine
        });
        if self.is_voter(self.me) && !behind_a_follower {
            candidates.push(self.me);
        }
        candidates.into_iter().find(|leader| {
            let mut support: BTreeSet<Sid> = self
                .election
                .settled
                .iter()
                .filter(|(_, (v, s))| v.leader == *leader && *s != PeerState::Looking)
                .map(|(sid, _)| *sid)
                .collect();
            // Our own vote counts once we would follow it.
            support.insert(self.me);
            self.membership.verifier.contains_quorum(&support)
        })
    }

    fn decide(&mut self, leader: Sid) {
        self.election.quorum_since = None;
        self.election.forced = None;
        if leader == self.me {
            tracing::info!(me = self.me, round = self.election.round, "elected leader");
            self.state = State::Leading(Box::new(Leader::new(self.now)));
            self.set_role(Role::LeaderElect);
            self.leader_start();
        } else {
            let observer = !self.must_follow();
            tracing::info!(me = self.me, leader, observer, "following");
            self.state = State::Learning(Box::new(Learner::new(leader, observer, self.now)));
            self.set_role(if observer {
                Role::Observer {
                    leader,
                    synced: false,
                }
            } else {
                Role::Follower {
                    leader,
                    synced: false,
                }
            });
            self.learner_hello();
        }
    }
}
