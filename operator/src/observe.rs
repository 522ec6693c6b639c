//! Reading the world for the planner: the StatefulSet, pods, PVCs from the API server, each
//! member's `/status` and the committed `/zookeeper/config` at the pods' IPs.
//!
//! Nothing here decides: a member that does not answer is an `Err` in `Observed::members`,
//! which the planner reads as "unknown", never as "remove".

use std::collections::BTreeMap;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use crate::children::member_selector_string;
use crate::crd::ZkEnsemble;
use crate::members::{SuperCredential, committed_config, member_status};
use crate::membership::{EnsembleNames, id_of_ordinal};
use crate::planner::{
    EnsembleView, Observed, PodPhase, PodView, PvcView, ServerRole, StatefulSetView, Timeouts,
    WaitRecord,
};

/// The label the StatefulSet controller puts on each pod: the revision it was created from.
const REVISION_LABEL: &str = "controller-revision-hash";

pub fn stateful_set_view(sts: &StatefulSet) -> StatefulSetView {
    let status = sts.status.as_ref();
    StatefulSetView {
        replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        generation: sts.metadata.generation,
        observed_generation: status.and_then(|s| s.observed_generation),
        current_revision: status.and_then(|s| s.current_revision.clone()),
        update_revision: status.and_then(|s| s.update_revision.clone()),
        claim_templates: sts
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.clone()),
    }
}

/// The planner's view of one of the ensemble's data claims (None for another claim).
/// `expansion_allowed` comes from the claim's StorageClass.
pub fn pvc_view(
    names: &EnsembleNames,
    pvc: &PersistentVolumeClaim,
    expansion_allowed: Option<bool>,
) -> Option<PvcView> {
    let name = pvc.metadata.name.clone()?;
    let spec = pvc.spec.as_ref();
    Some(PvcView {
        ordinal: names.ordinal_of_pvc(&name)?,
        terminating: pvc.metadata.deletion_timestamp.is_some(),
        requested: spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone()),
        capacity: pvc
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone()),
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
        expansion_allowed,
        name,
    })
}

/// allowVolumeExpansion of each named StorageClass: false when the class does not say true,
/// None when it could not be read (then the API server decides when the claim is patched).
async fn expansion_allowed(
    client: &kube::Client,
    classes: impl Iterator<Item = String>,
) -> BTreeMap<String, Option<bool>> {
    let api = Api::<StorageClass>::all(client.clone());
    let mut out = BTreeMap::new();
    for class in classes {
        if out.contains_key(&class) {
            continue;
        }
        let allowed = match api.get_opt(&class).await {
            Ok(Some(c)) => Some(c.allow_volume_expansion == Some(true)),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(storage_class = %class, error = %e, "StorageClass unreadable");
                None
            }
        };
        out.insert(class, allowed);
    }
    out
}

/// The planner's view of one of the ensemble's pods (None for a pod whose name is not
/// `<ensemble>-<ordinal>`).
pub fn pod_view(names: &EnsembleNames, pod: &Pod) -> Option<PodView> {
    let name = pod.metadata.name.clone()?;
    let ordinal = names.ordinal_of_pod(&name)?;
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        _ => PodPhase::Pending,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let server = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.name == crate::children::SERVER_CONTAINER)
        });
    Some(PodView {
        revision: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL).cloned()),
        phase,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        waiting_reason: server
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone()),
        restarts: server.map_or(0, |c| c.restart_count),
        ip: status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty()),
        name,
        ordinal,
    })
}

/// Reads everything the planner looks at.
/// The ensemble's member pods, listed from the API server (not a cache).
pub async fn member_pods(
    client: &kube::Client,
    names: &EnsembleNames,
) -> Result<Vec<PodView>, kube::Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), &names.namespace)
        .list(&ListParams::default().labels(&member_selector_string(names)))
        .await?;
    Ok(pods
        .items
        .iter()
        .filter_map(|p| pod_view(names, p))
        .collect())
}

