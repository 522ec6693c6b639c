//! Membership changes, one voter per step through reconfig: finishing a half-done change,
//! reclaiming removed members' PVCs, and the next step towards spec.replicas/observers.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::ReclaimPolicy;
use crate::membership::{MemberRole, desired_members, id_of_ordinal, ordinal_of_id};

use super::observed::{CommittedConfig, ServerRole};
use super::world::{World, has_quorum};
use super::{
    Action, Decision, MembershipChange, WaitKind, decide, describe_not_serving, refuse, wait,
};

fn as_replicas(id: u64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// Repairs what a change left half-done (after an operator restart, or a hand edit): a
/// StatefulSet smaller than the membership, a pod that is not a member yet (joiner), a pod
/// that is no longer one.
pub(super) fn finish_change(
    w: &World,
    committed: &CommittedConfig,
    replicas: u32,
) -> Option<Decision> {
    let spec = &w.obs.ensemble.spec;
    let max_member = committed.max_id();
    if u64::from(replicas) < max_member {
        return Some(decide(
            w,
            Action::ScaleStatefulSet {
                replicas: as_replicas(max_member),
            },
            format!(
                "the StatefulSet has {replicas} replicas but member {max_member} is in the committed membership: restoring it (a missing pod is never a scale-in; members leave only through reconfig)"
            ),
        ));
    }
    let joiner = (1..=u64::from(replicas)).find(|id| committed.member(*id).is_none())?;
    let desired = u64::try_from(spec.replicas).unwrap_or(0);
    if joiner > desired {
        if joiner == u64::from(replicas) {
            return Some(decide(
                w,
                Action::ScaleStatefulSet {
                    replicas: as_replicas(joiner - 1),
                },
                format!(
                    "{} is not in the committed membership and spec.replicas is {desired}: shrinking the StatefulSet to {}",
                    w.pod_name(joiner),
                    joiner - 1
                ),
            ));
        }
        return None;
    }
    Some(add_joiner(w, committed, joiner))
}

/// A pod that is not a member yet: once it syncs as a non-voting joiner on the current
/// config, add it with fromConfig = the committed version.
fn add_joiner(w: &World, committed: &CommittedConfig, id: u64) -> Decision {
    let names = &w.obs.ensemble.names;
    let pod_name = w.pod_name(id);
    let ordinal = ordinal_of_id(id).unwrap_or(0);
    let report = match w.obs.members.get(&id) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return wait(
                w,
                WaitKind::Joiner,
                &pod_name,
                format!("scale up: joiner {pod_name} does not answer /status yet ({e})"),
            );
        }
        None => {
            return wait(
                w,
                WaitKind::Joiner,
                &pod_name,
                format!("scale up: joiner {pod_name} has not reported /status yet"),
            );
        }
    };
    if report.role != ServerRole::Joining {
        if report.config.version >= committed.version {
            return wait(
                w,
                WaitKind::Joiner,
                &pod_name,
                format!(
                    "{pod_name} reports itself {} in config {:#x}, newer than the committed {:#x} the operator read: waiting for a consistent read",
                    report.role.as_str(),
                    report.config.version,
                    committed.version
                ),
            );
        }
        // pravega #94/#448: the pod started on a PVC from an earlier membership and trusts
        // that stale config. Never add it, never take its config for the truth.
        let stale = format!(
            "{pod_name} started on data from an earlier membership (its config {:#x} is older than the committed {:#x} and it acts as {})",
            report.config.version,
            committed.version,
            report.role.as_str()
        );
        let pvc_name = names.pvc(ordinal);
        return match w.obs.ensemble.spec.storage.reclaim_policy {
            ReclaimPolicy::Delete => match w.obs.pvcs.iter().find(|p| p.name == pvc_name) {
                Some(pvc) if !pvc.terminating => decide(
                    w,
                    Action::DeletePvc {
                        name: pvc_name.clone(),
                    },
                    format!(
                        "{stale}: deleting its PVC {pvc_name} (reclaimPolicy Delete) so it joins with empty data"
                    ),
                ),
                _ => decide(
                    w,
                    Action::DeletePod {
                        name: pod_name.clone(),
                    },
                    format!(
                        "{stale}: its PVC is gone or going; restarting the pod so it joins with empty data"
                    ),
                ),
            },
            ReclaimPolicy::Retain => refuse(
                w,
                &pod_name,
                format!(
                    "{stale}. reclaimPolicy is Retain, so the operator does not delete data: delete PVC {pvc_name} and pod {pod_name} to let it join fresh"
                ),
            ),
        };
    }
    if !report.synced || report.config.version != committed.version {
        return wait(
            w,
            WaitKind::Joiner,
            &pod_name,
            format!(
                "scale up: joiner {pod_name} is syncing as a non-voting member (synced: {}, its config {:#x}, committed {:#x})",
                report.synced, report.config.version, committed.version
            ),
        );
    }
    let role = desired_role(w, id);
    let voters = w.voters();
    let synced = w.synced_voters();
    let (after_voters, after_synced) = match role {
        MemberRole::Participant => (with(&voters, id), with_id(&synced, id)),
        MemberRole::Observer => (voters.clone(), synced.clone()),
    };
    if w.leader.is_none()
        || !has_quorum(&voters, &synced)
        || !has_quorum(&after_voters, &after_synced)
    {
        return wait(
            w,
            WaitKind::Quorum,
            &pod_name,
            format!(
                "scale up: joiner {pod_name} is synced but the ensemble has no synced quorum to commit its reconfig (synced voters {synced:?})"
            ),
        );
    }
    decide(
        w,
        Action::Reconfig {
            change: MembershipChange::Add(names.server(ordinal, role)),
            from_config_version: committed.version,
        },
        format!(
            "scale up: {pod_name} synced as a joiner; adding member {id} as {} with fromConfig {:#x}",
            role.as_str(),
            committed.version
        ),
    )
}

