//! The StatefulSet `<name>`: one pod per member, updated only when the operator deletes a pod
//! (OnDelete), pods created in parallel, data on a PVC per member (or an emptyDir).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{AntiAffinity, ReclaimPolicy, pod_template_annotations};
use crate::membership::{ADMIN_PORT, CLIENT_PORT, DATA_VOLUME, ELECTION_PORT, QUORUM_PORT};

use super::config::{CONFIG_HASH_ANNOTATION, ZOO_CFG, settings_hash};
use super::credentials::DIGEST_KEY;
use super::{EnsembleRef, labels, member_selector, metadata};

/// Name of the server container.
pub const SERVER_CONTAINER: &str = "server";
const CONFIG_VOLUME: &str = "conf";
const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// The server's arguments: config and data from the volumes, myid from the pod's ordinal,
/// listening on the pod IP, its peer address the stable DNS name, and `--join` through the
/// client Service for a member that is not in the membership yet.
pub fn server_args(e: &EnsembleRef<'_>) -> Vec<String> {
    let ns = &e.names.namespace;
    [
        "--config",
        &format!("/conf/{ZOO_CFG}"),
        "--data-dir",
        "/data",
        "--myid-from-hostname",
        "--client-address",
        "$(POD_IP)",
        "--admin-address",
        "$(POD_IP)",
        "--peer-address",
        &format!(
            "$(POD_NAME).{}.{ns}.svc.cluster.local",
            e.names.headless_service()
        ),
        "--join",
        &e.names.connect_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env(e: &EnsembleRef<'_>) -> Vec<EnvVar> {
    let mut out = vec![
        field_env("POD_IP", "status.podIP"),
        field_env("POD_NAME", "metadata.name"),
        EnvVar {
            name: "PADDOCK_SUPER_DIGEST".to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: e.names.credentials_secret(),
                    key: DIGEST_KEY.to_string(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    // The operator's variables win: the arguments depend on them.
    out.extend(
        e.spec
            .pod
            .env
            .iter()
            .filter(|v| {
                !matches!(
                    v.name.as_str(),
                    "POD_IP" | "POD_NAME" | "PADDOCK_SUPER_DIGEST"
                )
            })
            .cloned(),
    );
    out
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(ADMIN_PORT)),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn server_container(e: &EnsembleRef<'_>) -> Container {
    Container {
        name: SERVER_CONTAINER.to_string(),
        image: Some(e.spec.image.clone()),
        image_pull_policy: Some(e.spec.image_pull_policy.as_str().to_string()),
        args: Some(server_args(e)),
        env: Some(env(e)),
        ports: Some(vec![
            container_port("client", CLIENT_PORT),
            container_port("quorum", QUORUM_PORT),
            container_port("election", ELECTION_PORT),
            container_port("admin", ADMIN_PORT),
        ]),
        resources: e.spec.resources.clone(),
        // Ready = in the quorum and synced (DESIGN §5 rule 6).
        readiness_probe: Some(http_probe("/readyz", 2, 2)),
        liveness_probe: Some(http_probe("/livez", 10, 6)),
        // Recovery of a large data dir may take a while before /livez answers.
        startup_probe: Some(http_probe("/livez", 2, 150)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: CONFIG_VOLUME.to_string(),
                mount_path: "/conf".to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: DATA_VOLUME.to_string(),
                mount_path: "/data".to_string(),
                ..VolumeMount::default()
            },
        ]),
        // The server writes only to /data; nothing else needs to be writable or allowed.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The user of the server image (server/Dockerfile), who must own /data.
pub const SERVER_UID: i64 = 65532;

/// The member pods' security context when spec.pod.securityContext is not given: the
/// image's non-root user, with the data volume's group set to it (fsGroup) so a
/// freshly provisioned volume, owned by root, is writable.
fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(SERVER_UID),
        run_as_group: Some(SERVER_UID),
        fs_group: Some(SERVER_UID),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// spec.pod.affinity plus the anti-affinity spec.antiAffinity asks for.
fn affinity(e: &EnsembleRef<'_>) -> Option<Affinity> {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(member_selector(e.names)),
            ..LabelSelector::default()
        }),
        topology_key: HOSTNAME_TOPOLOGY.to_string(),
        ..PodAffinityTerm::default()
    };
    let mut affinity = e.spec.pod.affinity.clone().unwrap_or_default();
    match e.spec.anti_affinity {
        AntiAffinity::None => {}
        AntiAffinity::Soft => {
            let anti = affinity
                .pod_anti_affinity
                .get_or_insert_with(PodAntiAffinity::default);
            anti.preferred_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                });
        }
        AntiAffinity::Hard => {
            let anti = affinity
                .pod_anti_affinity
                .get_or_insert_with(PodAntiAffinity::default);
            anti.required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term);
        }
    }
    (affinity != Affinity::default()).then_some(affinity)
}

