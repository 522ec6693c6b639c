//! Scripted runs of real `Zab` instances: one message at a time, with the test choosing
//! when each server's disk becomes durable and which links exist. Where a simulator
//! found a schedule by chance, these pin one down, so each bug it found stays fixed
//! whatever the simulator's random choices become.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::message::Message;
use super::{
    Bytes, Durable, Epochs, Membership, Output, QuorumVerifier, Ready, Role, Sid, Timing, Zab, Zxid,
};

struct Server {
    zab: Zab,
    /// The last zxid handed to the log, and the last one reported durable.
    logged: Zxid,
    durable: Zxid,
    /// While set, appends stay volatile and TRUNCs and SNAPs wait (a slow disk).
    disk_held: bool,
    /// TRUNCs and SNAPs handed to the disk, done at its next sync.
    resets: u32,
    commits: Vec<Zxid>,
    /// The epochs on disk: those of the last `Ready::PersistEpochs` performed.
    epochs: Epochs,
    /// Every message sent, with the epochs on disk when it left.
    sent: Vec<(Epochs, Sid, Message)>,
}

impl Server {
    /// A fresh server (empty log) starting from `membership`.
    fn new(id: Sid, membership: Membership, now: u64) -> Server {
        let timing = Timing::from_ticks(100, 20, 10);
        Server {
            zab: Zab::new(id, membership, timing, Durable::default(), now),
            logged: 0,
            durable: 0,
            disk_held: false,
            resets: 0,
            commits: Vec::new(),
            epochs: Epochs {
                accepted: 0,
                current: 0,
            },
            sent: Vec::new(),
        }
    }
}

/// A few servers, the links between them, and the messages in flight (FIFO overall,
/// hence FIFO per link, as TCP).
struct Script {
    now: u64,
    servers: BTreeMap<Sid, Server>,
    links: BTreeSet<(Sid, Sid)>,
    queue: VecDeque<(Sid, Sid, Message)>,
    /// Every message delivered, for assertions about what went over the wire.
    delivered: Vec<(Sid, Sid, Message)>,
}

impl Script {
    fn new(voters: &[Sid]) -> Script {
        Script::with_membership(Membership {
            verifier: QuorumVerifier::majority(voters.iter().copied()),
            observers: BTreeSet::new(),
            version: 0,
            addresses: Default::default(),
        })
    }

    /// Every member of `membership` (voters and observers), starting from it.
    fn with_membership(membership: Membership) -> Script {
        let ids: Vec<Sid> = membership.members().collect();
        let servers = ids
            .iter()
            .map(|id| (*id, Server::new(*id, membership.clone(), 0)))
            .collect();
        let mut script = Script {
            now: 0,
            servers,
            links: BTreeSet::new(),
            queue: VecDeque::new(),
            delivered: Vec::new(),
        };
        for id in ids {
            script.drain(id);
        }
        script
    }

    /// Adds server `id`, starting from its own idea of the membership (a stale one, say).
    fn add_server(&mut self, id: Sid, membership: Membership) {
        let server = Server::new(id, membership, self.now);
        self.servers.insert(id, server);
        self.drain(id);
    }

    /// Restarts server `id` with an empty log that has promised `accepted_epoch` (to a
    /// candidate that never established).
    fn restart_having_accepted(&mut self, id: Sid, accepted_epoch: i64) {
        let membership = self.zab(id).membership().clone();
        let durable = Durable {
            accepted_epoch,
            ..Durable::default()
        };
        self.restart_with(id, membership, durable, Vec::new());
    }

    /// Restarts server `id` from `membership` and what its disk holds (`commits` applied).
    fn restart_with(
        &mut self,
        id: Sid,
        membership: Membership,
        durable: Durable,
        commits: Vec<Zxid>,
    ) {
        let timing = Timing::from_ticks(100, 20, 10);
        let server = self.servers.get_mut(&id).unwrap();
        server.logged = durable.last_zxid;
        server.durable = durable.last_zxid;
        server.zab = Zab::new(id, membership, timing, durable, self.now);
        server.commits = commits;
        self.drain(id);
    }