/// PVCs of pods above the StatefulSet's replicas, once the pod is gone (reclaimPolicy Delete).
pub(super) fn reclaim_pvcs(w: &World, replicas: u32) -> Option<Decision> {
    let spec = &w.obs.ensemble.spec;
    if spec.storage.reclaim_policy != ReclaimPolicy::Delete || spec.storage.ephemeral {
        return None;
    }
    let pvc = w
        .obs
        .pvcs
        .iter()
        .filter(|p| p.ordinal >= replicas && !p.terminating)
        .min_by_key(|p| p.ordinal)?;
    if let Some(pod) = w.pods.get(&pvc.ordinal) {
        return Some(wait(
            w,
            WaitKind::PodGone,
            &pod.name,
            format!(
                "scale down: waiting for {} to go before deleting its PVC {}",
                pod.name, pvc.name
            ),
        ));
    }
    Some(decide(
        w,
        Action::DeletePvc {
            name: pvc.name.clone(),
        },
        format!(
            "scale down: member {} is gone; deleting its PVC {} (reclaimPolicy Delete)",
            id_of_ordinal(pvc.ordinal),
            pvc.name
        ),
    ))
}

/// The next step towards the desired membership: remove the top member, change one role, or
/// grow the StatefulSet by one. Only while every member serves and a leader exists.
pub(super) fn next_step(w: &World, committed: &CommittedConfig, replicas: u32) -> Option<Decision> {
    let spec = &w.obs.ensemble.spec;
    let desired: BTreeMap<u64, MemberRole> = desired_members(spec.replicas, spec.observers)
        .into_iter()
        .collect();
    let max_member = committed.max_id();
    let desired_max = desired.keys().max().copied().unwrap_or(0);
    let role_change = committed
        .members
        .iter()
        .find(|m| desired.get(&m.id).is_some_and(|r| *r != m.role));
    if max_member == desired_max && role_change.is_none() {
        return None;
    }
    // Only while healthy: every member serves and there is a leader.
    for m in &committed.members {
        if let Some(pod) = w.pod_of_id(m.id)
            && !w.serves(pod)
        {
            return Some(wait(
                w,
                WaitKind::PodReady,
                &pod.name,
                format!(
                    "membership change waits: member {} ({}) does not serve ({})",
                    m.id,
                    pod.name,
                    describe_not_serving(w, pod)
                ),
            ));
        }
    }
    let Some((leader_id, _)) = w.leader else {
        return Some(wait(
            w,
            WaitKind::Quorum,
            "leader",
            "membership change waits: no member reports itself leader".into(),
        ));
    };
    let voters = w.voters();
    let synced = w.synced_voters();
    if max_member > desired_max {
        let id = max_member;
        let leaving_role = committed.member(id).map(|m| m.role);
        return Some(leave(
            w,
            committed,
            id,
            leader_id,
            &voters,
            &synced,
            leaving_role,
            |after_voters, after_synced| {
                (
                    Action::Reconfig {
                        change: MembershipChange::Remove(id),
                        from_config_version: committed.version,
                    },
                    format!(
                        "scale down: removing member {id} ({}) with fromConfig {:#x}; voters {:?} keep synced quorum {after_synced:?}",
                        w.pod_name(id),
                        committed.version,
                        after_voters.keys().collect::<Vec<_>>()
                    ),
                )
            },
        ));
    }
    if let Some(m) = role_change {
        let id = m.id;
        let names = &w.obs.ensemble.names;
        let ordinal = ordinal_of_id(id).unwrap_or(0);
        if m.role == MemberRole::Participant {
            // Demote a voter to observer: same care as removing a voter.
            return Some(leave(
                w,
                committed,
                id,
                leader_id,
                &voters,
                &synced,
                Some(m.role),
                |_, after_synced| {
                    (
                        Action::Reconfig {
                            change: MembershipChange::Add(
                                names.server(ordinal, MemberRole::Observer),
                            ),
                            from_config_version: committed.version,
                        },
                        format!(
                            "spec.observers: member {id} ({}) becomes an observer; remaining voters keep synced quorum {after_synced:?}",
                            w.pod_name(id)
                        ),
                    )
                },
            ));
        }
        let after_voters = with(&voters, id);
        let after_synced = if w.report(id).is_some_and(|r| r.is_ready()) {
            with_id(&synced, id)
        } else {
            synced.clone()
        };
        if !has_quorum(&voters, &synced) || !has_quorum(&after_voters, &after_synced) {
            return Some(wait(
                w,
                WaitKind::Quorum,
                &w.pod_name(id),
                format!(
                    "spec.observers: promoting member {id} waits for a synced quorum of the larger voter set"
                ),
            ));
        }
        return Some(decide(
            w,
            Action::Reconfig {
                change: MembershipChange::Add(names.server(ordinal, MemberRole::Participant)),
                from_config_version: committed.version,
            },
            format!(
                "spec.observers: member {id} ({}) becomes a voter",
                w.pod_name(id)
            ),
        ));
    }
    // Scale up: one new pod; it joins as a non-voter and is added once synced.
    Some(decide(
        w,
        Action::ScaleStatefulSet {
            replicas: i32::try_from(replicas + 1).unwrap_or(i32::MAX),
        },
        format!(
            "scale up: {} of {desired_max} members; creating {} to join as a non-voting member first",
            committed.members.len(),
            w.obs.ensemble.names.pod(replicas)
        ),
    ))
}