fn none_if_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn none_if_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn pod_template(e: &EnsembleRef<'_>) -> PodTemplateSpec {
    let pod = &e.spec.pod;
    // spec.pod.labels first, so the operator's own labels win.
    let mut pod_labels = pod.labels.clone();
    pod_labels.extend(labels(e.names, "server"));
    let mut annotations = pod_template_annotations(e.spec, e.annotations);
    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), settings_hash(e.spec));
    let mut volumes = vec![Volume {
        name: CONFIG_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: e.names.config_map(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if e.spec.storage.ephemeral {
        volumes.push(Volume {
            name: DATA_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![server_container(e)],
            volumes: Some(volumes),
            affinity: affinity(e),
            node_selector: none_if_empty_map(pod.node_selector.clone()),
            tolerations: none_if_empty(pod.tolerations.clone()),
            topology_spread_constraints: none_if_empty(pod.topology_spread_constraints.clone()),
            priority_class_name: pod.priority_class_name.clone(),
            security_context: Some(
                pod.security_context
                    .clone()
                    .unwrap_or_else(default_pod_security_context),
            ),
            termination_grace_period_seconds: Some(pod.termination_grace_period_seconds),
            image_pull_secrets: none_if_empty(e.spec.image_pull_secrets.clone()),
            ..PodSpec::default()
        }),
    }
}

fn claim_template(e: &EnsembleRef<'_>) -> PersistentVolumeClaim {
    let storage = &e.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(labels(e.names, "server")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The StatefulSet with `replicas` pods.
pub fn stateful_set(e: &EnsembleRef<'_>, replicas: i32) -> StatefulSet {
    let ephemeral = e.spec.storage.ephemeral;
    let when_deleted = match e.spec.storage.reclaim_policy {
        ReclaimPolicy::Delete => "Delete",
        ReclaimPolicy::Retain => "Retain",
    };
    StatefulSet {
        metadata: metadata(e, e.names.stateful_set(), "server"),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(e.names.headless_service()),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(member_selector(e.names)),
                ..LabelSelector::default()
            },
            template: pod_template(e),
            volume_claim_templates: (!ephemeral).then(|| vec![claim_template(e)]),
            // Deleting the ZkEnsemble deletes the claims per reclaimPolicy; a scale-down keeps
            // them, and the planner deletes a removed member's claim once its pod is gone.
            persistent_volume_claim_retention_policy: (!ephemeral).then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(when_deleted.to_string()),
                    when_scaled: Some("Retain".to_string()),
                }
            }),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The StatefulSet to apply over an existing one: its claim templates stay exactly as the API
/// server has them (they are immutable; growth is done on each claim instead). `existing` is
/// None when the StatefulSet does not exist yet, and then the built templates are used.
pub fn keep_claim_templates(
    mut built: StatefulSet,
    existing: Option<Option<Vec<PersistentVolumeClaim>>>,
) -> StatefulSet {
    if let (Some(spec), Some(templates)) = (built.spec.as_mut(), existing) {
        spec.volume_claim_templates = templates;
    }
    built
}
