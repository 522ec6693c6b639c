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
    /// Voters whose last notification said they stand (hear a quorum).
    standing: BTreeSet<Sid>,
    /// Whether the last notification this server sent said it stands.
    stood: bool,
    /// Until when this server does not stand, after failing to gather a quorum of
    /// followers as leader-elect (see `stand_down`).
    stand_down_until: u64,
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
            stands: self.stands(),
        };
        self.send(peer, Message::Vote(n));
    }

    fn broadcast_vote(&mut self) {
        self.election.last_broadcast = self.now;
        self.election.stood = self.stands();
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
        // Peers learn at once when this server starts or stops standing.
        if self.now.saturating_sub(self.election.last_broadcast) >= self.timing.vote_resend_ms
            || self.election.stood != self.stands()
        {
            self.broadcast_vote();
        }
        self.reconsider_vote();
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

    /// A leader-elect whose quorum never joined steps aside for one round (initLimit):
    /// hearing a quorum is not being able to lead it, since servers ahead of it refuse
    /// to follow (a ring whose killed leader left its neighbours ahead of the rest).
    /// Without this, the same best-ranked server is elected again and again while
    /// another, whose quorum is not ahead of it, is never tried.
    pub(super) fn stand_down(&mut self) {
        self.election.stand_down_until = self.now + self.timing.init_limit_ms;
    }

    /// Whether this server may lead: a voter that hears a quorum of voters (and has not
    /// just stood down).
    fn stands(&self) -> bool {
        if self.now < self.election.stand_down_until {
            return false;
        }
        let heard: BTreeSet<Sid> = self
            .membership
            .verifier
            .voters()
            .iter()
            .copied()
            .filter(|v| self.reachable(*v))
            .collect();
        self.is_voter(self.me) && self.membership.verifier.contains_quorum(&heard)
    }

    /// A vote this server may adopt: for itself when it stands, or for a voter that
    /// stands and that it hears itself. Adopting a vote for a server out of its own reach
    /// (heard of only through others), or for one that cannot reach a quorum, is what
    /// kept a "majorities ring" leaderless: each server saw a quorum for the best id and
    /// followed a leader it could not connect to, while the servers that could have led
    /// (each still with a majority of neighbours) never gathered a quorum.
    fn is_candidate(&self, v: &Vote) -> bool {
        if v.leader == self.me {
            return self.stands();
        }
        self.is_voter(v.leader)
            && self.reachable(v.leader)
            && self.election.standing.contains(&v.leader)
    }

    /// The best vote this server may hold now: its own, or one of the current round's
    /// for a candidate that stands and that it hears.
    fn best_candidate_vote(&self) -> Option<Vote> {
        self.election
            .received
            .values()
            .copied()
            .chain(self.own_vote())
            .filter(|v| self.is_candidate(v))
            .reduce(|best, v| if v.beats(&best) { v } else { best })
    }

    /// Of `a` and `b`, the vote to hold: a candidate over one that is not, then the
    /// better one.
    fn preferred(&self, a: Vote, b: Vote) -> Vote {
        match (self.is_candidate(&a), self.is_candidate(&b)) {
            (false, true) => b,
            (true, true) if b.beats(&a) => b,
            _ => a,
        }
    }

    /// Moves this server's vote when its candidate stopped being one (out of reach, or
    /// no longer standing), or a better candidate came into reach, so that support goes
    /// where a leader can come from. With no candidate at all it votes for itself, and
    /// says it does not stand.
    fn reconsider_vote(&mut self) {
        let Some(vote) = self.election.vote else {
            return;
        };
        if self.forced_vote().is_some() {
            return;
        }
        let best = self.best_candidate_vote();
        let next = match best {
            Some(best) if !self.is_candidate(&vote) || best.beats(&vote) => best,
            Some(_) => return,
            None if vote.leader == self.me => return,
            None => match self.own_vote() {
                Some(own) => own,
                None => return,
            },
        };
        if next == vote {
            return;
        }
        tracing::debug!(
            me = self.me,
            from = vote.leader,
            to = next.leader,
            "moving the vote to a candidate in reach"
        );
        self.election.vote = Some(next);
        self.election.quorum_since = None;
        self.election.received.insert(self.me, next);
        self.broadcast_vote();
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
        if self.is_voter(from) {
            if n.stands {
                self.election.standing.insert(from);
            } else {
                self.election.standing.remove(&from);
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
                        Some(own) => Some(self.preferred(own, n.vote)),
                        None if self.is_candidate(&n.vote) => Some(n.vote),
                        None => None,
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
                    && self
                        .election
                        .vote
                        .is_none_or(|mine| mine != n.vote && self.preferred(mine, n.vote) == n.vote)
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
        if vote.leader != self.me && self.forced_vote().is_none() && !self.reachable(vote.leader) {
            // A quorum agrees on a server this one cannot reach: following it would only
            // time out. The tick moves this vote to a candidate in reach. (A handoff's
            // target is followed all the same: it may be about to come back and find a
            // quorum waiting for it, and the handoff's deadline bounds the wait.)
            self.election.quorum_since = None;
            return;
        }
        // Only votes of servers heard now: one from a server that went out of reach since
        // cannot make it follow.
        let support: BTreeSet<Sid> = self
            .election
            .received
            .iter()
            .filter(|(s, v)| **v == vote && self.reachable(**s))
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
        let backed = candidates.into_iter().find(|leader| {
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
        });
        backed.or_else(|| self.leader_in_reach())
    }

    /// A server that says it leads, that this one hears, and that is not behind it.
    /// Its followers may be out of this server's sight (a non-transitive partition), so
    /// no quorum of them can be seen here; joining is still safe, since a leader only
    /// establishes with a quorum of followers that are not ahead of it (the leader
    /// re-elects when one is), so it holds every committed txn; and it is what lets a
    /// leader whose quorum spans servers that do not hear each other form at all.
    fn leader_in_reach(&self) -> Option<Sid> {
        let mine = (self.current_epoch, self.last_logged);
        self.election
            .settled
            .iter()
            .filter(|(sid, (v, s))| {
                *s == PeerState::Leading
                    && v.leader == **sid
                    && (v.epoch, v.zxid) >= mine
                    && self.reachable(**sid)
            })
            .map(|(sid, _)| *sid)
            .max()
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
