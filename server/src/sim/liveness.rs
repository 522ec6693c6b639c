//! Liveness of the whole node under non-transitive partitions: the shapes (a ring of
//! neighbours, two halves joined by a bridge), the checker (a create is acknowledged
//! within a bound whenever some server hears a quorum none of whose members is ahead of
//! it), and the scenario that holds each shape while servers die. The same scenario as
//! the ZAB simulator's, run on the production core: sessions, the request pipeline,
//! recovery and snapshots included. `PADDOCK_SERVER_SIM_FIGURES=1` prints how long
//! each change took.

use std::collections::BTreeSet;

use super::{World, each_seed, link};
use crate::zab::Sid;

/// How long a leader may take to serve writes again after a change, while one can.
const BOUND_MS: u64 = 6_000;

impl World {
    /// Cuts every link but each server's two neighbours on the ring of `ids` (in that
    /// order): with five, every server still reaches a majority through itself and its
    /// neighbours, but no two non-neighbours hear each other.
    pub(super) fn ring_partition(&mut self, ids: &[Sid]) {
        let n = ids.len();
        for i in 0..n {
            for j in (i + 1)..n {
                let neighbours = j == i + 1 || (i == 0 && j == n - 1);
                if !neighbours {
                    self.cut_link(ids[i], ids[j]);
                }
            }
        }
    }

    /// Splits `ids` around a bridge (the first): the rest fall into two halves that do
    /// not hear each other, and the bridge hears everyone.
    pub(super) fn bridge_partition(&mut self, ids: &[Sid]) {
        let Some((_bridge, rest)) = ids.split_first() else {
            return;
        };
        let (left, right) = rest.split_at(rest.len() / 2);
        for a in left {
            for b in right {
                self.cut_link(*a, *b);
            }
        }
    }

    pub(super) fn cut_link(&mut self, a: Sid, b: Sid) {
        if self.linked(a, b) {
            self.step(a, crate::core::CoreMsg::PeerDown(b));
            self.step(b, crate::core::CoreMsg::PeerDown(a));
        }
        self.cut.insert(link(a, b));
        self.note(format!("link {a}-{b} cut"));
    }

    /// Restores every cut link.
    pub(super) fn heal_cuts(&mut self) {
        for (a, b) in std::mem::take(&mut self.cut) {
            self.note(format!("link {a}-{b} restored"));
            if self.linked(a, b) {
                self.step(a, crate::core::CoreMsg::PeerUp(b));
                self.step(b, crate::core::CoreMsg::PeerUp(a));
            }
        }
    }

    /// The ids in a seeded order.
    pub(super) fn shuffled(&mut self) -> Vec<Sid> {
        let mut ids = self.ids.clone();
        for i in (1..ids.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            ids.swap(i, j);
        }
        ids
    }

    /// Whether some running server hears (directly) a quorum of running servers,
    /// counting itself, none of which has logged more than it: then it can lead, and
    /// liveness demands a leader. (A leader must hold every committed txn, and ZAB takes
    /// the history of its leader, so a quorum whose most up-to-date members hear too few
    /// servers has no leader until the partition heals or a server comes back.)
    fn some_server_can_lead(&self) -> bool {
        let history = |id: Sid| {
            self.nodes
                .get(&id)
                .and_then(Option::as_ref)
                .map(|n| (n.core.zab().current_epoch(), n.core.zab().last_logged()))
        };
        let running: Vec<Sid> = self
            .ids
            .iter()
            .copied()
            .filter(|id| history(*id).is_some())
            .collect();
        running.iter().any(|s| {
            let mine = history(*s);
            let heard: BTreeSet<Sid> = running
                .iter()
                .copied()
                .filter(|p| p == s || self.linked(*s, *p))
                .filter(|p| history(*p) <= mine)
                .collect();
            heard.len() > self.ids.len() / 2
        })
    }

    /// Runs until a create is acknowledged: how long it took, or None after `bound_ms`.
    fn time_to_a_write(&mut self, bound_ms: u64) -> Option<u64> {
        let (start, acked) = (self.now(), self.acked.len());
        while self.now() < start + bound_ms {
            self.run_until(self.now() + 1);
            if self.acked.len() > acked {
                return Some(self.now() - start);
            }
        }
        None
    }

    /// While some server hears a quorum not ahead of it, a create is acknowledged
    /// within BOUND_MS.
    fn check_live(&mut self, what: &str) -> Result<(), String> {
        if !self.some_server_can_lead() {
            self.note(format!("{what}: no server can lead; nothing to demand"));
            return Ok(());
        }
        match self.time_to_a_write(BOUND_MS) {
            Some(ms) => {
                let figure = format!("{what}: a create acknowledged after {ms} ms");
                if std::env::var_os("PADDOCK_SERVER_SIM_FIGURES").is_some() {
                    eprintln!("{figure}");
                }
                self.note(figure);
                Ok(())
            }
            None => Err(format!(
                "{what}: some server hears a quorum not ahead of it, yet no create was \
                 acknowledged for {BOUND_MS} ms; {}\n{}",
                self.states(),
                self.log.join("\n")
            )),
        }
    }
}

/// One seed of the scenario: five nodes; the partition (a ring when the seed is even, a
/// bridge when odd) held while the leader is killed, then restarted, then a follower is
/// killed for good; a create is acknowledged within the bound after each change whenever
/// some server can lead. Healed, everything converges and every acknowledged create is
/// on every node.
fn run_partitioned(seed: u64) -> Result<(), String> {
    let mut world = World::new(seed + 3_000_000, 5);
    world.faults = false;
    world.check_live("every link up")?;
    let order = world.shuffled();
    let shape = if seed.is_multiple_of(2) {
        "ring"
    } else {
        "bridge"
    };
    if shape == "ring" {
        world.ring_partition(&order);
    } else {
        world.bridge_partition(&order);
    }
    let what = format!("{shape} {order:?}");
    world.check_live(&what)?;
    if let Some(leader) = world.leader() {
        world.crash(leader);
        let killed = format!("{what}, leader {leader} killed");
        world.check_live(&killed)?;
        world.start(leader);
        world.check_live(&format!("{killed} and restarted"))?;
    }
    let leader = world.leader();
    let running = |w: &World, id: Sid| matches!(w.nodes.get(&id), Some(Some(_)));
    if let Some(follower) = order
        .iter()
        .copied()
        .find(|id| Some(*id) != leader && running(&world, *id))
    {
        world.crash(follower);
        world.check_live(&format!("{what}, follower {follower} killed"))?;
    }
    world.end_faults();
    world.settle_and_check()
}

#[test]
fn non_transitive_partitions_keep_a_leader_serving_creates() {
    each_seed("sim::liveness", run_partitioned);
}
