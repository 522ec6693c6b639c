//! `spec` of a ZkEnsemble.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ZkEnsembleStatus;

/// A ZooKeeper-compatible ensemble of paddock-server members, kept quorum-safe by the operator:
/// members restart one at a time behind a synced-quorum gate, and membership changes one voter
/// at a time through reconfig.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    doc = "A ZooKeeper-compatible ensemble of paddock-server members run by paddock-operator.",
    version = "v1alpha1",
    kind = "ZkEnsemble",
    plural = "zkensembles",
    shortname = "zke",
    namespaced,
    status = "ZkEnsembleStatus",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas","description":"Desired members"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas","description":"Members in the quorum and synced"}"#,
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader","description":"Pod of the current leader"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.replicas >= 1 && self.replicas <= 15",
        "message": "spec.replicas must be between 1 and 15 (an ensemble larger than 15 members only slows writes down)"
    },
    {
        "rule": "self.observers < self.replicas",
        "message": "spec.observers must be smaller than spec.replicas: an ensemble needs at least one voter, observers only follow voters"
    },
    {
        "rule": "!has(self.config.minSessionTimeout) || !has(self.config.maxSessionTimeout) || self.config.minSessionTimeout <= self.config.maxSessionTimeout",
        "message": "spec.config.minSessionTimeout must not exceed spec.config.maxSessionTimeout"
    }
]))]
pub struct ZkEnsembleSpec {
    /// Number of members (pods), voters and observers together, from 1 to 15. An odd number of
    /// voters tolerates the most failures: 3 voters survive 1 lost member, 5 survive 2. The
    /// operator changes membership one voter at a time through reconfig, never by deleting pods.
    #[serde(default = "default_replicas")]
    pub replicas: i32,

    /// How many of the members are observers: they serve reads and follow the leader but do not
    /// vote, so they add read capacity without slowing writes. The highest-numbered members are
    /// the observers; spec.replicas minus spec.observers members vote.
    #[serde(default)]
    #[schemars(range(min = 0, max = 14))]
    pub observers: i32,

    /// Container image of paddock-server. Changing it restarts the members one at a time.
    #[serde(default = "default_image")]
    pub image: String,

    /// When the kubelet pulls the image: Always, IfNotPresent or Never.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,

    /// Secrets holding credentials for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// CPU and memory requests and limits of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Where each member keeps its transaction log and snapshots.
    #[serde(default)]
    pub storage: Storage,

    /// Settings written into each member's zoo.cfg.
    #[serde(default)]
    pub config: ServerSettings,

    /// Labels, annotations and scheduling of the member pods.
    #[serde(default)]
    pub pod: PodSettings,

    /// How members are spread over nodes: Soft prefers one member per node, Hard requires it
    /// (pods stay Pending when there are fewer nodes than members), None does not spread.
    #[serde(default)]
    pub anti_affinity: AntiAffinity,

    /// The PodDisruptionBudget that lets voluntary evictions (node drains) take at most one
    /// member at a time.
    #[serde(default)]
    pub pdb: PdbSettings,

    /// Prometheus scraping of the members' /metrics.
    #[serde(default)]
    pub metrics: MetricsSettings,

    /// While true the operator changes nothing: no restarts, no membership changes, no updates
    /// of the children. Use it to take manual control; set it back to false to resume.
    #[serde(default)]
    pub paused: bool,
}

fn default_replicas() -> i32 {
    3
}

fn default_image() -> String {
    super::DEFAULT_IMAGE.to_string()
}

impl ZkEnsembleSpec {
    /// Members that vote (spec.replicas minus spec.observers, at least one by the CRD's rules).
    pub fn voters(&self) -> i32 {
        (self.replicas - self.observers).max(1)
    }
}

impl Default for ZkEnsembleSpec {
    fn default() -> Self {
        ZkEnsembleSpec {
            replicas: default_replicas(),
            observers: 0,
            image: default_image(),
            image_pull_policy: ImagePullPolicy::default(),
            image_pull_secrets: Vec::new(),
            resources: None,
            storage: Storage::default(),
            config: ServerSettings::default(),
            pod: PodSettings::default(),
            anti_affinity: AntiAffinity::default(),
            pdb: PdbSettings::default(),
            metrics: MetricsSettings::default(),
            paused: false,
        }
    }
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Where each member keeps its data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
        "message": "spec.storage.size cannot shrink: a PersistentVolumeClaim can only grow; create a new ensemble to use smaller volumes"
    },
    {
        "rule": "(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
        "message": "spec.storage.storageClassName cannot change: existing PersistentVolumeClaims keep their class; create a new ensemble to move to another class"
    },
    {
        "rule": "self.ephemeral == oldSelf.ephemeral",
        "message": "spec.storage.ephemeral cannot change: switching between persistent and ephemeral storage would drop every member's data; create a new ensemble instead"
    }
]))]
pub struct Storage {
    /// Size of each member's PersistentVolumeClaim, a Kubernetes quantity such as 10Gi. It can
    /// grow (when the storage class allows expansion) but never shrink.
    #[serde(default = "default_storage_size")]
    #[schemars(schema_with = "quantity_string_schema")]
    pub size: Quantity,

