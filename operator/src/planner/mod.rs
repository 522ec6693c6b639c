//! The planner (DESIGN §5): a pure function from the observed world to one next action.
//!
//! Each reconcile re-reads everything and calls [`plan`]; the planner keeps no state of its
//! own. The only memory is the wait in progress, which lives in the ZkEnsemble's status
//! (`status.waiting`) and comes back in [`Observed::wait`], so a wait that lasts too long turns
//! into `Degraded` even across operator restarts.
//!
//! Order of concerns in one call:
//! 1. pause; a missing StatefulSet (create the children);
//! 2. stale StatefulSet status, missing or terminating pods: wait (a missing pod is never a
//!    scale-in);
//! 3. outdated pods that do not serve: restart them first (it costs the quorum nothing);
//! 4. a half-finished membership change: finish it (joiner to add, removed member to shrink
//!    away, StatefulSet smaller than the membership);
//! 5. outdated serving members: followers first, the leader last after a transfer, each behind
//!    the synced-quorum gate measured on the leader's /status;
//! 6. PVCs of removed members (reclaimPolicy Delete), once their pod is gone;
//! 7. member PVCs smaller than spec.storage.size: grow one (no pod restarts);
//! 8. the next membership step (one voter at a time), only while healthy;
//! 9. otherwise wait for unhealthy members, then for volumes still expanding, or Done.

mod decision;
mod observed;
mod rolling;
mod scaling;
mod storage;
mod world;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use decision::{Action, Decision, MembershipChange, Stage};
pub use observed::{
    CommittedConfig, ConfigMember, EnsembleView, FollowerReport, MemberReport, Observed, PodPhase,
    PodView, PvcView, ReportedConfig, ServerRole, StatefulSetView, Timeouts, WaitRecord,
};

use crate::membership::{desired_members, id_of_ordinal};
use world::World;