    /// Three voters, all linked, after their first election; the leader.
    fn elected_three() -> (Script, Sid) {
        let mut s = Script::new(&[1, 2, 3]);
        s.connect(1, 2);
        s.connect(1, 3);
        s.connect(2, 3);
        s.run_for(1_000);
        let leader = s.leader().expect("a leader is elected");
        (s, leader)
    }

    fn zab(&mut self, id: Sid) -> &mut Zab {
        &mut self.servers.get_mut(&id).unwrap().zab
    }

    fn connect(&mut self, a: Sid, b: Sid) {
        self.links.insert((a.min(b), a.max(b)));
        let now = self.now;
        self.zab(a).on_connected(now, b);
        self.drain(a);
        self.zab(b).on_connected(now, a);
        self.drain(b);
    }

    /// A link goes down: what was in flight on it is lost.
    fn disconnect(&mut self, a: Sid, b: Sid) {
        let link = (a.min(b), a.max(b));
        self.links.remove(&link);
        self.queue
            .retain(|(from, to, _)| (*from.min(to), *from.max(to)) != link);
        let now = self.now;
        self.zab(a).on_disconnected(now, b);
        self.drain(a);
        self.zab(b).on_disconnected(now, a);
        self.drain(b);
    }

    fn hold_disk(&mut self, id: Sid, held: bool) {
        self.servers.get_mut(&id).unwrap().disk_held = held;
    }

    /// Performs a server's outputs (only what these scripts need: messages, the log,
    /// commits, the epochs), in order; an epochs write is durable at once.
    fn drain(&mut self, id: Sid) {
        while let Some(ready) = self.zab(id).next_ready() {
            match ready {
                Ready::PersistEpochs(epochs) => self.servers.get_mut(&id).unwrap().epochs = epochs,
                Ready::Output(out) => self.perform(id, out),
            }
        }
    }

    fn perform(&mut self, id: Sid, out: Output) {
        let server = self.servers.get_mut(&id).unwrap();
        match out {
            Output::Send { to, msg } => {
                server.sent.push((server.epochs, to, msg.clone()));
                self.queue.push_back((id, to, msg));
            }
            Output::Append { zxid, .. } => server.logged = zxid,
            Output::Truncate { zxid } => {
                server.logged = zxid;
                server.durable = server.durable.min(zxid);
                server.resets += 1;
            }
            Output::Commit { zxid, .. } => server.commits.push(zxid),
            // A snapshot is the list of committed zxids, 8 bytes each.
            Output::SendSnapshot { to } => {
                let zxid = server.commits.last().copied().unwrap_or(0);
                let payload = server
                    .commits
                    .iter()
                    .flat_map(|z| z.to_be_bytes())
                    .collect();
                self.queue
                    .push_back((id, to, Message::Snap { zxid, payload }));
            }
            Output::InstallSnapshot { zxid, payload } => {
                server.commits = payload
                    .chunks_exact(8)
                    .map(|c| Zxid::from_be_bytes(c.try_into().unwrap()))
                    .collect();
                server.logged = zxid;
                server.durable = zxid;
                server.resets += 1;
            }
            _ => {}
        }
    }

    /// Makes every unheld disk durable; whether anything changed.
    fn sync_disks(&mut self) -> bool {
        let ready: Vec<Sid> = self
            .servers
            .iter()
            .filter(|(_, s)| !s.disk_held && (s.durable < s.logged || s.resets > 0))
            .map(|(id, _)| *id)
            .collect();
        let now = self.now;
        for id in &ready {
            let server = self.servers.get_mut(id).unwrap();
            // TRUNCs and SNAPs first, then the records after them, as the disk writer.
            for _ in 0..std::mem::take(&mut server.resets) {
                server.zab.on_log_reset(now);
            }
            server.durable = server.logged;
            let durable = server.durable;
            server.zab.on_durable(now, durable);
            self.drain(*id);
        }
        !ready.is_empty()
    }