pub async fn observe(
    client: &kube::Client,
    zke: &ZkEnsemble,
    names: &EnsembleNames,
    credential: Option<&SuperCredential>,
) -> Result<Observed, kube::Error> {
    let ns = names.namespace.as_str();
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get_opt(&names.stateful_set())
        .await?;
    let pods = member_pods(client, names).await?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let ours: Vec<&PersistentVolumeClaim> = pvcs
        .items
        .iter()
        .filter(|pvc| {
            pvc.metadata
                .name
                .as_deref()
                .is_some_and(|n| names.ordinal_of_pvc(n).is_some())
        })
        .collect();
    let classes = expansion_allowed(
        client,
        ours.iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.storage_class_name.clone())),
    )
    .await;
    let pvcs: Vec<PvcView> = ours
        .iter()
        .filter_map(|pvc| {
            let class = pvc
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_ref());
            let allowed = class.and_then(|c| classes.get(c).copied().flatten());
            pvc_view(names, pvc, allowed)
        })
        .collect();

    let members = member_reports(&pods, credential).await;
    // /zookeeper/config can only be read while some member leads; otherwise the planner
    // falls back on what it has (and waits for the ensemble to form).
    let someone_leads = members
        .values()
        .any(|r| r.as_ref().is_ok_and(|r| r.role == ServerRole::Leader));
    let committed = match credential {
        Some(credential) if someone_leads => {
            match committed_config(&serving_ips(&pods), credential).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!(ensemble = %names.ensemble, error = %e, "committed config unreadable");
                    None
                }
            }
        }
        _ => None,
    };
    let status = zke.status.as_ref();
    Ok(Observed {
        ensemble: EnsembleView {
            names: names.clone(),
            generation: zke.metadata.generation,
            spec: zke.spec.clone(),
            annotations: zke.metadata.annotations.clone().unwrap_or_default(),
        },
        stateful_set: sts.as_ref().map(stateful_set_view),
        pods,
        pvcs,
        members,
        committed,
        wait: status.and_then(|s| s.waiting.as_ref()).map(|w| WaitRecord {
            key: w.key.clone(),
            since: w.since.0,
        }),
        now: Timestamp::now(),
        timeouts: Timeouts::default(),
    })
}

/// Each pod's `/status`, asked concurrently, by server id.
async fn member_reports(
    pods: &[PodView],
    credential: Option<&SuperCredential>,
) -> BTreeMap<u64, Result<crate::planner::MemberReport, String>> {
    let asks = pods.iter().map(|pod| async move {
        let id = id_of_ordinal(pod.ordinal);
        let report = match (&pod.ip, credential) {
            (None, _) => Err(format!("pod {} has no IP yet", pod.name)),
            (Some(_), None) => Err("the credentials Secret is not readable".to_string()),
            (Some(ip), Some(c)) => member_status(ip, c).await,
        };
        (id, report)
    });
    join_all(asks).await.into_iter().collect()
}

/// IPs of the pods to reach the ensemble through: the Ready ones, or any with an IP.
pub fn serving_ips(pods: &[PodView]) -> Vec<String> {
    let ready: Vec<String> = pods
        .iter()
        .filter(|p| p.ready && !p.terminating)
        .filter_map(|p| p.ip.clone())
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    pods.iter().filter_map(|p| p.ip.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn pod_view_reads_revision_readiness_and_waiting_reason() {
        let names = EnsembleNames::new("zk", "ns");
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("zk-2".into()),
                labels: Some([(REVISION_LABEL.to_string(), "zk-abc".to_string())].into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("127.0.3.4".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    ..PodCondition::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "server".into(),
                    restart_count: 3,
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("CrashLoopBackOff".into()),
                            ..ContainerStateWaiting::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        let v = pod_view(&names, &pod).unwrap();
        assert_eq!(v.ordinal, 2);
        assert_eq!(v.revision.as_deref(), Some("zk-abc"));
        assert_eq!(v.phase, PodPhase::Running);
        assert!(!v.ready);
        assert_eq!(v.waiting_reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(v.restarts, 3);
        assert_eq!(v.ip.as_deref(), Some("127.0.3.4"));
        let other = Pod {
            metadata: ObjectMeta {
                name: Some("zkx-1".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert!(pod_view(&names, &other).is_none());
    }

    #[test]
    fn serving_ips_prefer_ready_pods() {
        let pod = |ordinal, ready, ip: Option<&str>| PodView {
            name: format!("zk-{ordinal}"),
            ordinal,
            ready,
            ip: ip.map(str::to_string),
            ..PodView::default()
        };
        let pods = vec![
            pod(0, false, Some("a")),
            pod(1, true, Some("b")),
            pod(2, true, None),
        ];
        assert_eq!(serving_ips(&pods), vec!["b".to_string()]);
        let pods = vec![pod(0, false, Some("a")), pod(1, false, None)];
        assert_eq!(serving_ips(&pods), vec!["a".to_string()]);
    }
}