/// The next action for this observed world.
pub fn plan(obs: &Observed) -> Decision {
    let spec = &obs.ensemble.spec;
    if spec.paused {
        return Decision {
            action: Action::Paused,
            reason: "spec.paused is true: the operator changes nothing until it is false".into(),
            stage: Stage::Paused,
            wait: None,
        };
    }
    let Some(sts) = &obs.stateful_set else {
        return create_children(obs);
    };
    let w = World::new(obs);
    if sts.observed_generation < sts.generation {
        return wait(
            &w,
            WaitKind::StatefulSet,
            &obs.ensemble.names.stateful_set(),
            "the StatefulSet controller has not observed the latest template yet, so its revisions are stale".into(),
        );
    }
    let replicas = u32::try_from(sts.replicas).unwrap_or(0);
    for ordinal in 0..replicas {
        let name = obs.ensemble.names.pod(ordinal);
        match w.pods.get(&ordinal) {
            None => {
                return wait(
                    &w,
                    WaitKind::PodCreated,
                    &name,
                    format!(
                        "pod {name} is missing; the StatefulSet controller recreates it (a missing pod is never read as a scale-in)"
                    ),
                );
            }
            Some(pod) if pod.terminating => {
                return wait(
                    &w,
                    WaitKind::PodGone,
                    &name,
                    format!("pod {name} is terminating; waiting for it to come back"),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(d) = rolling::restart_unserving(&w, replicas) {
        return d;
    }
    let Some(committed) = w.committed.clone() else {
        return wait(
            &w,
            WaitKind::Forming,
            &obs.ensemble.names.ensemble,
            "no member reports a leader and the committed membership could not be read: waiting for the ensemble to form a quorum".into(),
        );
    };
    if let Some(d) = scaling::finish_change(&w, &committed, replicas) {
        return d;
    }
    if let Some(d) = rolling::restart_serving(&w, &committed, replicas) {
        return d;
    }
    if let Some(d) = scaling::reclaim_pvcs(&w, replicas) {
        return d;
    }
    if let Some(d) = storage::grow_claims(&w, replicas) {
        return d;
    }
    if let Some(d) = scaling::next_step(&w, &committed, replicas) {
        return d;
    }
    if let Some(d) = unhealthy_member(&w, &committed) {
        return d;
    }
    if let Some(d) = storage::expansion_pending(&w, replicas) {
        return d;
    }
    decide(
        &w,
        Action::Done,
        format!(
            "all {} members run revision {} and serve; the membership matches the spec",
            committed.members.len(),
            w.update_revision.unwrap_or("?")
        ),
    )
}

fn create_children(obs: &Observed) -> Decision {
    // Never start smaller than a membership that already exists (an ensemble whose
    // StatefulSet was deleted by hand keeps its members).
    let existing = obs
        .committed
        .as_ref()
        .map(|c| i32::try_from(c.max_id()).unwrap_or(i32::MAX))
        .unwrap_or(0);
    let replicas = obs.ensemble.spec.replicas.max(existing);
    Decision {
        action: Action::CreateChildren { replicas },
        reason: format!(
            "the StatefulSet does not exist: creating the children with {replicas} members"
        ),
        stage: Stage::Creating,
        wait: None,
    }
}

/// A committed member that does not serve: wait (and report), never remove it.
fn unhealthy_member(w: &World, committed: &CommittedConfig) -> Option<Decision> {
    for m in &committed.members {
        let name = w.pod_name(m.id);
        let Some(pod) = w.pod_of_id(m.id) else {
            continue;
        };
        if !w.serves(pod) {
            let why = describe_not_serving(w, pod);
            return Some(wait(
                w,
                WaitKind::PodReady,
                &name,
                format!("member {} ({name}) does not serve: {why}", m.id),
            ));
        }
    }
    None
}

/// Why a pod does not serve, in words.
fn describe_not_serving(w: &World, pod: &PodView) -> String {
    let id = id_of_ordinal(pod.ordinal);
    if let Some(reason) = &pod.waiting_reason {
        return format!("its container waits ({reason}, {} restarts)", pod.restarts);
    }
    match w.obs.members.get(&id) {
        None => "its /status was not read".into(),
        Some(Err(e)) => format!("its /status does not answer ({e})"),
        Some(Ok(r)) if !r.is_ready() => format!("its server is {} and not synced", r.role.as_str()),
        Some(Ok(_)) if !pod.ready => "the pod is not Ready".into(),
        Some(Ok(_)) => "it is terminating".into(),
    }
}

/// What the ensemble is doing, from the observed world.
fn stage(w: &World) -> Stage {
    let Some(committed) = &w.committed else {
        return Stage::Creating;
    };
    let spec = &w.obs.ensemble.spec;
    if w.pods.values().any(|p| w.is_outdated(p)) {
        return Stage::Upgrading;
    }
    let want: Vec<(u64, crate::membership::MemberRole)> =
        desired_members(spec.replicas, spec.observers);
    let have: Vec<(u64, crate::membership::MemberRole)> =
        committed.members.iter().map(|m| (m.id, m.role)).collect();
    let sts_replicas = w.obs.stateful_set.as_ref().map(|s| s.replicas);
    if want != have || sts_replicas != Some(spec.replicas) {
        return Stage::Scaling;
    }
    Stage::Steady
}

/// A decision that does not wait (clears status.waiting).
fn decide(w: &World, action: Action, reason: String) -> Decision {
    Decision {
        action,
        reason,
        stage: stage(w),
        wait: None,
    }
}

/// Kinds of wait, each with its own time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitKind {
    StatefulSet,
    PodCreated,
    PodGone,
    PodReady,
    Quorum,
    Joiner,
    Forming,
    VolumeExpansion,
}

impl WaitKind {
    fn name(self) -> &'static str {
        match self {
            WaitKind::StatefulSet => "StatefulSetObserved",
            WaitKind::PodCreated => "PodCreated",
            WaitKind::PodGone => "PodGone",
            WaitKind::PodReady => "PodReady",
            WaitKind::Quorum => "SyncedQuorum",
            WaitKind::Joiner => "JoinerSynced",
            WaitKind::Forming => "QuorumFormed",
            WaitKind::VolumeExpansion => "VolumeExpansion",
        }
    }

    fn limit(self, t: &Timeouts) -> Duration {
        match self {
            WaitKind::PodReady | WaitKind::Forming => t.pod_ready,
            WaitKind::Joiner => t.joiner_sync,
            WaitKind::Quorum => t.quorum,
            WaitKind::StatefulSet
            | WaitKind::PodCreated
            | WaitKind::PodGone
            | WaitKind::VolumeExpansion => t.other,
        }
    }
}

/// Wait for something; past its time limit, stop with Degraded instead (rule 7).
fn wait(w: &World, kind: WaitKind, target: &str, reason: String) -> Decision {
    let key = format!("{}/{target}", kind.name());
    let since = match &w.obs.wait {
        Some(record) if record.key == key => record.since,
        _ => w.obs.now,
    };
    let waited = w
        .obs
        .now
        .duration_since(since)
        .as_secs()
        .max(0)
        .unsigned_abs();
    let limit = kind.limit(&w.obs.timeouts).as_secs();
    let record = Some(WaitRecord {
        key: key.clone(),
        since,
    });
    if waited >= limit {
        return Decision {
            action: Action::Degraded { key },
            reason: format!(
                "{reason}; waited {waited}s, longer than the {limit}s allowed: stopped here and nothing moves on to another member until this is fixed"
            ),
            stage: stage(w),
            wait: record,
        };
    }
    Decision {
        action: Action::WaitFor { key },
        reason,
        stage: stage(w),
        wait: record,
    }
}

/// Whether `action` stops a member: the actions that must be re-checked against the
/// pods just before they are carried out (see [`recheck`]).
pub fn takes_a_member_down(action: &Action) -> bool {
    matches!(action, Action::DeletePod { .. })
}

/// `decision` re-planned with pods listed again just before it is carried out. Between the
/// observation and the action lie the members' HTTP reports, the committed config and the
/// children's apply, a few hundred milliseconds in which someone else may delete a member
/// (`kubectl delete pod`, an eviction, a node failure): a restart planned for a full
/// ensemble must then not take a second member down. `Some` with the decision the fresh
/// pods call for when it differs (the action is dropped and the reconcile requeued), `None`
/// when the plan stands.
pub fn recheck(obs: &Observed, fresh_pods: Vec<PodView>, decision: &Decision) -> Option<Decision> {
    let fresh = Observed {
        pods: fresh_pods,
        ..obs.clone()
    };
    let replanned = plan(&fresh);
    (replanned.action != decision.action).then(|| Decision {
        reason: format!(
            "{} (re-planned: the pods changed after {} was decided)",
            replanned.reason,
            decision.action.kind()
        ),
        ..replanned
    })
}

/// Stop at once: the spec or the world needs a human (not a wait that may resolve).
fn refuse(w: &World, target: &str, reason: String) -> Decision {
    refuse_as(w, NEEDS_ATTENTION, target, reason)
}

/// The generic kind of a refusal: its Degraded reason is `NeedsAttention`.
pub const NEEDS_ATTENTION: &str = "NeedsAttention";

/// Refusal kinds whose name is itself the Degraded reason (not a wait's `<kind>Timeout`).
pub const REFUSAL_KINDS: &[&str] = &[
    NEEDS_ATTENTION,
    "VolumeExpansionNotAllowed",
    "StorageSizeUnreadable",
];

/// [`refuse`] with its own kind, which becomes the Degraded condition's reason.
fn refuse_as(w: &World, kind: &str, target: &str, reason: String) -> Decision {
    let key = format!("{kind}/{target}");
    let since = match &w.obs.wait {
        Some(record) if record.key == key => record.since,
        _ => w.obs.now,
    };
    Decision {
        action: Action::Degraded { key: key.clone() },
        reason,
        stage: stage(w),
        wait: Some(WaitRecord { key, since }),
    }
}

/// The quorum as the planner sees it, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumView {
    /// The leader's server id.
    pub leader: Option<u64>,
    /// Voters of the committed config.
    pub voters: Vec<u64>,
    /// Voters synced with the leader, by the leader's /status (the leader included).
    pub synced_voters: Vec<u64>,
    /// The synced voters are a quorum.
    pub available: bool,
}

/// The leader, the voters and which of them are synced, as [`plan`] counts them.
pub fn quorum_view(obs: &Observed) -> QuorumView {
    let w = World::new(obs);
    let voters = w.voters();
    let synced = w.synced_voters();
    QuorumView {
        leader: w.leader.map(|(id, _)| id),
        available: world::has_quorum(&voters, &synced),
        voters: voters.keys().copied().collect(),
        synced_voters: synced.into_iter().collect(),
    }
}