    /// Delivers messages (and syncs free disks) until nothing is left to do.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if let Some((from, to, msg)) = self.queue.pop_front() {
                if self.links.contains(&(from.min(to), from.max(to))) {
                    self.delivered.push((from, to, msg.clone()));
                    let now = self.now;
                    self.zab(to).on_message(now, from, msg);
                    self.drain(to);
                }
            } else if !self.sync_disks() {
                return;
            }
        }
        let tail: Vec<String> = self.delivered[self.delivered.len().saturating_sub(12)..]
            .iter()
            .map(|(f, t, m)| format!("{f}->{t} {m:?}"))
            .collect();
        panic!(
            "the script did not settle; last deliveries:\n{}",
            tail.join("\n")
        );
    }

    /// Lets `ms` of time pass in ticks of 10 ms, settling after each.
    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            let ids: Vec<Sid> = self.servers.keys().copied().collect();
            for id in ids {
                let now = self.now;
                self.zab(id).on_tick(now);
                self.drain(id);
            }
            self.settle();
        }
    }

    fn leader(&self) -> Option<Sid> {
        self.servers
            .iter()
            .find(|(_, s)| s.zab.role() == Role::Leader)
            .map(|(id, _)| *id)
    }

    /// Proposes a reconfig to `config` at `leader`; its zxid.
    fn reconfig(&mut self, leader: Sid, config: Membership, payload: &[u8]) -> Zxid {
        let payload = payload.to_vec();
        let zxid = self
            .zab(leader)
            .propose_reconfig(config, move |_| payload)
            .expect("reconfig proposed");
        self.drain(leader);
        zxid
    }

    fn write(&mut self, leader: Sid, value: &str) -> Zxid {
        let value = value.as_bytes().to_vec();
        let zxid = self.zab(leader).propose(move |_| value).unwrap();
        self.drain(leader);
        zxid
    }
}

/// Seed 7580 of `reconfigs_and_handoffs_mixed_with_faults`, reduced: a proposal the
/// leader sends to a follower after NEWLEADER (the follower is still syncing, so it is a
/// receiver) reaches the follower before its sync is durable. The follower's NEWLEADER
/// ACK then waits for that proposal too; it used to record the proposal as ACKed and
/// never ACK it on its own, while the leader credits the NEWLEADER ACK only with what
/// the sync covered. With the other voter unable to ACK, the txn stayed uncommitted
/// until some later proposal's ACK covered it — forever, when a handoff waiting for it
/// refused new proposals.
#[test]
fn a_proposal_sent_after_newleader_is_acked_by_the_syncing_follower() {
    let (mut s, leader) = Script::elected_three();
    let (follower, other) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let first = s.write(leader, "everyone has it");
    s.settle();
    assert!(s.servers[&follower].commits.contains(&first));

    // The follower is away while a write commits, so its sync will carry a DIFF.
    s.disconnect(follower, leader);
    s.disconnect(follower, other);
    let second = s.write(leader, "while the follower is away");
    s.settle();
    assert!(s.servers[&leader].commits.contains(&second));

    // It comes back with a slow disk: the DIFF and NEWLEADER arrive, but it cannot ACK
    // NEWLEADER until the DIFF is durable.
    s.hold_disk(follower, true);
    s.connect(follower, leader);
    s.connect(follower, other);
    s.settle();
    assert!(
        s.delivered
            .iter()
            .any(|(f, t, m)| (*f, *t) == (leader, follower)
                && matches!(m, Message::NewLeader { .. })),
        "the follower got NEWLEADER"
    );
    assert!(matches!(
        s.zab(follower).role(),
        Role::Follower { synced: false, .. }
    ));

    // The other follower's disk stalls, so only the syncing follower's ACK can commit
    // what the leader proposes now (it is sent to the syncing follower too).
    s.hold_disk(other, true);
    let third = s.write(leader, "while the follower syncs");
    s.settle();
    assert!(!s.servers[&leader].commits.contains(&third));

    // The disk catches up: the follower ACKs NEWLEADER and the proposal, which commits
    // without waiting for any later proposal.
    s.hold_disk(follower, false);
    s.settle();
    assert!(
        s.servers[&leader].commits.contains(&third),
        "the proposal sent after NEWLEADER committed; leader commits: {:x?}",
        s.servers[&leader].commits
    );
    assert!(matches!(
        s.zab(follower).role(),
        Role::Follower { synced: true, .. }
    ));
    assert!(s.servers[&follower].commits.contains(&third));
}