/// A voter leaves the voter set (removed, or demoted to observer): move leadership off it
/// first, then change membership only if both the old and the new voter sets keep a synced
/// quorum (pravega #92/#575: never lose quorum on scale-down).
#[allow(clippy::too_many_arguments)]
fn leave(
    w: &World,
    committed: &CommittedConfig,
    id: u64,
    leader_id: u64,
    voters: &BTreeMap<u64, u64>,
    synced: &BTreeSet<u64>,
    role: Option<MemberRole>,
    change: impl FnOnce(&BTreeMap<u64, u64>, &BTreeSet<u64>) -> (Action, String),
) -> Decision {
    let pod_name = w.pod_name(id);
    if role != Some(MemberRole::Participant) {
        let (action, reason) = change(voters, synced);
        return decide(w, action, reason);
    }
    let mut after_voters = voters.clone();
    after_voters.remove(&id);
    let mut after_synced = synced.clone();
    after_synced.remove(&id);
    if !has_quorum(voters, synced) || !has_quorum(&after_voters, &after_synced) {
        return wait(
            w,
            WaitKind::Quorum,
            &pod_name,
            format!(
                "member {id} ({pod_name}) cannot leave the voters yet: synced voters {synced:?}; without it {after_synced:?} is not a quorum of {:?}",
                after_voters.keys().collect::<Vec<_>>()
            ),
        );
    }
    if id == leader_id {
        let staying = |c: u64| {
            c != id
                && committed
                    .member(c)
                    .is_some_and(|m| m.role == MemberRole::Participant)
                && after_voters.contains_key(&c)
        };
        return match handoff_target(w, synced, staying) {
            Some(to) => decide(
                w,
                Action::TransferLeadership { from: id, to },
                format!(
                    "member {id} ({pod_name}) leaves the voters and leads: handing leadership to member {to} first"
                ),
            ),
            None => wait(
                w,
                WaitKind::Quorum,
                &pod_name,
                format!(
                    "member {id} ({pod_name}) leads and no synced voter that stays can take over"
                ),
            ),
        };
    }
    let (action, reason) = change(&after_voters, &after_synced);
    decide(w, action, reason)
}

/// The synced voter to hand leadership to: an updated one if possible, then the least lag.
pub(super) fn handoff_target(
    w: &World,
    synced: &BTreeSet<u64>,
    allowed: impl Fn(u64) -> bool,
) -> Option<u64> {
    let (leader_id, leader) = w.leader?;
    let lag: BTreeMap<u64, u64> = leader
        .followers
        .iter()
        .flatten()
        .map(|f| (f.id, f.lag))
        .collect();
    synced
        .iter()
        .copied()
        .filter(|id| *id != leader_id && allowed(*id))
        .filter(|id| w.pod_of_id(*id).is_some_and(|p| w.serves(p)))
        .min_by_key(|id| {
            let outdated = w.pod_of_id(*id).is_none_or(|p| w.is_outdated(p));
            (outdated, lag.get(id).copied().unwrap_or(u64::MAX), *id)
        })
}

fn desired_role(w: &World, id: u64) -> MemberRole {
    let spec = &w.obs.ensemble.spec;
    desired_members(spec.replicas, spec.observers)
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, r)| r)
        .unwrap_or(MemberRole::Participant)
}

fn with(voters: &BTreeMap<u64, u64>, id: u64) -> BTreeMap<u64, u64> {
    let mut v = voters.clone();
    v.insert(id, 1);
    v
}

fn with_id(set: &BTreeSet<u64>, id: u64) -> BTreeSet<u64> {
    let mut s = set.clone();
    s.insert(id);
    s
}
