//! Liveness under non-transitive partitions: the shapes (a ring of neighbours, two
//! halves joined by a bridge), the checker (a leader serves writes within a bound
//! whenever some server hears a quorum none of whose members is ahead of it), and the
//! scenario that holds each shape while servers die.

use std::collections::BTreeSet;

use super::{Sim, for_each_seed, key};
use crate::Sid;

/// Liveness under non-transitive partitions.
impl Sim {
    /// Cuts every link but each server's two neighbours on the ring of `ids` (in that
    /// order): with five, every server still reaches a majority through itself and its
    /// neighbours, but no two non-neighbours hear each other.
    pub(super) fn ring_partition(&mut self, ids: &[Sid]) {
        let n = ids.len();
        for i in 0..n {
            for j in (i + 1)..n {
                let neighbours = j == i + 1 || (i == 0 && j == n - 1);
                if !neighbours {
                    self.cut(ids[i], ids[j]);
                }
            }
        }
    }

    /// Splits `ids` around a bridge (the first): the rest fall into two halves that
    /// do not hear each other, and the bridge hears everyone.
    pub(super) fn bridge_partition(&mut self, ids: &[Sid]) {
        let Some((_bridge, rest)) = ids.split_first() else {
            return;
        };
        let (left, right) = rest.split_at(rest.len() / 2);
        for a in left {
            for b in right {
                self.cut(*a, *b);
            }
        }
    }

    fn cut(&mut self, a: Sid, b: Sid) {
        self.partitioned.insert(key(a, b));
        self.link_down(a, b);
    }

    /// The ids in a seeded order.
    pub(super) fn shuffled(&mut self) -> Vec<Sid> {
        let mut ids: Vec<Sid> = self.nodes.keys().copied().collect();
        for i in (1..ids.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            ids.swap(i, j);
        }
        ids
    }

    /// Whether some live voter hears (directly, both ways) a quorum of live voters,
    /// counting itself, none of which has logged more than it: then it can lead, and
    /// liveness demands a leader. (A leader must hold every committed txn, and ZAB as
    /// ZooKeeper runs it takes the history of its leader, so a quorum whose most
    /// up-to-date members hear too few servers has no leader until something changes:
    /// the partition heals or a server comes back.)
    fn some_server_can_lead(&self) -> bool {
        let history = |id: Sid| {
            self.nodes
                .get(&id)
                .and_then(|n| n.zab.as_ref())
                .map(|z| (z.current_epoch(), z.last_logged()))
        };
        let alive: Vec<Sid> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| self.alive(*id))
            .collect();
        alive.iter().any(|s| {
            let mine = history(*s);
            let heard: BTreeSet<Sid> = alive
                .iter()
                .copied()
                .filter(|p| p == s || !self.partitioned.contains(&key(*s, *p)))
                .filter(|p| history(*p) <= mine)
                .collect();
            self.membership.verifier.contains_quorum(&heard)
        })
    }

    /// Steps (with client writes) until a write is acknowledged; the time it took, or
    /// `None` after `bound_ms`.
    fn time_to_a_write(&mut self, bound_ms: u64) -> Option<u64> {
        let (start, acked) = (self.now, self.acked.len());
        while self.now < start + bound_ms {
            self.step(0, 20_000);
            if self.acked.len() > acked {
                return Some(self.now - start);
            }
        }
        None
    }

    /// The liveness checker: while some server hears a quorum, a leader serves writes
    /// within `bound_ms`. Returns the time it took, for the figures.
    fn check_live(&mut self, what: &str, bound_ms: u64) -> Option<u64> {
        if !self.some_server_can_lead() {
            return None;
        }
        match self.time_to_a_write(bound_ms) {
            Some(ms) => Some(ms),
            None => {
                let roles: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|(id, n)| match n.zab.as_ref() {
                        Some(z) => format!(
                            "{id}: {:?} epoch {} logged {:#x}",
                            z.role(),
                            z.current_epoch(),
                            z.last_logged()
                        ),
                        None => format!("{id}: down"),
                    })
                    .collect();
                self.fail(&format!(
                    "{what}: some server hears a quorum not ahead of it, yet no write was acknowledged for \
                     {bound_ms} ms; roles: {}",
                    roles.join(", ")
                ))
            }
        }
    }
}

/// Non-transitive partitions on five servers, held while servers die: a "majorities
/// ring" (each server linked only to its two neighbours, so each still has a majority)
/// and a bridge (one server linked to two halves that do not hear each other). After
/// the partition, after the leader is killed, and after a follower is killed, a leader
/// must serve writes within the bound whenever some server still hears a quorum.
/// (Before the fix, a killed leader left a ring without a writable leader for good:
/// every server saw a quorum vote for the best id and followed a leader it could not
/// reach.)
#[test]
fn non_transitive_partitions_keep_a_leader_serving_writes() {
    const BOUND_MS: u64 = 6_000;
    for_each_seed(
        "liveness::non_transitive_partitions_keep_a_leader_serving_writes",
        200,
        |seed, replay| {
            let mut sim = Sim::new(seed + 3_000_000, &[1, 2, 3, 4, 5], &[]);
            sim.replay = replay;
            sim.faults = false;
            sim.check_live("every link up", BOUND_MS);
            let order = sim.shuffled();
            let shape = if seed % 2 == 0 { "ring" } else { "bridge" };
            if shape == "ring" {
                sim.ring_partition(&order);
            } else {
                sim.bridge_partition(&order);
            }
            let what = format!("{shape} {order:?}");
            sim.check_live(&what, BOUND_MS);
            let figure = |what: &str, ms: Option<u64>| {
                if let Some(ms) = ms
                    && std::env::var_os("PADDOCK_SIM_FIGURES").is_some()
                {
                    eprintln!("seed {seed}: {what}: a write after {ms} ms");
                }
            };
            // The leader killed and kept down: the four left must carry on when one of
            // them can lead; then it comes back (as a restarted pod does), with its
            // neighbours, that hold the latest history.
            if let Some(leader) = sim.leader() {
                sim.crash(leader);
                if let Some(node) = sim.nodes.get_mut(&leader) {
                    node.down_until = u64::MAX;
                }
                let what = format!("{what}, leader {leader} killed");
                figure(&what, sim.check_live(&what, BOUND_MS));
                if let Some(node) = sim.nodes.get_mut(&leader) {
                    node.down_until = sim.now;
                }
                let restarted = format!("{what} and restarted");
                // One step restarts it; its recovered history decides whether it can lead.
                sim.step(0, 0);
                figure(&restarted, sim.check_live(&restarted, BOUND_MS));
            }
            // A follower killed for good.
            let leader = sim.leader();
            if let Some(follower) = order
                .iter()
                .copied()
                .find(|id| Some(*id) != leader && sim.alive(*id))
            {
                sim.crash(follower);
                if let Some(node) = sim.nodes.get_mut(&follower) {
                    node.down_until = u64::MAX;
                }
                let what = format!("{what}, follower {follower} killed");
                figure(&what, sim.check_live(&what, BOUND_MS));
            }
            // Healed and restarted, everything converges and every acknowledged write is
            // everywhere.
            for node in sim.nodes.values_mut() {
                node.down_until = node.down_until.min(sim.now);
            }
            sim.run(0);
        },
    );
}