/// Seed 55726 of `reconfigs_and_handoffs_mixed_with_faults` (a 60,000-seed soak),
/// reduced: a leader whose voters have accepted a newer epoch (they moved on to a newer
/// leader while this one was cut off) keeps hearing their FOLLOWERINFO, since they find
/// it still claiming leadership; they refuse its older LEADERINFO and retry. Those
/// handshakes must not count as syncing voters, or the stale leader never steps down.
#[test]
fn a_leader_steps_down_when_its_voters_have_accepted_a_newer_epoch() {
    let (mut s, leader) = Script::elected_three();
    let epoch = s.zab(leader).leader_epoch().expect("it has an epoch");
    let followers: Vec<Sid> = [1, 2, 3].into_iter().filter(|f| *f != leader).collect();
    for f in &followers {
        s.disconnect(leader, *f);
    }
    // For 3 s (syncLimit is 1 s, initLimit 2 s) both retry their handshake every 50 ms
    // with a newer acceptedEpoch; nothing else reaches the leader.
    let (start, sync_limit) = (s.now, 1_000);
    for _ in 0..60 {
        s.now += 50;
        let now = s.now;
        for f in &followers {
            let hello = Message::FollowerInfo {
                accepted_epoch: epoch + 1,
                last_zxid: 0,
                observer: false,
            };
            s.zab(leader).on_message(now, *f, hello);
        }
        s.zab(leader).on_tick(now);
        let _ = s.zab(leader).take_ready();
        if s.now - start > sync_limit {
            assert_ne!(
                s.zab(leader).role(),
                Role::Leader,
                "still leading at t={} on handshakes that cannot succeed",
                s.now
            );
        }
    }
}

/// Voters `ids` (no observers), at `version`.
fn voters<const N: usize>(ids: [Sid; N], version: i64) -> Membership {
    Membership {
        verifier: QuorumVerifier::majority(ids),
        observers: BTreeSet::new(),
        version,
        addresses: Default::default(),
    }
}

/// The one follower of a 3-voter ensemble other than the old leader.
fn the_other(leader: Sid, target: Sid) -> Sid {
    [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != target)
        .unwrap()
}

/// A handoff's target that missed the end of its own election (cut off from the others
/// while they voted for it) finds a quorum already following it when it comes back. It
/// must take over at once, as ZooKeeper's checkLeader lets a server whose out-of-election
/// votes name it lead: it used to accept only a peer claiming LEADING, so it stayed
/// looking until the followers gave up on it (initLimit) and the handoff became an
/// election, once in ~150 handoffs under faults.
#[test]
fn a_handoff_target_that_a_quorum_follows_takes_over() {
    let (mut s, leader) = Script::elected_three();
    let target = if leader == 1 { 2 } else { 1 };
    let other = the_other(leader, target);
    s.write(leader, "before the handoff");
    s.settle();

    // The handoff goes out, but the target's links fail before anything reaches it.
    assert_eq!(s.zab(leader).transfer_leadership(Some(target)), Ok(target));
    s.drain(leader);
    s.disconnect(target, leader);
    s.disconnect(target, other);
    s.run_for(500);
    for id in [leader, other] {
        assert_eq!(
            s.zab(id).role(),
            Role::Follower {
                leader: target,
                synced: false
            },
            "server {id} voted the target in"
        );
    }
    assert_eq!(s.zab(target).role(), Role::Looking);

    // Its links come back: the quorum following it answers its vote, and it leads well
    // before the followers' initLimit (2 s) would end their wait.
    s.connect(target, leader);
    s.connect(target, other);
    s.run_for(300);
    assert_eq!(s.zab(target).role(), Role::Leader, "the target took over");
    for id in [leader, other] {
        assert_eq!(
            s.zab(id).role(),
            Role::Follower {
                leader: target,
                synced: true
            }
        );
    }
    let after = s.write(target, "after the handoff");
    s.settle();
    assert!(s.servers[&other].commits.contains(&after));
}

