//! Facts derived from one Observed: pods by ordinal, reports by id, the leader, quorum views.

use std::collections::{BTreeMap, BTreeSet};

use crate::membership::{MemberRole, id_of_ordinal};

use super::observed::{CommittedConfig, MemberReport, Observed, PodView, ServerRole};

pub(super) struct World<'a> {
    pub obs: &'a Observed,
    pub pods: BTreeMap<u32, &'a PodView>,
    /// The committed membership: /zookeeper/config, or the leader's own view of it.
    pub committed: Option<CommittedConfig>,
    /// The leader: a committed voter reporting role leader (highest epoch if several claim it).
    pub leader: Option<(u64, &'a MemberReport)>,
    pub update_revision: Option<&'a str>,
}

impl<'a> World<'a> {
    pub fn new(obs: &'a Observed) -> Self {
        let pods = obs.pods.iter().map(|p| (p.ordinal, p)).collect();
        let leader_claim = obs
            .members
            .iter()
            .filter_map(|(id, r)| r.as_ref().ok().map(|r| (*id, r)))
            .filter(|(_, r)| r.role == ServerRole::Leader)
            .max_by_key(|(id, r)| (r.epoch, *id));
        let committed = obs
            .committed
            .clone()
            .or_else(|| leader_claim.map(|(_, r)| CommittedConfig::from(&r.config)));
        let leader = leader_claim.filter(|(id, _)| {
            committed
                .as_ref()
                .and_then(|c| c.member(*id))
                .is_some_and(|m| m.role == MemberRole::Participant)
        });
        let update_revision = obs
            .stateful_set
            .as_ref()
            .and_then(|s| s.update_revision.as_deref());
        World {
            obs,
            pods,
            committed,
            leader,
            update_revision,
        }
    }

    pub fn pod_of_id(&self, id: u64) -> Option<&'a PodView> {
        crate::membership::ordinal_of_id(id).and_then(|o| self.pods.get(&o).copied())
    }

    pub fn report(&self, id: u64) -> Option<&'a MemberReport> {
        self.obs.members.get(&id).and_then(|r| r.as_ref().ok())
    }

    pub fn pod_name(&self, id: u64) -> String {
        crate::membership::ordinal_of_id(id)
            .map(|o| self.obs.ensemble.names.pod(o))
            .unwrap_or_else(|| format!("server {id}"))
    }

    /// A pod is outdated when its revision hash differs from the update revision (never by
    /// comparing images).
    pub fn is_outdated(&self, pod: &PodView) -> bool {
        match (self.update_revision, pod.revision.as_deref()) {
            (Some(want), Some(have)) => want != have,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Serving (rule 6): the pod is Ready and its server reports itself leader or a synced
    /// follower/observer. A member whose /status does not answer is not serving.
    pub fn serves(&self, pod: &PodView) -> bool {
        let id = id_of_ordinal(pod.ordinal);
        !pod.terminating && pod.ready && self.report(id).is_some_and(MemberReport::is_ready)
    }

    /// Certainly not serving: Kubernetes says not Ready, and neither the server itself nor the
    /// leader says otherwise. (A Ready pod whose /status does not answer is unknown, not "not
    /// serving"; a member the leader counts as synced serves the quorum whatever its probe says.)
    pub fn certainly_not_serving(&self, pod: &PodView) -> bool {
        let id = id_of_ordinal(pod.ordinal);
        !pod.ready
            && !self.report(id).is_some_and(MemberReport::is_ready)
            && !self.synced_voters().contains(&id)
    }

    /// A member whose server runs and looks for a leader while there is none and another
    /// member's server is not up (starting, crash-looping, unreachable): it is unready
    /// because of its peers, not of itself, and the quorum that forms once they are back
    /// needs it. Restarting it then only takes one more voter away (Strimzi #1001).
    pub fn waits_for_peers(&self, pod: &PodView) -> bool {
        let looking = self
            .report(id_of_ordinal(pod.ordinal))
            .is_some_and(|r| r.role == ServerRole::Looking);
        looking
            && self.leader.is_none()
            && self.pods.values().any(|other| {
                other.ordinal != pod.ordinal && self.report(id_of_ordinal(other.ordinal)).is_none()
            })
    }

    /// Voters of the committed config with their weights.
    pub fn voters(&self) -> BTreeMap<u64, u64> {
        self.committed
            .iter()
            .flat_map(|c| c.members.iter())
            .filter(|m| m.role == MemberRole::Participant)
            .map(|m| (m.id, m.weight))
            .collect()
    }

    /// Voters synced with the leader, as the leader's own /status reports them (the leader
    /// itself included). Empty without a leader.
    pub fn synced_voters(&self) -> BTreeSet<u64> {
        let Some((leader_id, report)) = self.leader else {
            return BTreeSet::new();
        };
        let voters = self.voters();
        let mut synced: BTreeSet<u64> = report
            .followers
            .iter()
            .flatten()
            .filter(|f| f.synced && voters.contains_key(&f.id))
            .map(|f| f.id)
            .collect();
        synced.insert(leader_id);
        synced
    }
}

/// Whether `synced` holds a quorum of `voters` (weights; a plain majority when all weigh 1).
pub(super) fn has_quorum(voters: &BTreeMap<u64, u64>, synced: &BTreeSet<u64>) -> bool {
    let total: u64 = voters.values().sum();
    let have: u64 = synced.iter().filter_map(|id| voters.get(id)).sum();
    total > 0 && have * 2 > total
}