    /// StorageClass of the PersistentVolumeClaims; the cluster's default class when unset.
    /// Cannot change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// What happens to a member's PersistentVolumeClaim when the member is removed by a
    /// scale-down or the ensemble is deleted: Retain keeps it, Delete removes it.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,

    /// Keep data in an emptyDir instead of a PersistentVolumeClaim: a restarted pod starts
    /// empty and resyncs from the others. For tests and caches only. Cannot change after
    /// creation.
    #[serde(default)]
    pub ephemeral: bool,
}

fn default_storage_size() -> Quantity {
    Quantity("10Gi".to_string())
}

/// A quantity as the API server stores it in a CRD: a string that `quantity()` in CEL parses.
fn quantity_string_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 64,
        "x-kubernetes-validations": [{
            "rule": "isQuantity(self)",
            "message": "must be a Kubernetes quantity such as 10Gi or 500Mi"
        }]
    })
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            size: default_storage_size(),
            storage_class_name: None,
            reclaim_policy: ReclaimPolicy::default(),
            ephemeral: false,
        }
    }
}

/// What happens to a removed member's PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the claim (and its data) after the member is removed.
    #[default]
    Retain,
    /// Delete the claim once the member's pod is gone.
    Delete,
}

/// Keys of zoo.cfg the operator writes itself; config.extra may not set them.
pub const OPERATOR_OWNED_KEYS: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "dynamicConfigFile",
    "reconfigEnabled",
    "standaloneEnabled",
    "admin.serverPort",
    "admin.enableServer",
    "superDigest",
];

/// Prefixes of zoo.cfg keys the operator writes itself (`server.N`, `group.N`, `weight.N`).
pub const OPERATOR_OWNED_PREFIXES: &[&str] = &["server.", "group.", "weight."];

/// zoo.cfg keys with a field of their own in spec.config.
pub const TYPED_KEYS: &[&str] = &[
    "tickTime",
    "initLimit",
    "syncLimit",
    "minSessionTimeout",
    "maxSessionTimeout",
    "snapCount",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
];

/// Settings written into every member's zoo.cfg.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSettings {
    /// The basic time unit in milliseconds; heartbeats and the limits below count in ticks.
    #[serde(default = "default_tick_time")]
    #[schemars(range(min = 1, max = 60000))]
    pub tick_time: i32,

    /// Ticks a follower may take to connect to and sync with the leader.
    #[serde(default = "default_init_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub init_limit: i32,

    /// Ticks a follower may fall behind the leader before it is dropped.
    #[serde(default = "default_sync_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub sync_limit: i32,

    /// Smallest session timeout in milliseconds a client may negotiate (2 × tickTime when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_session_timeout: Option<i32>,

    /// Largest session timeout in milliseconds a client may negotiate (20 × tickTime when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_session_timeout: Option<i32>,

    /// Transactions between snapshots.
    #[serde(default = "default_snap_count")]
    #[schemars(range(min = 1))]
    pub snap_count: i64,

    /// Automatic removal of old snapshots and transaction logs.
    #[serde(default)]
    pub autopurge: Autopurge,

    /// Further zoo.cfg keys and values, written as they are. Keys the operator owns (server.N,
    /// group.N, weight.N, dataDir, dataLogDir, clientPort, clientPortAddress, secureClientPort,
    /// dynamicConfigFile, reconfigEnabled, standaloneEnabled, admin.serverPort,
    /// admin.enableServer, superDigest) and keys with their own field above are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 64,
        "x-kubernetes-validations" = [
            {
                "rule": "!('dataDir' in self) && !('dataLogDir' in self) && !('clientPort' in self) && !('clientPortAddress' in self) && !('secureClientPort' in self) && !('dynamicConfigFile' in self) && !('reconfigEnabled' in self) && !('standaloneEnabled' in self) && !('admin.serverPort' in self) && !('admin.enableServer' in self) && !('superDigest' in self)",
                "message": "spec.config.extra may not set dataDir, dataLogDir, clientPort, clientPortAddress, secureClientPort, dynamicConfigFile, reconfigEnabled, standaloneEnabled, admin.serverPort, admin.enableServer or superDigest: the operator writes these itself"
            },
            {
                "rule": "self.all(k, !k.startsWith('server.') && !k.startsWith('group.') && !k.startsWith('weight.'))",
                "message": "spec.config.extra may not set server.N, group.N or weight.N: the operator owns the membership and changes it through reconfig (use spec.replicas and spec.observers)"
            },
            {
                "rule": "!('tickTime' in self) && !('initLimit' in self) && !('syncLimit' in self) && !('minSessionTimeout' in self) && !('maxSessionTimeout' in self) && !('snapCount' in self) && !('autopurge.snapRetainCount' in self) && !('autopurge.purgeInterval' in self)",
                "message": "spec.config.extra may not set tickTime, initLimit, syncLimit, minSessionTimeout, maxSessionTimeout, snapCount or autopurge.*: set them through their own fields of spec.config"
            }
        ]
    ))]
    pub extra: BTreeMap<String, String>,
}