/// Seen on real processes (server/tests/pods.rs, 1 in ~10 SIGTERMs to a leader under
/// load): the handoff's target takes over with the outgoing leader following it, but the
/// third voter has not synced yet when the outgoing leader exits; the target loses its
/// quorum and looks again with a vote for itself in its new epoch. The third voter still
/// voted for the target as the handoff announced it, (old epoch, old zxid): the two votes
/// differed, so neither had a quorum until the handoff's deadline (syncLimit) ended it,
/// a 2.9 s write pause instead of ~0.1 s. The target's own vote must replace the
/// announced one.
#[test]
fn a_handoff_target_that_looks_again_is_followed_with_its_new_vote() {
    let (mut s, leader) = Script::elected_three();
    let target = if leader == 1 { 2 } else { 1 };
    let other = the_other(leader, target);
    s.write(leader, "before the handoff");
    s.settle();

    let t0 = s.now;
    assert_eq!(s.zab(leader).transfer_leadership(Some(target)), Ok(target));
    s.drain(leader);
    // Deliver until the third voter has the handoff (it now votes as announced), then
    // cut it off before it can follow (it hears nobody settle on the target).
    while s.zab(other).role() != Role::Looking {
        let (from, to, msg) = s.queue.pop_front().expect("the handoff reaches everyone");
        let now = s.now;
        s.zab(to).on_message(now, from, msg);
        s.drain(to);
    }
    s.disconnect(other, target);
    s.disconnect(other, leader);
    while s.zab(target).role() != Role::Leader {
        assert!(s.now < t0 + 300, "the target did not take over");
        s.run_for(10);
    }
    // The outgoing leader exits: the target is left without a quorum and looks again.
    s.disconnect(leader, target);
    while s.zab(target).role() != Role::Looking {
        assert!(s.now < t0 + 500, "the target kept leading without a quorum");
        s.run_for(10);
    }
    s.connect(other, target);
    while !(s.zab(target).role() == Role::Leader
        && s.zab(other).role()
            == (Role::Follower {
                leader: target,
                synced: true,
            }))
    {
        // The handoff's deadline is syncLimit (1 s) after it reached the third voter.
        assert!(
            s.now < t0 + 800,
            "no leader with the third voter before the handoff's deadline: target {:?}, other {:?}",
            s.zab(target).role(),
            s.zab(other).role()
        );
        s.run_for(10);
    }
}

/// An observer that keeps restarting its search (its leader is gone) sends looking
/// notifications with ever higher rounds. They used to restart the voters' election
/// round each time, clearing the votes collected so far: with one voter down, the
/// handoff's target never held a quorum for finalizeWait, and neither did the
/// election after it. Non-voters' notifications must not touch the election.
#[test]
fn an_observers_rounds_do_not_restart_a_handoff_election() {
    let observers: BTreeSet<Sid> = [4].into_iter().collect();
    let mut s = Script::with_membership(Membership {
        verifier: QuorumVerifier::majority([1, 2, 3]),
        observers,
        version: 0,
        addresses: Default::default(),
    });
    for (a, b) in [(1, 2), (1, 3), (2, 3), (1, 4), (2, 4), (3, 4)] {
        s.connect(a, b);
    }
    s.run_for(1_000);
    let leader = s.leader().expect("a leader is elected");
    let target = if leader == 1 { 2 } else { 1 };
    let down = the_other(leader, target);
    s.write(leader, "before the handoff");
    s.settle();
    // One voter is away (so a decision needs finalizeWait), and so is the observer: it
    // only speaks through the notifications injected below.
    for p in [1, 2, 3, 4] {
        if p != down {
            s.disconnect(down, p);
        }
    }
    for p in [leader, target] {
        s.disconnect(4, p);
    }
    assert_eq!(s.zab(leader).transfer_leadership(Some(target)), Ok(target));
    s.drain(leader);
    s.settle();

    for round in 1_001..1_101 {
        if s.zab(target).role() == Role::Leader {
            break;
        }
        for to in [leader, target] {
            let n = super::Notification {
                vote: super::Vote {
                    leader: target,
                    zxid: 0,
                    epoch: 0,
                },
                round,
                state: super::PeerState::Looking,
                config: s.zab(to).membership().clone(),
                stands: true,
            };
            let now = s.now;
            s.zab(to).on_message(now, 4, Message::Vote(n));
            s.drain(to);
        }
        s.run_for(50);
    }
    assert_eq!(
        s.zab(target).role(),
        Role::Leader,
        "the target took over despite the observer's notifications"
    );
    assert!(
        s.now < 1_000 + 1_000 + 1_000,
        "within syncLimit: t={}",
        s.now
    );
}

