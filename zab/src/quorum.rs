//! Quorum verifiers: which sets of voters may decide. Majority (default), weighted
//! (`weight.N`: more than half of the total weight) and hierarchical (`group.G` +
//! weights: more than half of the groups, each by more than half of its own weight), as
//! ZooKeeper's QuorumMaj and QuorumHierarchical define them. Observers never count.

use std::collections::{BTreeMap, BTreeSet};

/// Who votes, and how their votes combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumVerifier {
    /// More than half of the voters.
    Majority { voters: BTreeSet<u64> },
    /// More than half of the total weight. Zero-weight voters never make a difference.
    Weighted { weights: BTreeMap<u64, u64> },
    /// More than half of the groups (counting only groups of non-zero weight), each
    /// won by more than half of its weight.
    Hierarchical {
        groups: BTreeMap<u64, BTreeSet<u64>>,
        weights: BTreeMap<u64, u64>,
    },
}

impl QuorumVerifier {
    pub fn majority(voters: impl IntoIterator<Item = u64>) -> QuorumVerifier {
        QuorumVerifier::Majority {
            voters: voters.into_iter().collect(),
        }
    }

    /// The voting members.
    pub fn voters(&self) -> BTreeSet<u64> {
        match self {
            QuorumVerifier::Majority { voters } => voters.clone(),
            QuorumVerifier::Weighted { weights } => weights.keys().copied().collect(),
            QuorumVerifier::Hierarchical { weights, .. } => weights.keys().copied().collect(),
        }
    }

    pub fn is_voter(&self, id: u64) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => voters.contains(&id),
            QuorumVerifier::Weighted { weights } | QuorumVerifier::Hierarchical { weights, .. } => {
                weights.contains_key(&id)
            }
        }
    }

    pub fn weight(&self, id: u64) -> u64 {
        match self {
            QuorumVerifier::Majority { voters } => u64::from(voters.contains(&id)),
            QuorumVerifier::Weighted { weights } | QuorumVerifier::Hierarchical { weights, .. } => {
                weights.get(&id).copied().unwrap_or(0)
            }
        }
    }

    /// Whether `ids` (any superset of voters is fine; non-voters are ignored) can decide.
    pub fn contains_quorum(&self, ids: &BTreeSet<u64>) -> bool {
        match self {
            QuorumVerifier::Majority { voters } => {
                let n = voters.len();
                n > 0 && ids.iter().filter(|id| voters.contains(id)).count() * 2 > n
            }
            QuorumVerifier::Weighted { weights } => {
                let total: u64 = weights.values().sum();
                let have: u64 = ids.iter().filter_map(|id| weights.get(id)).sum();
                total > 0 && have * 2 > total
            }
            QuorumVerifier::Hierarchical { groups, weights } => {
                let group_weight =
                    |members: &BTreeSet<u64>, among: Option<&BTreeSet<u64>>| -> u64 {
                        members
                            .iter()
                            .filter(|m| among.is_none_or(|a| a.contains(m)))
                            .filter_map(|m| weights.get(m))
                            .sum()
                    };
                let live_groups: Vec<&BTreeSet<u64>> = groups
                    .values()
                    .filter(|members| group_weight(members, None) > 0)
                    .collect();
                let won = live_groups
                    .iter()
                    .filter(|members| {
                        group_weight(members, Some(ids)) * 2 > group_weight(members, None)
                    })
                    .count();
                !live_groups.is_empty() && won * 2 > live_groups.len()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn majority_needs_more_than_half() {
        let q = QuorumVerifier::majority([1, 2, 3]);
        assert!(!q.contains_quorum(&set(&[1])));
        assert!(q.contains_quorum(&set(&[1, 3])));
        assert!(
            q.contains_quorum(&set(&[1, 3, 9])),
            "non-voters are ignored"
        );
        let four = QuorumVerifier::majority([1, 2, 3, 4]);
        assert!(!four.contains_quorum(&set(&[1, 2])));
        assert!(four.contains_quorum(&set(&[1, 2, 3])));
    }

    #[test]
    fn weighted_counts_weight_not_heads() {
        let q = QuorumVerifier::Weighted {
            weights: [(1, 3), (2, 1), (3, 1), (4, 0)].into_iter().collect(),
        };
        assert!(q.contains_quorum(&set(&[1])), "3 of 5");
        assert!(!q.contains_quorum(&set(&[2, 3, 4])), "2 of 5");
        assert_eq!(q.weight(4), 0);
    }

    #[test]
    fn hierarchical_needs_a_majority_of_groups_each_by_weight() {
        // The seed notes' example: three groups of three, a quorum of groups wins.
        let groups: BTreeMap<u64, BTreeSet<u64>> = [
            (1, set(&[1, 2, 3])),
            (2, set(&[4, 5, 6])),
            (3, set(&[7, 8, 9])),
        ]
        .into_iter()
        .collect();
        let weights = (1..=9).map(|i| (i, 1)).collect();
        let q = QuorumVerifier::Hierarchical { groups, weights };
        assert!(
            q.contains_quorum(&set(&[1, 2, 4, 5])),
            "groups 1 and 2 by 2 of 3"
        );
        assert!(!q.contains_quorum(&set(&[1, 2, 3, 4])), "only group 1 won");
        assert!(!q.contains_quorum(&set(&[1, 4, 7])), "no group won");
        assert!(q.contains_quorum(&set(&[7, 8, 4, 6])));
    }
}
