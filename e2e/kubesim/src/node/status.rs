//! A pod's status as the kubelet writes it, computed from what the runtime reports.
//! Pure: the worker sends the result as a merge patch of the status subresource.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::runtime::PodRuntimeStatus;

/// The conditions the kubelet owns; others (PodScheduled, DisruptionTarget, ...) are kept.
const OWNED: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

pub struct Sandbox {
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub start_time: Time,
}

/// The status patch while the pod's sandbox exists. `runtime` is None before the
/// containers were started (volumes still mounting).
pub fn status_patch(
    pod: &Pod,
    sandbox: &Sandbox,
    runtime: Option<&PodRuntimeStatus>,
    now: &Time,
) -> serde_json::Value {
    let existing = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let waiting = |name: &str, image: &str, reason: &str| {
        serde_json::json!({
            "name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
            "state": {"waiting": {"reason": reason}},
        })
    };
    let (phase, initialized, containers, init_containers) = match runtime {
        Some(rt) => (
            rt.phase.as_str(),
            rt.initialized,
            to_json(&rt.container_statuses),
            to_json(&rt.init_container_statuses),
        ),
        None => (
            "Pending",
            false,
            spec.containers
                .iter()
                .map(|c| {
                    waiting(
                        &c.name,
                        c.image.as_deref().unwrap_or(""),
                        "ContainerCreating",
                    )
                })
                .collect(),
            spec.init_containers
                .iter()
                .flatten()
                .map(|c| waiting(&c.name, c.image.as_deref().unwrap_or(""), "PodInitializing"))
                .collect(),
        ),
    };
    let containers_ready = runtime.is_some_and(|rt| {
        !rt.container_statuses.is_empty() && rt.container_statuses.iter().all(|c| c.ready)
    });
    let ready = containers_ready && !terminating;
    let reason_for = |ok: bool, reason: &str| if ok { None } else { Some(reason.to_string()) };
    let owned = [
        ("PodReadyToStartContainers", true, None),
        (
            "Initialized",
            initialized,
            reason_for(initialized, "ContainersNotInitialized"),
        ),
        (
            "ContainersReady",
            containers_ready,
            reason_for(containers_ready, "ContainersNotReady"),
        ),
        ("Ready", ready, reason_for(ready, "ContainersNotReady")),
    ];
    let old = existing.conditions.clone().unwrap_or_default();
    let mut conditions: Vec<PodCondition> = old
        .iter()
        .filter(|c| !OWNED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for (kind, ok, reason) in owned {
        let status = if ok { "True" } else { "False" };
        let previous = old.iter().find(|c| c.type_ == kind);
        let since = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        conditions.push(PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason,
            last_transition_time: since,
            ..PodCondition::default()
        });
    }
    serde_json::json!({
        "status": {
            "phase": phase,
            "conditions": conditions,
            "hostIP": sandbox.host_ip.to_string(),
            "hostIPs": [{"ip": sandbox.host_ip.to_string()}],
            "podIP": sandbox.pod_ip.to_string(),
            "podIPs": [{"ip": sandbox.pod_ip.to_string()}],
            "startTime": sandbox.start_time,
            "containerStatuses": containers,
            "initContainerStatuses": init_containers,
        }
    })
}

fn to_json(statuses: &[ContainerStatus]) -> Vec<serde_json::Value> {
    statuses
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect()
}

/// Is the pod done for good (nothing for a kubelet to run)?
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}