/// A server removed while it was away comes back with a config from its data dir that
/// still lists it as a voter, among servers it knows, while the ensemble's config has a
/// member it never heard of (and leads). It adopts the ensemble's config from the
/// others' notifications, stops standing for election, and once it can reach the new
/// member (the shell opens that link when it learns the config's addresses) learns as
/// a non-voter; a reconfig that adds it back makes it a synced follower.
#[test]
fn a_server_outside_the_config_learns_and_is_added_back() {
    let current = voters([1, 2, 4], 5);
    let mut s = Script::with_membership(current.clone());
    for (a, b) in [(1, 2), (1, 4), (2, 4)] {
        s.connect(a, b);
    }
    s.run_for(1_000);
    assert_eq!(s.leader(), Some(4), "the highest id leads a fresh ensemble");
    let before = s.write(4, "before server 3 is back");
    s.settle();

    let stale = voters([1, 2, 3], 1);
    s.add_server(3, stale);
    s.connect(3, 1);
    s.connect(3, 2);
    s.run_for(500);
    assert_eq!(s.zab(3).membership(), &current, "adopted from the votes");
    assert_eq!(s.zab(3).role(), Role::Looking, "no link to the leader yet");
    assert_eq!(s.leader(), Some(4), "its old vote disturbed nobody");

    s.connect(3, 4);
    s.run_for(300);
    assert_eq!(
        s.zab(3).role(),
        Role::Observer {
            leader: 4,
            synced: true
        }
    );
    assert!(s.servers[&3].commits.contains(&before));

    let added = voters([1, 2, 3, 4], 0);
    let reconfig = s.reconfig(4, added, b"add 3");
    s.run_for(500);
    assert!(s.servers[&3].commits.contains(&reconfig));
    assert_eq!(
        s.zab(3).role(),
        Role::Follower {
            leader: 4,
            synced: true
        }
    );
    assert!(s.zab(3).membership().verifier.is_voter(3));
    let after = s.write(4, "after server 3 is back");
    s.settle();
    assert!(s.servers[&3].commits.contains(&after));
}

/// A voter cut off while a reconfig promotes an observer and leadership moves to that
/// new voter comes back with an older config than everyone else's, in which the new
/// leader does not even vote. Within a second of healing it holds the newest config
/// (nothing rolled back: the reconfig is in its log as committed) and follows the new
/// leader, synced.
#[test]
fn a_member_with_an_older_config_converges_after_healing() {
    let mut s = Script::with_membership(Membership {
        verifier: QuorumVerifier::majority([1, 2, 3]),
        observers: [4].into_iter().collect(),
        version: 0,
        addresses: Default::default(),
    });
    for (a, b) in [(1, 2), (1, 3), (2, 3), (1, 4), (2, 4), (3, 4)] {
        s.connect(a, b);
    }
    s.run_for(1_000);
    let leader = s.leader().expect("a leader is elected");
    let away = if leader == 1 { 2 } else { 1 };
    for p in [1, 2, 3, 4] {
        if p != away {
            s.disconnect(away, p);
        }
    }
    let promoted = voters([1, 2, 3, 4], 0);
    let reconfig = s.reconfig(leader, promoted, b"promote 4");
    s.run_for(500);
    assert!(s.servers[&leader].commits.contains(&reconfig));
    assert_eq!(
        s.zab(4).role(),
        Role::Follower {
            leader,
            synced: true
        }
    );
    assert_eq!(s.zab(leader).transfer_leadership(Some(4)), Ok(4));
    s.drain(leader);
    s.run_for(500);
    assert_eq!(s.leader(), Some(4));
    let newest = s.zab(4).membership().clone();
    assert_eq!(newest.version, reconfig);
    assert_ne!(s.zab(away).membership(), &newest, "it missed the reconfig");

    for p in [1, 2, 3, 4] {
        if p != away {
            s.connect(away, p);
        }
    }
    s.run_for(1_000);
    assert_eq!(s.zab(away).membership(), &newest);
    assert_eq!(
        s.zab(away).role(),
        Role::Follower {
            leader: 4,
            synced: true
        }
    );
    assert!(s.servers[&away].commits.contains(&reconfig));
    let after = s.write(4, "after healing");
    s.settle();
    assert!(s.servers[&away].commits.contains(&after));
}