fn default_tick_time() -> i32 {
    2000
}
fn default_init_limit() -> i32 {
    10
}
fn default_sync_limit() -> i32 {
    5
}
fn default_snap_count() -> i64 {
    100_000
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            tick_time: default_tick_time(),
            init_limit: default_init_limit(),
            sync_limit: default_sync_limit(),
            min_session_timeout: None,
            max_session_timeout: None,
            snap_count: default_snap_count(),
            autopurge: Autopurge::default(),
            extra: BTreeMap::new(),
        }
    }
}

/// Automatic removal of old snapshots and transaction logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autopurge {
    /// Newest snapshots to keep (with the logs they need); at least 3.
    #[serde(default = "default_snap_retain_count")]
    #[schemars(range(min = 3))]
    pub snap_retain_count: i32,

    /// Hours between purges; 0 turns purging off.
    #[serde(default = "default_purge_interval")]
    #[schemars(range(min = 0))]
    pub purge_interval: i32,
}

fn default_snap_retain_count() -> i32 {
    3
}
fn default_purge_interval() -> i32 {
    1
}

impl Default for Autopurge {
    fn default() -> Self {
        Autopurge {
            snap_retain_count: default_snap_retain_count(),
            purge_interval: default_purge_interval(),
        }
    }
}

/// Labels, annotations and scheduling of the member pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Extra labels on every member pod (the operator's own app.kubernetes.io labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations on every member pod. Changing them restarts the members one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Node labels a node must have to run a member.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the member pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Scheduling constraints added to the ones spec.antiAffinity generates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How members spread over zones or other topology domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// PriorityClass of the member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Security context of the member pods (user, group, fsGroup, seccomp). When not set:
    /// runAsNonRoot as uid and gid 65532 (the user of the paddock-server image), fsGroup
    /// 65532 so the data volume is writable, and the RuntimeDefault seccomp profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,

    /// Extra environment variables of the server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Seconds a stopping member has to hand off leadership and exit before it is killed.
    #[serde(default = "default_grace_period")]
    #[schemars(range(min = 1, max = 3600))]
    pub termination_grace_period_seconds: i64,
}

fn default_grace_period() -> i64 {
    60
}

// By hand, so that a spec built in code gets the same grace period as one the API server
// defaulted.
impl Default for PodSettings {
    fn default() -> Self {
        PodSettings {
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            topology_spread_constraints: Vec::new(),
            priority_class_name: None,
            security_context: None,
            env: Vec::new(),
            termination_grace_period_seconds: default_grace_period(),
        }
    }
}

/// How members are spread over nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AntiAffinity {
    /// Prefer one member per node; share nodes when there are too few.
    #[default]
    Soft,
    /// Require one member per node; extra members stay Pending.
    Hard,
    /// No spreading rule from the operator.
    None,
}

/// The PodDisruptionBudget of the ensemble.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSettings {
    /// Create a PodDisruptionBudget with maxUnavailable 1.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for PdbSettings {
    fn default() -> Self {
        PdbSettings { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// Prometheus scraping of the members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSettings {
    /// Create a ServiceMonitor (prometheus-operator) for the members' /metrics.
    #[serde(default)]
    pub service_monitor: bool,
}
