//! Rolling restart (DESIGN §5 rules 1–7): one pod per reconcile, unserving ones first, then
//! followers and observers behind the synced-quorum gate, the leader last after a transfer.

use std::collections::BTreeSet;

use crate::membership::{MemberRole, id_of_ordinal};

use super::observed::{CommittedConfig, PodView};
use super::world::{World, has_quorum};
use super::{Action, Decision, WaitKind, decide, describe_not_serving, wait};

/// Rule 3: an outdated pod that certainly does not serve is restarted first; taking it out
/// lowers nothing the quorum counts on. Not a member that only waits for its peers to
/// come back (`World::waits_for_peers`): the quorum that forms then counts on it.
pub(super) fn restart_unserving(w: &World, replicas: u32) -> Option<Decision> {
    let pod = w
        .pods
        .values()
        .filter(|p| {
            p.ordinal < replicas
                && w.is_outdated(p)
                && w.certainly_not_serving(p)
                && !w.waits_for_peers(p)
        })
        .min_by_key(|p| p.ordinal)?;
    Some(decide(
        w,
        Action::DeletePod {
            name: pod.name.clone(),
        },
        format!(
            "pod {} runs revision {} instead of {} and does not serve ({}): restarting it first costs the quorum nothing",
            pod.name,
            pod.revision.as_deref().unwrap_or("?"),
            w.update_revision.unwrap_or("?"),
            describe_not_serving(w, pod)
        ),
    ))
}

/// Rules 4–6 for outdated members that serve.
pub(super) fn restart_serving(
    w: &World,
    committed: &CommittedConfig,
    replicas: u32,
) -> Option<Decision> {
    let members: Vec<&PodView> = w
        .pods
        .values()
        .copied()
        .filter(|p| p.ordinal < replicas && committed.member(id_of_ordinal(p.ordinal)).is_some())
        .collect();
    let mut outdated: Vec<&PodView> = members
        .iter()
        .copied()
        .filter(|p| w.is_outdated(p))
        .collect();
    if outdated.is_empty() {
        return None;
    }
    // Gate: every already-updated member serves (Strimzi #1001: never take out another pod
    // while the last one has not come back).
    if let Some(pod) = members.iter().find(|p| !w.is_outdated(p) && !w.serves(p)) {
        return Some(wait(
            w,
            WaitKind::PodReady,
            &pod.name,
            format!(
                "rolling restart: {} is already updated but does not serve yet ({}); the next member restarts only after it does",
                pod.name,
                describe_not_serving(w, pod)
            ),
        ));
    }
    let Some((leader_id, _)) = w.leader else {
        return Some(wait(
            w,
            WaitKind::Quorum,
            "leader",
            "rolling restart: no member reports itself leader; waiting for a leader before restarting anyone".into(),
        ));
    };
    // Observers, then followers, by ordinal; the leader last.
    outdated.sort_by_key(|p| {
        let id = id_of_ordinal(p.ordinal);
        let role = committed.member(id).map(|m| m.role);
        (
            id == leader_id,
            role != Some(MemberRole::Observer),
            p.ordinal,
        )
    });
    let pod = outdated[0];
    let id = id_of_ordinal(pod.ordinal);
    let voters = w.voters();
    let synced = w.synced_voters();
    let mut without: BTreeSet<u64> = synced.clone();
    without.remove(&id);
    if !has_quorum(&voters, &without) {
        return Some(wait(
            w,
            WaitKind::Quorum,
            &pod.name,
            format!(
                "rolling restart: the leader (member {leader_id}) reports synced voters {synced:?} of {:?}; without member {id} ({}) they are not a quorum, so it waits",
                voters.keys().collect::<Vec<_>>(),
                pod.name
            ),
        ));
    }
    if id == leader_id {
        let Some(to) = super::scaling::handoff_target(w, &synced, |candidate| candidate != id)
        else {
            return Some(wait(
                w,
                WaitKind::Quorum,
                &pod.name,
                format!(
                    "rolling restart: no synced follower to hand leadership to before restarting the leader {}",
                    pod.name
                ),
            ));
        };
        return Some(decide(
            w,
            Action::TransferLeadership { from: id, to },
            format!(
                "rolling restart: {} is the last outdated member and leads; handing leadership to member {to} first",
                pod.name
            ),
        ));
    }
    Some(decide(
        w,
        Action::DeletePod {
            name: pod.name.clone(),
        },
        format!(
            "rolling restart: restarting {} (member {id}, revision {} → {}); the leader (member {leader_id}) keeps a synced quorum {without:?} without it",
            pod.name,
            pod.revision.as_deref().unwrap_or("?"),
            w.update_revision.unwrap_or("?")
        ),
    ))
}