/// Seed 135142 of `weighted_and_hierarchical_quorums_survive_faults` (a soak from seed
/// 100,001), reduced: a server promised a higher epoch to a candidate that never
/// established, while the ensemble established a lower one without it. It refuses the
/// leader's LEADERINFO, and the leader (rightly) does not count it, so it used to stay
/// out for good. The leader must step down and take the promise over, so the next epoch
/// is above it and the server joins.
#[test]
fn a_server_that_promised_a_higher_epoch_joins() {
    let (mut s, leader) = Script::elected_three();
    let epoch = s.zab(leader).leader_epoch().expect("established");
    let lagging = if leader == 1 { 2 } else { 1 };
    let other = the_other(leader, lagging);
    s.disconnect(lagging, leader);
    s.disconnect(lagging, other);
    let before = s.write(leader, "while it is away");
    s.settle();
    s.restart_having_accepted(lagging, epoch + 5);
    s.connect(lagging, leader);
    s.connect(lagging, other);
    s.run_for(2_000);
    let now_leading = s.leader().expect("a leader");
    let new_epoch = s.zab(now_leading).leader_epoch().unwrap();
    assert!(
        new_epoch > epoch + 5,
        "epoch {new_epoch} is above the promise"
    );
    assert!(matches!(
        s.zab(lagging).role(),
        Role::Follower { synced: true, .. }
    ));
    assert!(s.servers[&lagging].commits.contains(&before));
}

/// Found by tests/rejoin.rs: a server restarts after it was removed, with the reconfig
/// that had added it earlier still uncommitted in its log (its commit index lags). That
/// pending config makes it a voter, so it follows as a participant; the leader's sync
/// commits that reconfig, whose config is older than the active one that removed it,
/// and it used to stay a participant outside the config. It must learn as a non-voter.
#[test]
fn a_server_removed_with_an_older_reconfig_pending_learns_as_a_non_voter() {
    let (mut s, leader) = Script::elected_three();
    let away = if leader == 1 { 2 } else { 1 };
    let other = the_other(leader, away);
    let three = voters([1, 2, 3], 0);
    // A reconfig that keeps everyone (as when `away` was added back earlier).
    let kept = s.reconfig(leader, three.clone(), b"keep 1,2,3");
    s.settle();
    assert!(s.servers[&away].commits.contains(&kept));
    let (accepted_epoch, current_epoch) =
        (s.zab(away).accepted_epoch(), s.zab(away).current_epoch());
    s.disconnect(away, leader);
    s.disconnect(away, other);
    let without = voters([leader, other], 0);
    let removed = s.reconfig(leader, without, b"remove it");
    s.settle();
    assert!(s.servers[&leader].commits.contains(&removed));

    // It restarts with its commit index just before the reconfig that kept it.
    let commits: Vec<Zxid> = s.servers[&away]
        .commits
        .iter()
        .copied()
        .filter(|z| *z < kept)
        .collect();
    let durable = Durable {
        accepted_epoch,
        current_epoch,
        last_zxid: kept,
        last_committed: commits.last().copied().unwrap_or(0),
        uncommitted: vec![(kept, Bytes::from_static(b"keep 1,2,3"))],
        uncommitted_configs: vec![(
            kept,
            Membership {
                version: kept,
                addresses: Default::default(),
                ..three.clone()
            },
        )],
    };
    s.restart_with(away, three, durable, commits);
    s.connect(away, leader);
    s.connect(away, other);
    s.run_for(1_000);
    assert!(!s.zab(away).membership().is_member(away));
    assert_eq!(
        s.zab(away).role(),
        Role::Observer {
            leader,
            synced: true
        },
        "a non-voter learns without voting"
    );
    assert!(s.servers[&away].commits.contains(&removed));
}

