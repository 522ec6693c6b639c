//! The ZkEnsemble status computed from what was observed and what the planner decided: pure,
//! so the reconciler only writes it (DESIGN §5 status and conditions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{EnsembleCondition, EnsembleMember, Phase, WaitStatus, ZkEnsembleStatus};
use crate::membership::id_of_ordinal;
use crate::planner::{Action, Decision, Observed, Stage, quorum_view};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const PAUSED: &str = "Paused";

/// The status to write after this reconcile. `previous` keeps each condition's
/// lastTransitionTime while its status does not change.
pub fn compute_status(
    obs: &Observed,
    decision: &Decision,
    previous: Option<&ZkEnsembleStatus>,
) -> ZkEnsembleStatus {
    let quorum = quorum_view(obs);
    let names = &obs.ensemble.names;
    let sts_replicas = obs.stateful_set.as_ref().map_or(0, |s| s.replicas.max(0));
    let mut pods: Vec<_> = obs.pods.iter().collect();
    pods.sort_by_key(|p| p.ordinal);
    let members: Vec<EnsembleMember> = pods
        .iter()
        .map(|pod| {
            let id = id_of_ordinal(pod.ordinal);
            let report = obs.members.get(&id).and_then(|r| r.as_ref().ok());
            EnsembleMember {
                id: i64::try_from(id).unwrap_or(i64::MAX),
                pod: pod.name.clone(),
                role: report.map_or("unknown", |r| r.role.as_str()).to_string(),
                zxid: report.map(|r| format!("{:#x}", r.zxid)),
                synced: report.is_some_and(|r| r.synced),
                ready: pod.ready && !pod.terminating && report.is_some_and(|r| r.is_ready()),
                revision: pod.revision.clone(),
            }
        })
        .collect();
    let ready_replicas = i32::try_from(members.iter().filter(|m| m.ready).count()).unwrap_or(0);
    let existing = i32::try_from(
        pods.iter()
            .filter(|p| i64::from(p.ordinal) < i64::from(sts_replicas))
            .count(),
    )
    .unwrap_or(0);

    let degraded = matches!(decision.action, Action::Degraded { .. });
    let paused = decision.action == Action::Paused;
    let phase = if paused {
        Phase::Paused
    } else if degraded {
        Phase::Degraded
    } else {
        match decision.stage {
            Stage::Creating => Phase::Creating,
            Stage::Upgrading => Phase::Upgrading,
            Stage::Scaling => Phase::Scaling,
            Stage::Steady | Stage::Paused => Phase::Running,
        }
    };

    let now = Time(obs.now);
    let generation = obs.ensemble.generation;
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" }.to_string();
        let last = previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        EnsembleCondition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: Some(last),
            observed_generation: generation,
        }
    };
    let available = if quorum.available {
        condition(
            AVAILABLE,
            true,
            "QuorumSynced",
            format!(
                "member {} leads; synced voters {:?} of {:?} form a quorum",
                quorum.leader.unwrap_or(0),
                quorum.synced_voters,
                quorum.voters
            ),
        )
    } else if quorum.leader.is_none() {
        condition(
            AVAILABLE,
            false,
            "NoLeader",
            "no member reports itself leader".into(),
        )
    } else {
        condition(
            AVAILABLE,
            false,
            "NoSyncedQuorum",
            format!(
                "synced voters {:?} of {:?} are not a quorum",
                quorum.synced_voters, quorum.voters
            ),
        )
    };
    let progressing_now = !matches!(
        decision.action,
        Action::Done | Action::Paused | Action::Degraded { .. }
    );
    let progressing = condition(
        PROGRESSING,
        progressing_now,
        &progressing_reason(&decision.action),
        decision.reason.clone(),
    );
    let degraded_condition = match &decision.action {
        Action::Degraded { key } => condition(
            DEGRADED,
            true,
            &degraded_reason(key),
            decision.reason.clone(),
        ),
        _ => condition(DEGRADED, false, "AsExpected", String::new()),
    };
    let paused_condition = if paused {
        condition(PAUSED, true, "SpecPaused", decision.reason.clone())
    } else {
        condition(PAUSED, false, "Reconciling", String::new())
    };

    ZkEnsembleStatus {
        observed_generation: generation,
        phase: Some(phase),
        replicas: existing,
        ready_replicas,
        leader: quorum
            .leader
            .and_then(crate::membership::ordinal_of_id)
            .map(|o| names.pod(o)),
        config_version: obs.committed.as_ref().map(|c| format!("{:#x}", c.version)),
        connect_string: Some(names.connect_string()),
        current_revision: obs
            .stateful_set
            .as_ref()
            .and_then(|s| s.current_revision.clone()),
        update_revision: obs
            .stateful_set
            .as_ref()
            .and_then(|s| s.update_revision.clone()),
        members,
        conditions: vec![available, progressing, degraded_condition, paused_condition],
        waiting: decision.wait.as_ref().map(|w| WaitStatus {
            key: w.key.clone(),
            since: Time(w.since),
            message: decision.reason.clone(),
        }),
    }
}

/// The Progressing condition's reason: the action, or for a volume expansion the wait itself
/// (a user asked for larger volumes and wants to see that they are coming).
fn progressing_reason(action: &Action) -> String {
    match action {
        Action::Done | Action::Paused | Action::Degraded { .. } => "Idle".into(),
        Action::WaitFor { key } if key.starts_with("VolumeExpansion/") => {
            "VolumeExpansionPending".into()
        }
        action => action.kind().into(),
    }
}

/// A CamelCase reason from a wait key: `PodReady/zk-1` → `PodReadyTimeout`.
fn degraded_reason(key: &str) -> String {
    let kind = key.split('/').next().unwrap_or("Wait");
    if crate::planner::REFUSAL_KINDS.contains(&kind) {
        kind.to_string()
    } else {
        format!("{kind}Timeout")
    }
}

#[cfg(test)]
mod tests;
