//! `status` of a ZkEnsemble: what the operator saw and what it is doing, for `kubectl describe`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the operator last saw of the ensemble.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZkEnsembleStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// One word for the ensemble's state: Creating, Running, Upgrading, Scaling, Degraded or
    /// Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Member pods that exist.
    #[serde(default)]
    pub replicas: i32,

    /// Members in the quorum and synced with the leader.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pod of the current leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// Version of the committed membership (hexadecimal, as in /zookeeper/config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,

    /// Connect string for ZooKeeper clients inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_string: Option<String>,

    /// StatefulSet revision the oldest members run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,

    /// StatefulSet revision every member is being moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,

    /// Every member pod, as its server reports itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<EnsembleMember>,

    /// Available, Progressing, Degraded and Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<EnsembleCondition>,

    /// What the operator is waiting for and since when; a wait that lasts too long turns into
    /// Degraded. Kept here so that a restarted operator measures the same wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitStatus>,
}

/// One word for the ensemble's state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// The children exist but the ensemble has not formed a quorum yet.
    Creating,
    /// Every member runs the current revision and serves.
    Running,
    /// Members are being restarted onto a new revision.
    Upgrading,
    /// Members are being added or removed.
    Scaling,
    /// The operator stopped because something took too long or cannot be done; see the
    /// Degraded condition.
    Degraded,
    /// spec.paused is true.
    Paused,
}

/// One member as its server reports itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleMember {
    /// Server id (pod ordinal + 1).
    pub id: i64,
    /// Pod name.
    pub pod: String,
    /// leader, follower, observer, looking, joining, or unknown when /status did not answer.
    pub role: String,
    /// Last logged zxid (hexadecimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zxid: Option<String>,
    /// Finished sync with the current leader.
    #[serde(default)]
    pub synced: bool,
    /// Ready in the sense of /readyz: in the quorum (or observing) and synced.
    #[serde(default)]
    pub ready: bool,
    /// StatefulSet revision the pod runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A condition of the ensemble.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleCondition {
    /// Available, Progressing, Degraded or Paused.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// One CamelCase word a script can match on.
    pub reason: String,
    /// What happened and, when something is wrong, what to do.
    #[serde(default)]
    pub message: String,
    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The metadata.generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What the operator waits for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitStatus {
    /// Stable name of the wait (kind and target), e.g. PodReady/zk-1.
    pub key: String,
    /// When the wait started.
    pub since: Time,
    /// Why the operator waits.
    #[serde(default)]
    pub message: String,
}