/// What a follower promises leaves only after it is on disk: its ACKEPOCH after the
/// stage that wrote the epoch it accepted, its ACK of NEWLEADER after the stage that
/// wrote the new currentEpoch.
#[test]
fn a_followers_epoch_promises_leave_after_their_epochs_are_durable() {
    let (s, leader) = Script::elected_three();
    let epoch = s.servers[&leader].zab.current_epoch();
    assert!(epoch > 0, "the leader runs an epoch of its own");
    for (id, server) in &s.servers {
        if *id == leader {
            continue;
        }
        let to_leader: Vec<&(Epochs, Sid, Message)> = server
            .sent
            .iter()
            .filter(|(_, to, _)| *to == leader)
            .collect();
        let ack_epoch = to_leader
            .iter()
            .position(|(_, _, m)| matches!(m, Message::AckEpoch { .. }))
            .unwrap_or_else(|| panic!("follower {id} sent no ACKEPOCH"));
        let (on_disk, _, _) = to_leader[ack_epoch];
        assert_eq!(
            on_disk.accepted, epoch,
            "follower {id} sent ACKEPOCH before its acceptedEpoch was durable"
        );
        let (on_disk, _, _) = to_leader[ack_epoch + 1..]
            .iter()
            .find(|(_, _, m)| matches!(m, Message::Ack { .. }))
            .unwrap_or_else(|| panic!("follower {id} never ACKed NEWLEADER"));
        assert_eq!(
            on_disk.current, epoch,
            "follower {id} ACKed NEWLEADER before its currentEpoch was durable"
        );
    }
}

/// A follower ACKs NEWLEADER only once the TRUNC before it is done on disk: until then
/// its log still holds the txn the leader told it to cut (ZooKeeper truncates before it
/// goes on with the sync). It used to count the TRUNC as done when it was handed over.
#[test]
fn a_follower_acks_newleader_only_once_its_trunc_is_on_disk() {
    let (mut s, first) = Script::elected_three();
    let committed = s.write(first, "a");
    s.run_for(200);
    let f = the_other(first, first);
    let other = the_other(first, f);
    assert!(s.servers[&f].commits.contains(&committed));
    // F goes away; the other two elect a leader of a newer epoch (which proposes
    // nothing, so the TRUNC is all the sync holds).
    s.disconnect(f, first);
    s.disconnect(f, other);
    s.disconnect(first, other);
    s.run_for(3_000);
    s.connect(first, other);
    s.run_for(1_000);
    let leader = s.leader().expect("the two re-elect");
    let epoch = s.zab(leader).current_epoch();
    assert!(epoch > crate::epoch_of(committed));
    // F comes back holding a txn of the old epoch that was never committed.
    let diverged = committed + 1;
    let membership = s.zab(f).membership().clone();
    let commits = s.servers[&f].commits.clone();
    let durable = Durable {
        accepted_epoch: crate::epoch_of(committed),
        current_epoch: crate::epoch_of(committed),
        last_zxid: diverged,
        last_committed: committed,
        uncommitted: vec![(diverged, Bytes::from_static(b"never committed"))],
        uncommitted_configs: vec![],
    };
    s.hold_disk(f, true);
    let sent_before = s.servers[&f].sent.len();
    s.restart_with(f, membership, durable, commits);
    s.connect(f, first);
    s.connect(f, other);
    s.run_for(1_000);
    assert!(
        s.delivered
            .iter()
            .any(|(from, to, m)| (*from, *to) == (leader, f)
                && *m == Message::Trunc { zxid: committed }),
        "the leader sent no TRUNC to {committed:#x}"
    );
    let acks = |s: &Script| {
        s.servers[&f].sent[sent_before..]
            .iter()
            .filter(|(_, to, m)| *to == leader && matches!(m, Message::Ack { .. }))
            .count()
    };
    assert_eq!(acks(&s), 0, "NEWLEADER ACKed before the TRUNC was on disk");
    s.hold_disk(f, false);
    s.run_for(200);
    assert!(
        acks(&s) > 0,
        "NEWLEADER never ACKed once the disk caught up"
    );
    assert_eq!(
        s.zab(f).role(),
        Role::Follower {
            leader,
            synced: true
        }
    );
}
