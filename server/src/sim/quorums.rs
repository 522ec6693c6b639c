//! Weighted and hierarchical quorums through the production node, under the random
//! faults of every run: the ensemble's `weight.N` and `group.G` lines reach ZAB's quorum
//! verifier through the same config path a server's zoo.cfg takes, and every checker of
//! the whole-node run holds.

use super::{FAULT_MS, World, config_of, each_seed};
use crate::zab::{QuorumVerifier, Sid};

/// Four servers, the first weighing two: {1, any other} is a quorum, and so is {2, 3, 4}.
const WEIGHTED: &str = "weight.1=2\nweight.2=1\nweight.3=1\nweight.4=1\n";
/// Nine servers in three groups of three: a quorum is two of each of two groups.
const GROUPS: &str = "group.1=1:2:3\ngroup.2=4:5:6\ngroup.3=7:8:9\n";

/// One seed: hierarchical quorums on every fourth seed (nine nodes cost nine times
/// what one does), weighted ones on the others; faults, then the checks.
fn run_quorums(seed: u64) -> Result<usize, String> {
    let hierarchical = seed.is_multiple_of(4);
    let (ids, quorum): (Vec<Sid>, &str) = match hierarchical {
        true => ((1..=9).collect(), GROUPS),
        false => ((1..=4).collect(), WEIGHTED),
    };
    let mut world = World::with_ensemble(seed + 4_000_000, config_of(&ids, quorum));
    let verifier = world
        .nodes
        .get(&1)
        .and_then(Option::as_ref)
        .map(|node| node.core.zab().membership().verifier.clone());
    let wanted = match (&verifier, hierarchical) {
        (Some(QuorumVerifier::Weighted { weights }), false) => weights.get(&1) == Some(&2),
        (Some(QuorumVerifier::Hierarchical { groups, .. }), true) => groups.len() == 3,
        _ => false,
    };
    if !wanted {
        return Err(format!(
            "the ensemble's quorum lines did not reach ZAB: {verifier:?}"
        ));
    }
    world.run_until(FAULT_MS);
    world.end_faults();
    world.settle_and_check()?;
    Ok(world.acked.len())
}

#[test]
fn weighted_and_hierarchical_quorums_keep_every_acknowledged_write() {
    let acked: usize = each_seed("sim::quorums", run_quorums).into_iter().sum();
    assert!(acked > 0, "no create was ever acknowledged");
}
